"""RMa (rural macro) scenario: TR 38.901 Tables 7.4.1-1, 7.4.2-1, 7.5-6 Part-2, 7.5-9."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._scenario import SPEED_OF_LIGHT_M_S, AbstractScenario, LSPParams, _f32, lsp_params


def _rma_los() -> LSPParams:
    return lsp_params(
        ds=-7.49, ds_std=0.55,
        asd=0.90, asd_std=0.38,
        asa=1.52, asa_std=0.24,
        zsa=0.47, zsa_std=0.40,
        zsd=(0.22, -0.17, -0.01, 0.0, -1.0), zsd_std=0.34,
        sf_std_db=4.0, k_db=(7.0, 4.0),
        corr={
            ("DS", "SF"): -0.5, ("ZSD", "SF"): 0.01, ("ZSA", "SF"): -0.17, ("ZSA", "K"): -0.02,
            ("ZSD", "DS"): -0.05, ("ZSA", "DS"): 0.27, ("ZSD", "ASD"): 0.73,
            ("ZSA", "ASD"): -0.14, ("ZSD", "ASA"): -0.20, ("ZSA", "ASA"): 0.24,
            ("ZSD", "ZSA"): -0.07,
        },
    )  # fmt: skip


def _rma_nlos() -> LSPParams:
    return lsp_params(
        ds=-7.43, ds_std=0.48,
        asd=0.95, asd_std=0.45,
        asa=1.52, asa_std=0.13,
        zsa=0.58, zsa_std=0.37,
        zsd=(0.28, -0.19, -0.01, 0.0, -1.0), zsd_std=0.30,
        sf_std_db=8.0,
        corr={
            ("ASD", "DS"): -0.4, ("ASD", "SF"): 0.6, ("DS", "SF"): -0.5, ("ZSD", "SF"): -0.04,
            ("ZSA", "SF"): -0.25, ("ZSD", "DS"): -0.10, ("ZSA", "DS"): -0.40,
            ("ZSD", "ASD"): 0.42, ("ZSA", "ASD"): -0.27, ("ZSD", "ASA"): -0.18,
            ("ZSA", "ASA"): 0.26, ("ZSD", "ZSA"): -0.27,
        },
    )  # fmt: skip


def _rma_o2i() -> LSPParams:
    return lsp_params(
        ds=-7.47, ds_std=0.24,
        asd=0.67, asd_std=0.18,
        asa=1.66, asa_std=0.21,
        zsa=0.93, zsa_std=0.22,
        zsd=(0.28, -0.19, -0.01, 0.0, -1.0), zsd_std=0.30,
        sf_std_db=8.0,
        corr={
            ("ASD", "ASA"): -0.7, ("ZSD", "ASD"): 0.66, ("ZSA", "ASD"): 0.47,
            ("ZSD", "ASA"): -0.55, ("ZSA", "ASA"): -0.22,
        },
    )  # fmt: skip


def _rma_breakpoint_m(h_bs_m, h_ut_m, carrier_hz):
    """``d_BP = 2 pi h_BS h_UT fc / c`` (Table 7.4.1-1 note 5)."""
    return 2.0 * math.pi * h_bs_m * h_ut_m * carrier_hz / SPEED_OF_LIGHT_M_S


class RMa(AbstractScenario):
    """TR 38.901 Rural Macro (RMa).

    Pathloss (Table 7.4.1-1), with ``h`` the average building height and ``W`` the average
    street width (array leaves, defaults 5 m and 20 m):
    ``PL1 = 20 log10(40 pi d_3D fc/3) + min(0.03 h^1.72, 10) log10 d_3D - min(0.044 h^1.72,
    14.77) + 0.002 log10(h) d_3D``; ``PL2 = PL1(d_BP) + 40 log10(d_3D / d_BP)`` beyond
    ``d_BP = 2 pi h_BS h_UT fc / c``; ``PL'_NLOS = 161.04 - 7.1 log10 W + 7.5 log10 h -
    (24.37 - 3.7 (h/h_BS)^2) log10 h_BS + (43.42 - 3.1 log10 h_BS)(log10 d_3D - 3) +
    20 log10 fc - (3.2 (log10 11.75 h_UT)^2 - 4.97)``. Valid for 0.5-30 GHz. LOS shadow
    fading 4 dB before and 6 dB after the breakpoint. LSPs: Table 7.5-6 Part-2 (frequency
    independent), ZSD Table 7.5-9 (O2I uses the NLOS formula). Only the low-loss O2I model
    applies to RMa (clause 7.4.3.1); car penetration (7.4.3.2) is not modelled here.
    """

    los_lsp: LSPParams = eqx.field(default_factory=_rma_los)
    nlos_lsp: LSPParams = eqx.field(default_factory=_rma_nlos)
    o2i_lsp: LSPParams = eqx.field(default_factory=_rma_o2i)
    building_height_m: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(5.0))
    street_width_m: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(20.0))
    los_sf_std_beyond_bp_db: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(6.0))
    pathloss_offset_db: Float[Array, ""] = eqx.field(default_factory=lambda: _f32(0.0))
    name: str = eqx.field(static=True, default="RMa")
    min_carrier_hz: float = eqx.field(static=True, default=0.5e9)
    max_carrier_hz: float = eqx.field(static=True, default=30e9)
    min_distance_m: float = eqx.field(static=True, default=10.0)
    lsp_fc_offset_ghz: float = eqx.field(static=True, default=0.0)
    lsp_min_fc_ghz: float = eqx.field(static=True, default=0.0)
    has_o2i: bool = eqx.field(static=True, default=True)
    o2i_zsd_from_outdoor: bool = eqx.field(static=True, default=False)

    def _pl1_db(self, d3, fc_ghz):
        h = self.building_height_m
        return (
            20.0 * jnp.log10(40.0 * math.pi * d3 * fc_ghz / 3.0)
            + jnp.minimum(0.03 * h**1.72, 10.0) * jnp.log10(d3)
            - jnp.minimum(0.044 * h**1.72, 14.77)
            + 0.002 * jnp.log10(h) * d3
        )

    def _pathloss_los_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, key):
        d2 = jnp.maximum(distance_2d_m, self.min_distance_m)
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        fc_ghz = carrier_hz / 1e9
        d_bp = _rma_breakpoint_m(h_bs_m, h_ut_m, carrier_hz)
        pl1 = self._pl1_db(d3, fc_ghz)
        pl2 = self._pl1_db(d_bp, fc_ghz) + 40.0 * jnp.log10(d3 / d_bp)
        return jnp.where(d2 < d_bp, pl1, pl2)

    def _pathloss_nlos_prime_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz):
        d3 = self._distance_3d_m(distance_2d_m, h_bs_m, h_ut_m)
        h, w = self.building_height_m, self.street_width_m
        return (
            161.04
            - 7.1 * jnp.log10(w)
            + 7.5 * jnp.log10(h)
            - (24.37 - 3.7 * (h / h_bs_m) ** 2) * jnp.log10(h_bs_m)
            + (43.42 - 3.1 * jnp.log10(h_bs_m)) * (jnp.log10(d3) - 3.0)
            + 20.0 * jnp.log10(carrier_hz / 1e9)
            - (3.2 * jnp.log10(11.75 * h_ut_m) ** 2 - 4.97)
        )

    def _los_probability(self, distance_2d_out_m, h_ut_m):
        d = jnp.maximum(distance_2d_out_m, 10.0)
        p = jnp.where(distance_2d_out_m <= 10.0, 1.0, jnp.exp(-(d - 10.0) / 1000.0))
        return jnp.broadcast_to(p, jnp.broadcast_shapes(jnp.shape(p), jnp.shape(h_ut_m)))

    def _zsd_height_term(self, h_bs_m, h_ut_m, los):
        return h_ut_m - 1.5

    def _los_sf_std_db(self, distance_2d_m, h_bs_m, h_ut_m, carrier_hz):
        if distance_2d_m is None or h_bs_m is None or h_ut_m is None or carrier_hz is None:
            return self.los_lsp.sf_std_db
        d_bp = _rma_breakpoint_m(h_bs_m, h_ut_m, carrier_hz)
        return jnp.where(distance_2d_m < d_bp, self.los_lsp.sf_std_db, self.los_sf_std_beyond_bp_db)
