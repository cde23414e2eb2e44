"""InH-Office scenario: TR 38.901 Tables 7.4.1-1, 7.4.2-1, 7.5-6 Part-2, 7.5-10."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._scenario import AbstractScenario, LSPParams, _f32, log_distance_pathloss_db, lsp_params


def _inh_los() -> LSPParams:
    return lsp_params(
        ds=(-7.692, -0.01), ds_std=0.18,
        asd=1.60, asd_std=0.18,
        asa=(1.781, -0.19), asa_std=(0.119, 0.12),
        zsa=(1.44, -0.26), zsa_std=(0.264, -0.04),
        zsd=(2.228, 0.0, 0.0, -1.43, -100.0), zsd_std=(0.30, 0.13),
        sf_std_db=3.0, k_db=(7.0, 4.0),
        corr={
            ("ASD", "DS"): 0.6, ("ASA", "DS"): 0.8, ("ASA", "SF"): -0.5, ("ASD", "SF"): -0.4,
            ("DS", "SF"): -0.8, ("ASD", "ASA"): 0.4, ("DS", "K"): -0.5, ("SF", "K"): 0.5,
            ("ZSD", "SF"): 0.2, ("ZSA", "SF"): 0.3, ("ZSA", "K"): 0.1, ("ZSD", "DS"): 0.1,
            ("ZSA", "DS"): 0.2, ("ZSD", "ASD"): 0.5, ("ZSA", "ASA"): 0.5,
        },
    )  # fmt: skip


def _inh_nlos() -> LSPParams:
    return lsp_params(
        ds=(-7.173, -0.28), ds_std=(0.055, 0.10),
        asd=1.62, asd_std=0.25,
        asa=(1.863, -0.11), asa_std=(0.059, 0.12),
        zsa=(1.387, -0.15), zsa_std=(0.746, -0.09),
        zsd=(1.08, 0.0, 0.0, 0.0, -100.0), zsd_std=0.36,
        sf_std_db=8.03,
        corr={
            ("ASD", "DS"): 0.4, ("ASA", "SF"): -0.4, ("DS", "SF"): -0.5, ("ZSD", "DS"): -0.27,
            ("ZSA", "DS"): -0.06, ("ZSD", "ASD"): 0.35, ("ZSA", "ASD"): 0.23,
            ("ZSD", "ASA"): -0.08, ("ZSA", "ASA"): 0.43, ("ZSD", "ZSA"): 0.42,
        },
    )  # fmt: skip


class InHOffice(AbstractScenario):
    """TR 38.901 Indoor Hotspot - Office (InH), mixed office by default.

    Pathloss (Table 7.4.1-1): LOS ``32.4 + 17.3 log10 d_3D + 20 log10 fc``; NLOS
    ``max(PL_LOS, 17.3 + 38.3 log10 d_3D + 24.9 log10 fc)``; ``d_3D`` is clipped to the
    table's minimum of 1 m. Valid for 0.5-100 GHz. LOS probability (Table 7.4.2-1): mixed
    office, or open office with ``office="open"``. LSPs: Table 7.5-6 Part-2 with
    ``log10(1 + fc)`` (``fc < 6 GHz`` uses 6 GHz), ZSD Table 7.5-10. All UEs are indoors, so
    there is no O2I penetration and the ``indoor`` flag is ignored (LOS/NLOS columns only).

    Attributes:
        los_pathloss_coef: ``(32.4, 17.3, 20)``.
        nlos_pathloss_coef: ``(17.3, 38.3, 24.9)``.
        pathloss_offset_db: trainable offset added to every basic pathloss (dB).
    """

    los_lsp: LSPParams = eqx.field(default_factory=_inh_los)
    nlos_lsp: LSPParams = eqx.field(default_factory=_inh_nlos)
    o2i_lsp: LSPParams = eqx.field(default_factory=_inh_nlos)
    los_pathloss_coef: Float[Array, "3"] = eqx.field(
        default_factory=lambda: _f32([32.4, 17.3, 20.0])
    )
    nlos_pathloss_coef: Float[Array, "3"] = eqx.field(
        default_factory=lambda: _f32([17.3, 38.3, 24.9])
    )
    pathloss_offset_db: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(0.0))
    office: str = eqx.field(static=True, default="mixed")
    name: str = eqx.field(static=True, default="InH-Office")
    min_carrier_hz: float = eqx.field(static=True, default=0.5e9)
    max_carrier_hz: float = eqx.field(static=True, default=100e9)
    min_distance_m: float = eqx.field(static=True, default=1.0)
    lsp_fc_offset_ghz: float = eqx.field(static=True, default=1.0)
    lsp_min_fc_ghz: float = eqx.field(static=True, default=6.0)
    has_o2i: bool = eqx.field(static=True, default=False)
    o2i_zsd_from_outdoor: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.office not in ("mixed", "open"):
            raise ValueError(f"InHOffice office must be 'mixed' or 'open', got {self.office!r}.")

    def _distance_3d_m(self, distance_2d_m, h_bs_m, h_ut_m):
        sq = distance_2d_m**2 + (h_bs_m - h_ut_m) ** 2
        return jnp.maximum(jnp.sqrt(jnp.maximum(sq, 1e-12)), self.min_distance_m)

    def _pathloss_los_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, key):
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        return log_distance_pathloss_db(self.los_pathloss_coef, d3, carrier_hz / 1e9)

    def _pathloss_nlos_prime_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz):
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        return log_distance_pathloss_db(self.nlos_pathloss_coef, d3, carrier_hz / 1e9)

    def _los_probability(self, distance_2d_out_m, h_ut_m):
        d = distance_2d_out_m
        if self.office == "mixed":
            p = jnp.where(
                d <= 1.2,
                1.0,
                jnp.where(d < 6.5, jnp.exp(-(d - 1.2) / 4.7), 0.32 * jnp.exp(-(d - 6.5) / 32.6)),
            )
        else:
            p = jnp.where(
                d <= 5.0,
                1.0,
                jnp.where(
                    d <= 49.0, jnp.exp(-(d - 5.0) / 70.8), 0.54 * jnp.exp(-(d - 49.0) / 211.7)
                ),
            )
        return jnp.broadcast_to(p, jnp.broadcast_shapes(jnp.shape(p), jnp.shape(h_ut_m)))

    def _zsd_height_term(self, h_bs_m, h_ut_m, los):
        return jnp.zeros_like(h_ut_m)
