"""UMi-Street Canyon scenario: TR 38.901 Tables 7.4.1-1, 7.4.2-1, 7.5-6 Part-1, 7.5-8."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._scenario import (
    AbstractScenario,
    LSPParams,
    _f32,
    dual_slope_los_pathloss_db,
    log_distance_pathloss_db,
    lsp_params,
)
from ._uma import _urban_o2i


def _umi_los() -> LSPParams:
    return lsp_params(
        ds=(-7.14, -0.24), ds_std=0.38,
        asd=(1.21, -0.05), asd_std=0.41,
        asa=(1.73, -0.08), asa_std=(0.28, 0.014),
        zsa=(0.73, -0.1), zsa_std=(0.34, -0.04),
        zsd=(0.83, -14.8, 0.01, 0.0, -0.21), zsd_std=0.35,
        sf_std_db=4.0, k_db=(9.0, 5.0),
        corr={
            ("ASD", "DS"): 0.5, ("ASA", "DS"): 0.8, ("ASA", "SF"): -0.4, ("ASD", "SF"): -0.5,
            ("DS", "SF"): -0.4, ("ASD", "ASA"): 0.4, ("ASD", "K"): -0.2, ("ASA", "K"): -0.3,
            ("DS", "K"): -0.7, ("SF", "K"): 0.5, ("ZSA", "DS"): 0.2, ("ZSD", "ASD"): 0.5,
            ("ZSA", "ASD"): 0.3,
        },
    )  # fmt: skip


def _umi_nlos() -> LSPParams:
    return lsp_params(
        ds=(-6.83, -0.24), ds_std=(0.28, 0.16),
        asd=(1.53, -0.23), asd_std=(0.33, 0.11),
        asa=(1.81, -0.08), asa_std=(0.3, 0.05),
        zsa=(0.92, -0.04), zsa_std=(0.41, -0.07),
        zsd=(0.2, -3.1, 0.01, 0.0, -0.5), zsd_std=0.35,
        sf_std_db=7.82,
        corr={
            ("ASA", "DS"): 0.4, ("ASA", "SF"): -0.4, ("DS", "SF"): -0.7, ("ZSD", "DS"): -0.5,
            ("ZSD", "ASD"): 0.5, ("ZSA", "ASD"): 0.5, ("ZSA", "ASA"): 0.2,
        },
    )  # fmt: skip


class UMi(AbstractScenario):
    """TR 38.901 Urban Micro - Street Canyon (UMi).

    Pathloss (Table 7.4.1-1): LOS dual-slope with ``h_E = 1 m``; NLOS
    ``max(PL_LOS, 35.3 log10 d_3D + 22.4 + 21.3 log10 fc - 0.3 (h_UT - 1.5))``. Valid for
    0.5-100 GHz. LSPs: Table 7.5-6 Part-1 with ``log10(1 + fc)`` (``fc < 2 GHz`` uses 2 GHz),
    ZSD Table 7.5-8. The O2I column equals UMa's.

    Attributes:
        los_pathloss_coef: ``(32.4, 21, 20)``.
        nlos_pathloss_coef: ``(22.4, 35.3, 21.3, -0.3)``.
        pathloss_offset_db: trainable offset added to every basic pathloss (dB).
    """

    los_lsp: LSPParams = eqx.field(default_factory=_umi_los)
    nlos_lsp: LSPParams = eqx.field(default_factory=_umi_nlos)
    o2i_lsp: LSPParams = eqx.field(default_factory=_urban_o2i)
    los_pathloss_coef: Float[Array, "3"] = eqx.field(
        default_factory=lambda: _f32([32.4, 21.0, 20.0])
    )
    nlos_pathloss_coef: Float[Array, "4"] = eqx.field(
        default_factory=lambda: _f32([22.4, 35.3, 21.3, -0.3])
    )
    pathloss_offset_db: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(0.0))
    name: str = eqx.field(static=True, default="UMi")
    min_carrier_hz: float = eqx.field(static=True, default=0.5e9)
    max_carrier_hz: float = eqx.field(static=True, default=100e9)
    min_distance_m: float = eqx.field(static=True, default=10.0)
    lsp_fc_offset_ghz: float = eqx.field(static=True, default=1.0)
    lsp_min_fc_ghz: float = eqx.field(static=True, default=2.0)
    has_o2i: bool = eqx.field(static=True, default=True)
    o2i_zsd_from_outdoor: bool = eqx.field(static=True, default=True)

    def _pathloss_los_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, key):
        d2 = jnp.maximum(distance_2d_m, self.min_distance_m)
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        return dual_slope_los_pathloss_db(
            self.los_pathloss_coef, d2, d3, h_bs_m, h_ut_m, carrier_hz, 1.0
        )

    def _pathloss_nlos_prime_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz):
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        return log_distance_pathloss_db(self.nlos_pathloss_coef, d3, carrier_hz / 1e9, h_ut_m)

    def _los_probability(self, distance_2d_out_m, h_ut_m):
        d = jnp.maximum(distance_2d_out_m, 18.0)
        p = 18.0 / d + jnp.exp(-d / 36.0) * (1.0 - 18.0 / d)
        p = jnp.where(distance_2d_out_m <= 18.0, 1.0, p)
        return jnp.broadcast_to(p, jnp.broadcast_shapes(jnp.shape(p), jnp.shape(h_ut_m)))

    def _zsd_height_term(self, h_bs_m, h_ut_m, los):
        return jnp.where(los, jnp.abs(h_ut_m - h_bs_m), jnp.maximum(h_ut_m - h_bs_m, 0.0))
