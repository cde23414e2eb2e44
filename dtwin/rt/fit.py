"""Site-specific TR 38.901-style channel parameters fitted to virtual soundings.

`fit_site_channel` turns the per-link large-scale parameters of a sounding (`LinkLSPs`) into
per-LOS-state statistics: a log-distance pathloss ``PL = A + B log10(d_3D / 1 m)`` (dB),
its shadow-fading standard deviation, and the log10-domain means and standard deviations of
DS, ASD, ASA, ZSD, ZSA plus the K-factor (TR 38.901 Table 7.5-6 quantities). `to_scenario`
writes them into a copy of a `dtwin.channel` scenario.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from dtwin.rt.sounding import LinkLSPs


class LSPStats(eqx.Module):
    """Fitted statistics of one LOS state (NaN where fewer links than needed were sounded).

    Attributes:
        pathloss_a_db, pathloss_b_db: PL = A + B log10(d_3D / 1 m), least squares (>= 3 links).
        sf_std_db: standard deviation of the PL residuals (shadow fading), dB.
        lgds_mean, lgds_std: log10(DS / 1 s).
        lgasd_mean, lgasd_std, lgasa_mean, lgasa_std, lgzsd_mean, lgzsd_std, lgzsa_mean,
            lgzsa_std: log10(spread / 1 deg); links with a zero spread (single path, or all
            paths in one plane) are left out of the log statistics.
        k_mean_db, k_std_db: K-factor (LOS only).
        num_links: links in this state with at least one path.
    """

    pathloss_a_db: Float[Array, ""]
    pathloss_b_db: Float[Array, ""]
    sf_std_db: Float[Array, ""]
    lgds_mean: Float[Array, ""]
    lgds_std: Float[Array, ""]
    lgasd_mean: Float[Array, ""]
    lgasd_std: Float[Array, ""]
    lgasa_mean: Float[Array, ""]
    lgasa_std: Float[Array, ""]
    lgzsd_mean: Float[Array, ""]
    lgzsd_std: Float[Array, ""]
    lgzsa_mean: Float[Array, ""]
    lgzsa_std: Float[Array, ""]
    k_mean_db: Float[Array, ""]
    k_std_db: Float[Array, ""]
    num_links: Float[Array, ""]


class SiteChannelFit(eqx.Module):
    """Site-specific channel parameters from a virtual sounding.

    Attributes:
        los, nlos: per-state `LSPStats`.
        carrier_hz: carrier of the sounding.
        distance_2d_m, h_bs_m, h_ut_m: geometry of the sounded links ``[rx, tx]``.
        pathloss_db: ray-traced pathloss (= -path gain) of the sounded links, NaN without paths.
        los_links: LOS state of the sounded links.
    """

    los: LSPStats
    nlos: LSPStats
    carrier_hz: Float[Array, ""]
    distance_2d_m: Float[Array, "rx tx"]
    h_bs_m: Float[Array, "rx tx"]
    h_ut_m: Float[Array, "rx tx"]
    pathloss_db: Float[Array, "rx tx"]
    los_links: Bool[Array, "rx tx"]


def _mean_std(x, mask, min_n=2):
    n = jnp.sum(mask)
    xm = jnp.where(mask, x, 0.0)
    mean = jnp.sum(xm) / jnp.maximum(n, 1)
    var = jnp.sum(jnp.where(mask, jnp.square(x - mean), 0.0)) / jnp.maximum(n - 1, 1)
    ok = n >= min_n
    return jnp.where(ok, mean, jnp.nan), jnp.where(ok, jnp.sqrt(var), jnp.nan)


def _log_stats(x, mask):
    m = mask & jnp.isfinite(x) & (x > 0)
    return _mean_std(jnp.log10(jnp.where(m, x, 1.0)), m)


def fit_pathloss(
    pathloss_db: Float[Array, " n"], distance_3d_m: Float[Array, " n"], mask: Bool[Array, " n"]
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Least-squares ``PL = A + B log10(d)`` over the masked links; returns ``(A, B, sigma_SF)``.

    sigma_SF is the residual standard deviation with n - 2 degrees of freedom. NaN if fewer than
    3 links.
    """
    m = mask & jnp.isfinite(pathloss_db)
    n = jnp.sum(m)
    x = jnp.log10(jnp.maximum(distance_3d_m, 1e-3))
    y = jnp.where(m, pathloss_db, 0.0)
    nn = jnp.maximum(n, 1)
    mx = jnp.sum(jnp.where(m, x, 0.0)) / nn
    my = jnp.sum(y) / nn
    sxx = jnp.sum(jnp.where(m, jnp.square(x - mx), 0.0))
    sxy = jnp.sum(jnp.where(m, (x - mx) * (y - my), 0.0))
    b = sxy / jnp.where(sxx > 0, sxx, 1.0)
    a = my - b * mx
    r = jnp.where(m, y - a - b * x, 0.0)
    sf = jnp.sqrt(jnp.sum(jnp.square(r)) / jnp.maximum(n - 2, 1))
    ok = (n >= 3) & (sxx > 0)
    return tuple(jnp.where(ok, v, jnp.nan) for v in (a, b, sf))


def _state_stats(lsps: LinkLSPs, d3d, mask) -> LSPStats:
    m = mask & lsps.has_paths
    a, b, sf = fit_pathloss(-lsps.gain_db, d3d, m)
    k_mean, k_std = _mean_std(lsps.k_db, m & jnp.isfinite(lsps.k_db))
    return LSPStats(
        a, b, sf,
        *_log_stats(lsps.ds_s, m),
        *_log_stats(lsps.asd_deg, m),
        *_log_stats(lsps.asa_deg, m),
        *_log_stats(lsps.zsd_deg, m),
        *_log_stats(lsps.zsa_deg, m),
        k_mean, k_std,
        jnp.sum(m).astype(jnp.float32),
    )  # fmt: skip


def fit_site_channel(
    lsps: LinkLSPs,
    tx_positions_m: Float[Array, "tx 3"],
    rx_positions_m: Float[Array, "rx 3"],
    carrier_hz: float,
) -> SiteChannelFit:
    """Fit per-LOS-state pathloss, shadow fading and LSP statistics to a sounding.

    Args:
        lsps: per-link parameters from `dtwin.rt.sounding.link_lsps`, ``[rx, tx]``.
        tx_positions_m, rx_positions_m: the sounded positions (z = antenna height above the
            scene's ground plane z = 0), m.
        carrier_hz: carrier frequency of the sounding, Hz.
    """
    tx = jnp.asarray(tx_positions_m, jnp.float32)
    rx = jnp.asarray(rx_positions_m, jnp.float32)
    if lsps.gain_db.shape != (rx.shape[0], tx.shape[0]):
        raise ValueError(
            f"lsps are {lsps.gain_db.shape} but positions give [rx={rx.shape[0]}, tx={tx.shape[0]}]"
        )
    delta = rx[:, None, :] - tx[None, :, :]
    d2d = jnp.linalg.norm(delta[..., :2], axis=-1)
    d3d = jnp.linalg.norm(delta, axis=-1)
    return SiteChannelFit(
        los=_state_stats(lsps, d3d, lsps.los),
        nlos=_state_stats(lsps, d3d, ~lsps.los),
        carrier_hz=jnp.float32(carrier_hz),
        distance_2d_m=d2d,
        h_bs_m=jnp.broadcast_to(tx[None, :, 2], d2d.shape),
        h_ut_m=jnp.broadcast_to(rx[:, None, 2], d2d.shape),
        pathloss_db=-lsps.gain_db,
        los_links=lsps.los,
    )


def _keep(new, old):
    """``new`` where finite, else ``old`` (states the sounding did not cover keep the table)."""
    return jnp.where(jnp.isfinite(new), new, old)


def _lsp_params(base, st: LSPStats, sf_std_db):
    def ca(mean, old):
        return jnp.stack([_keep(mean, old[0]), jnp.where(jnp.isfinite(mean), 0.0, old[1])])

    zsd = base.lgzsd_mean
    zsd_new = jnp.where(
        jnp.isfinite(st.lgzsd_mean),
        jnp.stack([st.lgzsd_mean, 0.0, 0.0, 0.0, -10.0]).astype(zsd.dtype),
        zsd,
    )
    return eqx.tree_at(
        lambda p: (
            p.lgds_mean, p.lgds_std, p.lgasd_mean, p.lgasd_std, p.lgasa_mean, p.lgasa_std,
            p.lgzsa_mean, p.lgzsa_std, p.lgzsd_mean, p.lgzsd_std, p.k_mean_db, p.k_std_db,
            p.sf_std_db,
        ),
        base,
        (
            ca(st.lgds_mean, base.lgds_mean), ca(st.lgds_std, base.lgds_std),
            ca(st.lgasd_mean, base.lgasd_mean), ca(st.lgasd_std, base.lgasd_std),
            ca(st.lgasa_mean, base.lgasa_mean), ca(st.lgasa_std, base.lgasa_std),
            ca(st.lgzsa_mean, base.lgzsa_mean), ca(st.lgzsa_std, base.lgzsa_std),
            zsd_new, ca(st.lgzsd_std, base.lgzsd_std),
            _keep(st.k_mean_db, base.k_mean_db), _keep(st.k_std_db, base.k_std_db),
            _keep(sf_std_db, base.sf_std_db),
        ),
    )  # fmt: skip


def to_scenario(fit: SiteChannelFit, base_scenario):
    """Copy of a `dtwin.channel` scenario with site-specific LSPs and a pathloss offset.

    * ``los_lsp`` / ``nlos_lsp``: log10 means/stds of DS, ASD, ASA, ZSD, ZSA and the K-factor
      replaced by the fitted constants (frequency/distance slopes set to 0) where the sounding
      has enough links of that state; otherwise the table values are kept.
    * ``pathloss_offset_db``: shifted by the mean difference between the ray-traced pathloss and
      the scenario's (TR 38.901 Table 7.4.1-1) pathloss over the sounded links, so the scenario's
      pathloss is unbiased for this site.
    * ``sf_std_db`` of each state: standard deviation of the ray-traced pathloss about the
      offset-corrected scenario pathloss (what shadow fading must explain at this site).

    Links closer than the scenario's ``min_distance_m`` are left out.
    """
    from dtwin.channel import pathloss_db

    d2d = fit.distance_2d_m
    valid = jnp.isfinite(fit.pathloss_db) & (d2d >= base_scenario.min_distance_m)
    if not bool(jnp.any(valid)):
        raise ValueError(
            "to_scenario: no sounded link with a path at a distance >= the scenario's "
            f"min_distance_m ({base_scenario.min_distance_m} m)"
        )
    d_safe = jnp.where(valid, d2d, base_scenario.min_distance_m)
    pl_table = pathloss_db(
        base_scenario,
        d_safe,
        fit.h_bs_m,
        fit.h_ut_m,
        fit.carrier_hz,
        fit.los_links.astype(jnp.float32),
    )
    resid = jnp.where(valid, fit.pathloss_db - pl_table, 0.0)
    offset = jnp.sum(resid) / jnp.sum(valid)
    r = resid - offset

    def state_std(mask):
        m = valid & mask
        n = jnp.sum(m)
        std = jnp.sqrt(jnp.sum(jnp.where(m, jnp.square(r), 0.0)) / jnp.maximum(n - 1, 1))
        return jnp.where(n >= 2, std, jnp.nan)

    los_lsp = _lsp_params(base_scenario.los_lsp, fit.los, state_std(fit.los_links))
    nlos_lsp = _lsp_params(base_scenario.nlos_lsp, fit.nlos, state_std(~fit.los_links))
    return eqx.tree_at(
        lambda s: (s.los_lsp, s.nlos_lsp, s.pathloss_offset_db),
        base_scenario,
        (los_lsp, nlos_lsp, jnp.asarray(base_scenario.pathloss_offset_db + offset, jnp.float32)),
    )
