"""Scenario parameter pytrees: the base class and the per-condition LSP table.

Every numeric model parameter is a float32 array leaf, so a scenario can be calibrated with
``jax.grad`` / ``eqx.filter_grad`` taken with respect to the scenario itself. Structural
conventions of the tables (validity ranges, the frequency floor of the LSP formulas) are
static fields.

The LSP parameters follow TR 38.901 V16.1.0 Table 7.5-6 (Parts 1-2) and the ZSD tables
7.5-7 (UMa), 7.5-8 (UMi), 7.5-9 (RMa) and 7.5-10 (InH). (Rel-19, V19.x, revised several
UMa/UMi LSP values; those are not implemented here.)
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

# Order of the LSP vector used for the Table 7.5-6 cross-correlation (clause 7.5 step 4).
LSP_ORDER: tuple[str, ...] = ("SF", "K", "DS", "ASD", "ASA", "ZSD", "ZSA")
_INDEX = {n: i for i, n in enumerate(LSP_ORDER)}

SPEED_OF_LIGHT_M_S = 299_792_458.0


def _f32(x) -> Float[Array, "..."]:
    return jnp.asarray(x, dtype=jnp.float32)


def correlation_matrix(pairs: dict[tuple[str, str], float]) -> Float[Array, "7 7"]:
    """Symmetric 7x7 correlation matrix in :data:`LSP_ORDER` from Table 7.5-6 entries.

    Args:
        pairs: ``{("ASD", "DS"): 0.4, ...}``; missing pairs are 0, the diagonal is 1.
    """
    import numpy as np

    m = np.eye(len(LSP_ORDER), dtype=np.float32)
    for (a, b), v in pairs.items():
        i, j = _INDEX[a], _INDEX[b]
        m[i, j] = m[j, i] = v
    return _f32(m)


class LSPParams(eqx.Module):
    """One column (LOS, NLOS or O2I) of TR 38.901 Table 7.5-6 plus its ZSD table entry.

    Frequency-dependent log10-domain parameters are stored as ``(c, a)`` meaning
    ``c + a * log10(f_term)``, with ``f_term`` the scenario's frequency term in GHz
    (``fc`` for UMa, ``1 + fc`` for UMi/InH, after the table's low-frequency floor).

    Attributes:
        lgds_mean, lgds_std: log10(DS / 1 s) mean and std, ``(c, a)``.
        lgasd_mean, lgasd_std: log10(ASD / 1 deg), ``(c, a)``.
        lgasa_mean, lgasa_std: log10(ASA / 1 deg), ``(c, a)``.
        lgzsa_mean, lgzsa_std: log10(ZSA / 1 deg), ``(c, a)``.
        lgzsd_mean: log10(ZSD / 1 deg) mean ``max(floor, c + a_d d_2D/1000 + a_h h_term + a_f
            log10(f_term))`` stored as ``(c, a_d, a_h, a_f, floor)``; ``h_term`` is
            scenario-specific (Tables 7.5-7 to 7.5-10).
        lgzsd_std: log10(ZSD) std, ``(c, a_f)``.
        k_mean_db, k_std_db: Ricean K-factor (dB); zero for NLOS/O2I (no K).
        sf_std_db: shadow-fading standard deviation (dB).
        correlation: 7x7 cross-correlation of ``[SF, K, DS, ASD, ASA, ZSD, ZSA]``.
    """

    lgds_mean: Float[Array, "2"]
    lgds_std: Float[Array, "2"]
    lgasd_mean: Float[Array, "2"]
    lgasd_std: Float[Array, "2"]
    lgasa_mean: Float[Array, "2"]
    lgasa_std: Float[Array, "2"]
    lgzsa_mean: Float[Array, "2"]
    lgzsa_std: Float[Array, "2"]
    lgzsd_mean: Float[Array, "5"]
    lgzsd_std: Float[Array, "2"]
    k_mean_db: Float[Array, ""]
    k_std_db: Float[Array, ""]
    sf_std_db: Float[Array, ""]
    correlation: Float[Array, "7 7"]


def lsp_params(
    *,
    ds,
    ds_std,
    asd,
    asd_std,
    asa,
    asa_std,
    zsa,
    zsa_std,
    zsd,
    zsd_std,
    sf_std_db,
    corr,
    k_db=(0.0, 0.0),
) -> LSPParams:
    """Build an :class:`LSPParams` from table values; scalars mean frequency-independent."""

    def ca(v):
        return _f32(v if isinstance(v, tuple) else (v, 0.0))

    return LSPParams(
        lgds_mean=ca(ds),
        lgds_std=ca(ds_std),
        lgasd_mean=ca(asd),
        lgasd_std=ca(asd_std),
        lgasa_mean=ca(asa),
        lgasa_std=ca(asa_std),
        lgzsa_mean=ca(zsa),
        lgzsa_std=ca(zsa_std),
        lgzsd_mean=_f32(zsd),
        lgzsd_std=ca(zsd_std),
        k_mean_db=_f32(k_db[0]),
        k_std_db=_f32(k_db[1]),
        sf_std_db=_f32(sf_std_db),
        correlation=correlation_matrix(corr),
    )


class AbstractScenario(eqx.Module):
    """Base class of the TR 38.901 scenarios (UMa, UMi-Street Canyon, RMa, InH-Office).

    Concrete scenarios hold their Table 7.5-6 columns (``los_lsp``, ``nlos_lsp``, ``o2i_lsp``),
    a trainable ``pathloss_offset_db`` added to every basic pathloss (default 0 dB), and
    static validity ranges. The formulas specific to a scenario are its private methods; the
    public functions in :mod:`dtwin.channel` validate inputs and dispatch to them.
    """

    los_lsp: eqx.AbstractVar[LSPParams]
    nlos_lsp: eqx.AbstractVar[LSPParams]
    o2i_lsp: eqx.AbstractVar[LSPParams]
    pathloss_offset_db: eqx.AbstractVar[Float[Array, ""]]
    name: eqx.AbstractVar[str]
    # Table 7.4.1-1 / Note of 7.4.1 validity ranges (static).
    min_carrier_hz: eqx.AbstractVar[float]
    max_carrier_hz: eqx.AbstractVar[float]
    # The pathloss formula clips d_2D (outdoor) / d_3D (InH) from below to this value.
    min_distance_m: eqx.AbstractVar[float]
    # LSP frequency term: log10(lsp_fc_offset_ghz + max(fc_GHz, lsp_min_fc_ghz)).
    lsp_fc_offset_ghz: eqx.AbstractVar[float]
    lsp_min_fc_ghz: eqx.AbstractVar[float]
    # True if indoor links use the O2I column (UMa/UMi/RMa); False for InH (all indoor).
    has_o2i: eqx.AbstractVar[bool]
    # True if O2I links take the ZSD of their outdoor LOS/NLOS state (UMa/UMi, Tables 7.5-7/8).
    o2i_zsd_from_outdoor: eqx.AbstractVar[bool]

    # ----- scenario-specific formulas (inputs already validated and broadcast) -----
    @abc.abstractmethod
    def _pathloss_los_db(
        self,
        distance_2d_m: Array,
        h_bs_m: Array,
        h_ut_m: Array,
        carrier_hz: Array,
        key: PRNGKeyArray | None,
    ) -> Array:
        """LOS basic pathloss of Table 7.4.1-1 (dB), without ``pathloss_offset_db``."""

    @abc.abstractmethod
    def _pathloss_nlos_prime_db(
        self, distance_2d_m: Array, h_bs_m: Array, h_ut_m: Array, carrier_hz: Array
    ) -> Array:
        """PL'_NLOS of Table 7.4.1-1 (dB), before ``max(PL_LOS, PL'_NLOS)``."""

    @abc.abstractmethod
    def _los_probability(self, distance_2d_out_m: Array, h_ut_m: Array) -> Array:
        """LOS probability of Table 7.4.2-1."""

    @abc.abstractmethod
    def _zsd_height_term(self, h_bs_m: Array, h_ut_m: Array, los: Array) -> Array:
        """Height term ``h_term`` of the scenario's lgZSD mean (Tables 7.5-7 to 7.5-10)."""

    # ----- shared helpers -----
    def _distance_3d_m(self, distance_2d_m: Array, h_bs_m: Array, h_ut_m: Array) -> Array:
        """``d_3D`` from the clipped ``d_2D``; safe (finite gradient) at zero."""
        d2 = jnp.maximum(distance_2d_m, self.min_distance_m)
        sq = d2**2 + (h_bs_m - h_ut_m) ** 2
        return jnp.sqrt(jnp.maximum(sq, 1e-12))

    def _lsp_fc_term_ghz(self, carrier_hz: Array) -> Array:
        return self.lsp_fc_offset_ghz + jnp.maximum(carrier_hz / 1e9, self.lsp_min_fc_ghz)

    def _los_sf_std_db(
        self,
        distance_2d_m: Array | None,
        h_bs_m: Array | None,
        h_ut_m: Array | None,
        carrier_hz: Array | None,
    ) -> Array:
        """LOS shadow-fading std (dB); RMa overrides it (breakpoint-dependent)."""
        return self.los_lsp.sf_std_db


def log_distance_pathloss_db(
    coef: Float[Array, "..."], distance_3d_m: Array, carrier_ghz: Array, h_ut_m: Array | None = None
) -> Array:
    """``c + a_d log10(d_3D) + a_f log10(fc_GHz) [+ a_h (h_UT - 1.5)]`` (Table 7.4.1-1 form).

    Args:
        coef: ``(c, a_d, a_f)`` or ``(c, a_d, a_f, a_h)``.
    """
    pl = coef[0] + coef[1] * jnp.log10(distance_3d_m) + coef[2] * jnp.log10(carrier_ghz)
    if coef.shape[0] > 3:
        pl = pl + coef[3] * (h_ut_m - 1.5)
    return pl


def dual_slope_los_pathloss_db(
    coef: Float[Array, "3"],
    distance_2d_m: Array,
    distance_3d_m: Array,
    h_bs_m: Array,
    h_ut_m: Array,
    carrier_hz: Array,
    h_e_m: Array | float,
) -> Array:
    """UMa/UMi LOS pathloss with breakpoint (Table 7.4.1-1).

    ``PL1 = c + a_d log10(d_3D) + a_f log10(fc)`` for ``d_2D < d'_BP`` and
    ``PL2 = c + 40 log10(d_3D) + a_f log10(fc) - (40 - a_d)/2 log10(d'_BP^2 + (h_BS - h_UT)^2)``
    beyond, with ``d'_BP = 4 h'_BS h'_UT fc / c`` and ``h' = h - h_E``. The PL2 coefficient
    ``(40 - a_d)/2`` equals the table's 9 (UMa, a_d = 22) and 9.5 (UMi, a_d = 21) and keeps
    PL continuous at the breakpoint when ``a_d`` is calibrated.
    """
    fc_ghz = carrier_hz / 1e9
    d_bp = 4.0 * (h_bs_m - h_e_m) * (h_ut_m - h_e_m) * carrier_hz / SPEED_OF_LIGHT_M_S
    pl1 = log_distance_pathloss_db(coef, distance_3d_m, fc_ghz)
    pl2 = (
        coef[0]
        + 40.0 * jnp.log10(distance_3d_m)
        + coef[2] * jnp.log10(fc_ghz)
        - 0.5 * (40.0 - coef[1]) * jnp.log10(d_bp**2 + (h_bs_m - h_ut_m) ** 2)
    )
    return jnp.where(distance_2d_m < d_bp, pl1, pl2)
