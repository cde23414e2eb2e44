"""UMa (urban macro) scenario: TR 38.901 Tables 7.4.1-1, 7.4.2-1, 7.5-6 Part-1, 7.5-7."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._scenario import (
    AbstractScenario,
    LSPParams,
    _f32,
    dual_slope_los_pathloss_db,
    log_distance_pathloss_db,
    lsp_params,
)


def _uma_los() -> LSPParams:
    return lsp_params(
        ds=(-6.955, -0.0963), ds_std=0.66,
        asd=(1.06, 0.1114), asd_std=0.28,
        asa=1.81, asa_std=0.20,
        zsa=0.95, zsa_std=0.16,
        zsd=(0.75, -2.1, -0.01, 0.0, -0.5), zsd_std=0.40,
        sf_std_db=4.0, k_db=(9.0, 3.5),
        corr={
            ("ASD", "DS"): 0.4, ("ASA", "DS"): 0.8, ("ASA", "SF"): -0.5, ("ASD", "SF"): -0.5,
            ("DS", "SF"): -0.4, ("ASA", "K"): -0.2, ("DS", "K"): -0.4, ("ZSA", "SF"): -0.8,
            ("ZSD", "DS"): -0.2, ("ZSD", "ASD"): 0.5, ("ZSD", "ASA"): -0.3, ("ZSA", "ASA"): 0.4,
        },
    )  # fmt: skip


def _uma_nlos() -> LSPParams:
    return lsp_params(
        ds=(-6.28, -0.204), ds_std=0.39,
        asd=(1.5, -0.1144), asd_std=0.28,
        asa=(2.08, -0.27), asa_std=0.11,
        zsa=(1.512, -0.3236), zsa_std=0.16,
        zsd=(0.9, -2.1, -0.01, 0.0, -0.5), zsd_std=0.49,
        sf_std_db=6.0,
        corr={
            ("ASD", "DS"): 0.4, ("ASA", "DS"): 0.6, ("ASD", "SF"): -0.6, ("DS", "SF"): -0.4,
            ("ASD", "ASA"): 0.4, ("ZSA", "SF"): -0.4, ("ZSD", "DS"): -0.5, ("ZSD", "ASD"): 0.5,
            ("ZSA", "ASD"): -0.1,
        },
    )  # fmt: skip


def _urban_o2i() -> LSPParams:
    """O2I column shared by UMa and UMi (Table 7.5-6 Part-1); its ZSD entry is unused."""
    return lsp_params(
        ds=-6.62, ds_std=0.32,
        asd=1.25, asd_std=0.42,
        asa=1.76, asa_std=0.16,
        zsa=1.01, zsa_std=0.43,
        zsd=(0.9, -2.1, -0.01, 0.0, -0.5), zsd_std=0.49,
        sf_std_db=7.0,
        corr={
            ("ASD", "DS"): 0.4, ("ASA", "DS"): 0.4, ("ASD", "SF"): 0.2, ("DS", "SF"): -0.5,
            ("ZSD", "DS"): -0.6, ("ZSA", "DS"): -0.2, ("ZSD", "ASD"): -0.2, ("ZSA", "ASA"): 0.5,
            ("ZSD", "ZSA"): 0.5,
        },
    )  # fmt: skip


@eqx.filter_jit
def sample_uma_environment_height_m(
    key: PRNGKeyArray, distance_2d_m: Array, h_ut_m: Array
) -> Array:
    """Effective environment height ``h_E`` of TR 38.901 Table 7.4.1-1 Note 1 (UMa).

    ``h_E = 1 m`` with probability ``1 / (1 + C(d_2D, h_UT))``, otherwise drawn uniformly from
    ``{12, 15, ..., h_UT - 1.5}``, with ``C = g(d_2D) ((h_UT - 13)/10)^1.5`` for
    ``h_UT >= 13 m`` (0 below) and ``g(d_2D) = 5/4 (d_2D/100)^3 exp(-d_2D/150)`` for
    ``d_2D > 18 m`` (0 below). Shapes broadcast; one independent draw per element.
    """
    shape = jnp.broadcast_shapes(jnp.shape(distance_2d_m), jnp.shape(h_ut_m))
    k_choice, k_level = jax.random.split(key)
    g = jnp.where(
        distance_2d_m > 18.0,
        1.25 * (distance_2d_m / 100.0) ** 3 * jnp.exp(-distance_2d_m / 150.0),
        0.0,
    )
    c = g * (jnp.maximum(h_ut_m - 13.0, 0.0) / 10.0) ** 1.5
    is_one = jax.random.uniform(k_choice, shape) < 1.0 / (1.0 + c)
    n_levels = jnp.maximum(jnp.floor((h_ut_m - 1.5 - 12.0) / 3.0) + 1.0, 1.0)
    level = jnp.minimum(jnp.floor(jax.random.uniform(k_level, shape) * n_levels), n_levels - 1.0)
    return jnp.where(is_one, 1.0, 12.0 + 3.0 * level)


class UMa(AbstractScenario):
    """TR 38.901 Urban Macro (UMa).

    Pathloss (Table 7.4.1-1): LOS dual-slope with breakpoint ``d'_BP = 4 h'_BS h'_UT fc / c``
    (``h_E = 1 m`` by default, or drawn per Note 1 when a ``key`` is passed to the pathloss
    functions); NLOS ``max(PL_LOS, 13.54 + 39.08 log10 d_3D + 20 log10 fc - 0.6 (h_UT - 1.5))``.
    Valid for 0.5-100 GHz. LSPs: Table 7.5-6 Part-1 (``fc < 6 GHz`` uses 6 GHz), ZSD Table 7.5-7.

    Attributes:
        los_pathloss_coef: ``(28, 22, 20)``: intercept, ``log10 d_3D`` and ``log10 fc`` slopes.
        nlos_pathloss_coef: ``(13.54, 39.08, 20, -0.6)``: PL'_NLOS coefficients (last: h_UT).
        pathloss_offset_db: trainable offset added to every basic pathloss (dB).
    """

    los_lsp: LSPParams = eqx.field(default_factory=_uma_los)
    nlos_lsp: LSPParams = eqx.field(default_factory=_uma_nlos)
    o2i_lsp: LSPParams = eqx.field(default_factory=_urban_o2i)
    los_pathloss_coef: Float[Array, "3"] = eqx.field(
        default_factory=lambda: _f32([28.0, 22.0, 20.0])
    )
    nlos_pathloss_coef: Float[Array, "4"] = eqx.field(
        default_factory=lambda: _f32([13.54, 39.08, 20.0, -0.6])
    )
    pathloss_offset_db: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(0.0))
    name: str = eqx.field(static=True, default="UMa")
    min_carrier_hz: float = eqx.field(static=True, default=0.5e9)
    max_carrier_hz: float = eqx.field(static=True, default=100e9)
    min_distance_m: float = eqx.field(static=True, default=10.0)
    lsp_fc_offset_ghz: float = eqx.field(static=True, default=0.0)
    lsp_min_fc_ghz: float = eqx.field(static=True, default=6.0)
    has_o2i: bool = eqx.field(static=True, default=True)
    o2i_zsd_from_outdoor: bool = eqx.field(static=True, default=True)

    def _pathloss_los_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, key):
        d2 = jnp.maximum(distance_2d_m, self.min_distance_m)
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        h_e = 1.0 if key is None else sample_uma_environment_height_m(key, d2, h_ut_m)
        return dual_slope_los_pathloss_db(
            self.los_pathloss_coef, d2, d3, h_bs_m, h_ut_m, carrier_hz, h_e
        )

    def _pathloss_nlos_prime_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz):
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        return log_distance_pathloss_db(self.nlos_pathloss_coef, d3, carrier_hz / 1e9, h_ut_m)

    def _los_probability(self, distance_2d_out_m, h_ut_m):
        d = jnp.maximum(distance_2d_out_m, 18.0)
        c_h = (jnp.clip(h_ut_m - 13.0, 0.0, 10.0) / 10.0) ** 1.5
        p = (18.0 / d + jnp.exp(-d / 63.0) * (1.0 - 18.0 / d)) * (
            1.0 + c_h * 1.25 * (d / 100.0) ** 3 * jnp.exp(-d / 150.0)
        )
        return jnp.where(distance_2d_out_m <= 18.0, 1.0, jnp.minimum(p, 1.0))

    def _zsd_height_term(self, h_bs_m, h_ut_m, los):
        return h_ut_m - 1.5
