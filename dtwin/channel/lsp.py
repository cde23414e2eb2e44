"""Large-scale parameters (TR 38.901 clause 7.5 step 4) and shadow-fading statistics.

LSPs are log-normal: the vector ``[SF, K, DS, ASD, ASA, ZSD, ZSA]`` (SF and K in dB, the
spreads as log10 of seconds/degrees) is ``mean + std * (L z)`` with ``z ~ N(0, I)`` and ``L``
the Cholesky factor of the Table 7.5-6 cross-correlation matrix of the link's condition (LOS,
NLOS or O2I; K is uncorrelated and unused outside LOS). Means and stds follow Table 7.5-6 and
the ZSD Tables 7.5-7 (UMa), 7.5-8 (UMi), 7.5-9 (RMa) and 7.5-10 (InH). Spreads are clipped
to ASD, ASA <= 104 deg and ZSD, ZSA <= 52 deg (clause 7.5 step 4).

Spatial correlation of LSPs across UEs (the correlation distances of Table 7.5-6) is not
modelled: every link is drawn independently.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._scenario import LSP_ORDER, AbstractScenario, LSPParams
from ._validate import as_condition, check_scenario, link_inputs

_MAX_AZIMUTH_SPREAD_DEG = 104.0
_MAX_ZENITH_SPREAD_DEG = 52.0


class LSPs(eqx.Module):
    """One realisation of the large-scale parameters of every link.

    Attributes:
        ds_s: RMS delay spread (s).
        asd_deg, asa_deg: azimuth spread of departure / arrival (deg), <= 104.
        zsd_deg, zsa_deg: zenith spread of departure / arrival (deg), <= 52.
        k_db: Ricean K-factor (dB) for LOS links; ``-inf`` (no specular part) otherwise.
        sf_db: shadow fading (dB), zero mean; add it to the pathloss.
    """

    ds_s: Float[Array, "..."]
    asd_deg: Float[Array, "..."]
    asa_deg: Float[Array, "..."]
    zsd_deg: Float[Array, "..."]
    zsa_deg: Float[Array, "..."]
    k_db: Float[Array, "..."]
    sf_db: Float[Array, "..."]


def _condition_masks(scenario: AbstractScenario, los: Array, indoor: Array):
    """Boolean masks ``(is_los, is_indoor)`` (soft inputs thresholded at 0.5)."""
    is_los = los > 0.5
    is_indoor = (indoor > 0.5) if scenario.has_o2i else jnp.zeros_like(is_los)
    return is_los, is_indoor


def _column_stats(scenario, p: LSPParams, f_log, d, hb, hu, column_is_los: bool, sf_std, shape):
    """Mean and std vectors ``[..., 7]`` of one Table 7.5-6 column for every link."""

    def lin(ca):
        return ca[0] + ca[1] * f_log

    z = p.lgzsd_mean
    h_term = scenario._zsd_height_term(hb, hu, jnp.asarray(column_is_los))
    zsd_mean = jnp.maximum(z[4], z[0] + z[1] * d / 1000.0 + z[2] * h_term + z[3] * f_log)
    means = [0.0, p.k_mean_db, lin(p.lgds_mean), lin(p.lgasd_mean), lin(p.lgasa_mean), zsd_mean,
             lin(p.lgzsa_mean)]  # fmt: skip
    stds = [sf_std, p.k_std_db, lin(p.lgds_std), lin(p.lgasd_std), lin(p.lgasa_std),
            lin(p.lgzsd_std), lin(p.lgzsa_std)]  # fmt: skip
    dtype = jnp.result_type(d.dtype, jnp.float32)
    mean = jnp.stack([jnp.broadcast_to(jnp.asarray(m, dtype), shape) for m in means], -1)
    std = jnp.stack([jnp.broadcast_to(jnp.asarray(s, dtype), shape) for s in stds], -1)
    return mean, std


def _select(is_los, is_indoor, los_v, nlos_v, o2i_v):
    """Pick the O2I / LOS / NLOS value per link (trailing LSP axis)."""
    il, ii = is_los[..., None], is_indoor[..., None]
    return jnp.where(ii, o2i_v, jnp.where(il, los_v, nlos_v))


@eqx.filter_jit
def _statistics(scenario, los, indoor, fc, d, hb, hu, shape):
    """Per-link LSP mean/std and the condition masks (compiled; inputs already validated)."""
    is_los, is_indoor = _condition_masks(scenario, jnp.broadcast_to(los, shape),
                                         jnp.broadcast_to(indoor, shape))  # fmt: skip
    f_log = jnp.log10(scenario._lsp_fc_term_ghz(fc))
    los_sf = scenario._los_sf_std_db(d, hb, hu, fc)
    args = (f_log, d, hb, hu)
    m_los, s_los = _column_stats(scenario, scenario.los_lsp, *args, True, los_sf, shape)
    m_nlos, s_nlos = _column_stats(
        scenario, scenario.nlos_lsp, *args, False, scenario.nlos_lsp.sf_std_db, shape
    )
    m_o2i, s_o2i = _column_stats(
        scenario, scenario.o2i_lsp, *args, False, scenario.o2i_lsp.sf_std_db, shape
    )
    if scenario.o2i_zsd_from_outdoor:
        zsd = LSP_ORDER.index("ZSD")
        outdoor_m = jnp.where(is_los, m_los[..., zsd], m_nlos[..., zsd])
        outdoor_s = jnp.where(is_los, s_los[..., zsd], s_nlos[..., zsd])
        m_o2i = m_o2i.at[..., zsd].set(outdoor_m)
        s_o2i = s_o2i.at[..., zsd].set(outdoor_s)
    mean = _select(is_los, is_indoor, m_los, m_nlos, m_o2i)
    std = _select(is_los, is_indoor, s_los, s_nlos, s_o2i)
    return mean, std, is_los, is_indoor


def lsp_log_statistics(
    scenario: AbstractScenario,
    los: ArrayLike,
    indoor: ArrayLike,
    carrier_hz: ArrayLike,
    distance_2d_m: ArrayLike,
    h_bs_m: ArrayLike,
    h_ut_m: ArrayLike,
) -> tuple[Float[Array, "... 7"], Float[Array, "... 7"]]:
    """Per-link mean and std of the LSP vector in :data:`LSP_ORDER` (Table 7.5-6).

    ``[SF (dB), K (dB), lgDS, lgASD, lgASA, lgZSD, lgZSA]`` with ``lgX = log10(X / 1 s or deg)``.
    Frequency-dependent entries use ``log10(fc)`` (UMa, ``fc < 6 GHz -> 6``) or
    ``log10(1 + fc)`` (UMi ``fc < 2 -> 2``; InH ``fc < 6 -> 6``), fc in GHz. Indoor links use
    the O2I column (ZSD of their outdoor LOS/NLOS state for UMa/UMi, NLOS formula for RMa).
    Arguments as :func:`sample_lsps`.
    """
    shape, d, hb, hu, fc, c = link_inputs(
        scenario, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, los=los, indoor=indoor
    )
    mean, std, _, _ = _statistics(scenario, c["los"], c["indoor"], fc, d, hb, hu, shape)
    return mean, std


def shadow_fading_std_db(
    scenario: AbstractScenario,
    los: ArrayLike,
    indoor: ArrayLike,
    *,
    distance_2d_m: ArrayLike | None = None,
    h_bs_m: ArrayLike | None = None,
    h_ut_m: ArrayLike | None = None,
    carrier_hz: ArrayLike | None = None,
) -> Float[Array, "..."]:
    """Shadow-fading standard deviation (dB), TR 38.901 Tables 7.4.1-1 / 7.5-6.

    LOS / NLOS / O2I: UMa 4 / 6 / 7, UMi 4 / 7.82 / 7, RMa 4 (6 beyond the breakpoint) / 8 / 8,
    InH 3 / 8.03 (``indoor`` ignored). Soft ``los``/``indoor`` weights in [0, 1] interpolate
    linearly. RMa's LOS value depends on ``d_2D`` vs ``d_BP = 2 pi h_BS h_UT fc / c``: pass
    all of ``distance_2d_m, h_bs_m, h_ut_m, carrier_hz`` to get it; without them the
    within-breakpoint 4 dB is returned.

    Args:
        scenario: a scenario pytree.
        los: bool / [0, 1] array (1 = LOS; for indoor UTs the outdoor LOS state).
        indoor: bool / [0, 1] array (1 = indoor UT).

    Returns:
        Std (dB), broadcast shape of ``los`` and ``indoor`` (and the geometry, if given).
    """
    check_scenario(scenario)
    w_los = as_condition("los", los)
    w_in = as_condition("indoor", indoor)
    geometry = (distance_2d_m, h_bs_m, h_ut_m, carrier_hz)
    if all(g is not None for g in geometry):
        shape, d, hb, hu, fc, c = link_inputs(
            scenario, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, los=w_los, indoor=w_in
        )
        los_std = scenario._los_sf_std_db(d, hb, hu, fc)
    else:
        shape = jnp.broadcast_shapes(jnp.shape(w_los), jnp.shape(w_in))
        los_std = scenario._los_sf_std_db(None, None, None, None)
    outdoor = w_los * los_std + (1.0 - w_los) * scenario.nlos_lsp.sf_std_db
    if scenario.has_o2i:
        std = w_in * scenario.o2i_lsp.sf_std_db + (1.0 - w_in) * outdoor
    else:
        std = outdoor
    return jnp.broadcast_to(std, shape)


def sample_lsps(
    key: PRNGKeyArray,
    scenario: AbstractScenario,
    los: ArrayLike,
    indoor: ArrayLike,
    carrier_hz: ArrayLike,
    distance_2d_m: ArrayLike,
    h_bs_m: ArrayLike,
    h_ut_m: ArrayLike,
) -> LSPs:
    """Draw correlated log-normal LSPs per link, TR 38.901 clause 7.5 step 4.

    ``x = mean + std * (L_c z)``, ``z ~ N(0, I_7)``, with ``L_c`` the Cholesky factor of the
    Table 7.5-6 cross-correlation matrix of the link's condition ``c`` (LOS if ``los`` and
    outdoor, NLOS if outdoor non-LOS, O2I if ``indoor``; InH ignores ``indoor``). Each link is
    independent (no spatial correlation). Differentiable w.r.t. the scenario's leaves
    (reparameterised), the distance, heights and carrier.

    Args:
        key: PRNG key.
        scenario: a scenario pytree.
        los: bool / [0, 1] array (thresholded at 0.5; outdoor LOS state for indoor UTs).
        indoor: bool / [0, 1] array (thresholded at 0.5).
        carrier_hz: carrier frequency (Hz).
        distance_2d_m: BS-UT horizontal distance (m), used by the lgZSD mean.
        h_bs_m, h_ut_m: antenna heights (m).

    Returns:
        :class:`LSPs` with arrays of the broadcast shape of the inputs.
    """
    shape, d, hb, hu, fc, c = link_inputs(
        scenario, distance_2d_m, h_bs_m, h_ut_m, carrier_hz, los=los, indoor=indoor
    )
    return _sample_core(key, scenario, c["los"], c["indoor"], fc, d, hb, hu, shape)


@eqx.filter_jit
def _sample_core(key, scenario, los, indoor, fc, d, hb, hu, shape) -> LSPs:
    """Compiled body of :func:`sample_lsps`."""
    mean, std, is_los, is_indoor = _statistics(scenario, los, indoor, fc, d, hb, hu, shape)
    z = jax.random.normal(key, (*shape, len(LSP_ORDER)), dtype=mean.dtype)

    def correlate(p: LSPParams):
        return z @ jnp.linalg.cholesky(p.correlation.astype(mean.dtype)).T

    y = _select(
        is_los, is_indoor,
        correlate(scenario.los_lsp), correlate(scenario.nlos_lsp), correlate(scenario.o2i_lsp),
    )  # fmt: skip
    x = mean + std * y
    i = {n: k for k, n in enumerate(LSP_ORDER)}
    lsp = 10.0**x
    return LSPs(
        ds_s=lsp[..., i["DS"]],
        asd_deg=jnp.minimum(lsp[..., i["ASD"]], _MAX_AZIMUTH_SPREAD_DEG),
        asa_deg=jnp.minimum(lsp[..., i["ASA"]], _MAX_AZIMUTH_SPREAD_DEG),
        zsd_deg=jnp.minimum(lsp[..., i["ZSD"]], _MAX_ZENITH_SPREAD_DEG),
        zsa_deg=jnp.minimum(lsp[..., i["ZSA"]], _MAX_ZENITH_SPREAD_DEG),
        k_db=jnp.where(is_los & ~is_indoor, x[..., i["K"]], -jnp.inf),
        sf_db=x[..., i["SF"]],
    )
