"""Per-cell KPIs and PM counters from per-UE results under (soft) association.

Every function is pure JAX and differentiable in its inputs (the association weights included),
so KPIs can be optimised by gradient. With soft association the UE ``u`` counts in cell ``c``
with mass ``p_uc = serving_prob[u, c]`` (times its presence weight); with one-hot
``serving_prob`` the usual hard per-cell statistics are recovered exactly.

Conventions: *intensive* statistics (means, percentiles, coverage share) of a cell with no
served UE mass are NaN (there is nothing to average); *extensive* ones (cell throughput, traffic
volume, PRB utilisation, active UEs) are 0. Means of dB quantities (RSRP, SINR) are means of the
dB values, as PM counters report them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._cumsum import cumsum_last
from .schema import TARGET_COLUMNS

_EMPTY_MASS = 1e-6


# --------------------------------------------------------------------------- quantiles
def _interp_scalar(q, xp: Float[Array, "... n"], fp: Float[Array, "... n"]) -> Float[Array, "..."]:
    """``jnp.interp(q, xp, fp)`` for a scalar ``q`` and non-decreasing ``xp``, batched over the
    leading axes: the bracketing index is a count (``#{xp <= q}``, what ``searchsorted`` with
    ``side="right"`` returns) instead of a binary search, and the same interpolation follows."""
    n = xp.shape[-1]
    i = jnp.clip(jnp.sum(xp <= q, axis=-1, keepdims=True), 1, n - 1)
    x0 = jnp.take_along_axis(xp, i - 1, axis=-1)[..., 0]
    x1 = jnp.take_along_axis(xp, i, axis=-1)[..., 0]
    f0 = jnp.take_along_axis(fp, i - 1, axis=-1)[..., 0]
    f1 = jnp.take_along_axis(fp, i, axis=-1)[..., 0]
    dx = x1 - x0
    dx0 = jnp.abs(dx) <= np.spacing(np.finfo(np.dtype(xp.dtype)).eps)  # as jnp.interp
    f = jnp.where(dx0, f0, f0 + ((q - x0) / jnp.where(dx0, 1.0, dx)) * (f1 - f0))
    f = jnp.where(q < xp[..., 0], fp[..., 0], f)
    return jnp.where(q > xp[..., -1], fp[..., -1], f)


def _hazen_sorted(xs: Float[Array, " n"], q, ws: Float[Array, "... n"]) -> Float[Array, "..."]:
    """Weighted Hazen quantile of samples ``xs`` sorted ascending, for each weighting ``ws``."""
    n = xs.shape[-1]
    total = jnp.sum(ws, axis=-1, keepdims=True)
    pos = (cumsum_last(ws) - 0.5 * ws) / total  # Hazen plotting positions, weighted
    # Zero-weight samples before the first / after the last weighted one must not act as
    # end points of the interpolation: give them the value of that first / last weighted one.
    m = ws > 0
    first_i = jnp.argmax(m, axis=-1)[..., None]
    last_i = n - 1 - jnp.argmax(m[..., ::-1], axis=-1)[..., None]
    xb = jnp.broadcast_to(xs, ws.shape)
    first = jnp.take_along_axis(xb, first_i, axis=-1)
    last = jnp.take_along_axis(xb, last_i, axis=-1)
    iota = jnp.arange(n)
    v = jnp.where(iota < first_i, first, jnp.where(iota > last_i, last, xb))
    return _interp_scalar(q, pos, v)


def _hazen_quantile(x: Float[Array, " n"], q, w: Float[Array, " n"]) -> Float[Array, ""]:
    order = jnp.argsort(x)
    return _hazen_sorted(x[order], q, w[order])


def _hazen_quantile_shared(
    x: Float[Array, " n"], q, w: Float[Array, "groups n"]
) -> Float[Array, " groups"]:
    """`_hazen_quantile` of the same samples under several weightings, with one sort.

    Used for per-cell quantiles of UE values (each cell weighs the UEs by its serving mass):
    one argsort of the UEs instead of one per cell, and one batched prefix sum.
    """
    order = jnp.argsort(x)
    return _hazen_sorted(x[order], q, w[:, order])


def _kernel_quantile(
    x: Float[Array, " n"], q, w: Float[Array, " n"], temperature
) -> Float[Array, ""]:
    total = jnp.sum(w)

    def cdf(v):
        return jnp.sum(w * jax.nn.sigmoid((v - x) / temperature)) / total

    lo = jax.lax.stop_gradient(jnp.min(x) - 20.0 * temperature)
    hi = jax.lax.stop_gradient(jnp.max(x) + 20.0 * temperature)

    def body(_, lohi):
        a, b = lohi
        m = 0.5 * (a + b)
        below = cdf(m) < q
        return jnp.where(below, m, a), jnp.where(below, b, m)

    a, b = jax.lax.fori_loop(0, 50, body, (lo, hi))
    v0 = jax.lax.stop_gradient(0.5 * (a + b))
    # One Newton step from the (non-differentiated) root: exact value at convergence and the
    # implicit-function gradient dv/dtheta = -(dF/dtheta) / (dF/dv).
    f0 = cdf(v0) - q
    dfdv = jax.lax.stop_gradient(jax.grad(cdf)(v0))
    return v0 - f0 / jnp.maximum(dfdv, 1e-30)


def soft_quantile(
    x: Float[ArrayLike, "... n"],
    q: float | Float[ArrayLike, ""],
    weights: Float[ArrayLike, "... n"] | None = None,
    temperature: float | None = None,
) -> Float[Array, "..."]:
    """Differentiable weighted ``q``-quantile over the last axis.

    Two forms:

    * ``temperature=None``: the exact weighted quantile by linear interpolation between
      order statistics at the weighted Hazen plotting positions
      ``p_i = (sum_{j<=i} w_j - w_i / 2) / sum_j w_j`` (equal weights: ``numpy.quantile(...,
      method="hazen")``; zero-weight samples at either end are ignored); piecewise linear in
      ``x`` and in the weights, so gradients exist almost everywhere (they reach the two
      bracketing samples).
    * ``temperature=T > 0`` (units of ``x``): the root ``v`` of the kernel-smoothed CDF
      ``sum_i w_i sigmoid((v - x_i) / T) / sum_i w_i = q`` (bisection, then one Newton step
      for the implicit-function gradient), which spreads the gradient over all samples within a
      few ``T`` of the quantile. Tends to the weighted quantile as ``T -> 0``.

    Args:
        x: samples, ``[..., n]``.
        q: quantile level in (0, 1).
        weights: non-negative sample weights ``[..., n]`` (default all 1); at least one > 0.
        temperature: smoothing width, or None for the exact interpolated quantile.
    """
    x = jnp.asarray(x, jnp.float32)
    w = (
        jnp.ones_like(x)
        if weights is None
        else jnp.broadcast_to(jnp.asarray(weights, jnp.float32), x.shape)
    )
    if temperature is not None and not temperature > 0:
        raise ValueError(f"soft_quantile: temperature must be > 0 or None, got {temperature}")
    if temperature is None:
        fn = lambda xx, ww: _hazen_quantile(xx, q, ww)
    else:
        fn = lambda xx, ww: _kernel_quantile(xx, q, ww, temperature)
    return jnp.vectorize(fn, signature="(n),(n)->()")(x, w)


# --------------------------------------------------------------------------- helpers
def _masses(serving_prob, weight) -> Float[Array, "ues cells"]:
    p = jnp.asarray(serving_prob, jnp.float32)
    if p.ndim != 2:
        raise ValueError(f"serving_prob must be [ues, cells], got shape {p.shape}")
    if weight is not None:
        w = jnp.asarray(weight, jnp.float32)
        if w.shape != (p.shape[0],):
            raise ValueError(f"weight must be [ues]={p.shape[0]}, got shape {w.shape}")
        p = p * w[:, None]
    return p


def _per_link(v, shape, name) -> Float[Array, "ues cells"]:
    v = jnp.asarray(v, jnp.float32)
    if v.shape == shape:
        return v
    if v.shape == (shape[0],):
        return jnp.broadcast_to(v[:, None], shape)
    raise ValueError(f"{name} must be [ues]={shape[0]} or [ues, cells]={shape}, got {v.shape}")


def _wmean(v, p, n) -> Float[Array, " cells"]:
    has = n > _EMPTY_MASS
    return jnp.where(has, jnp.sum(p * v, axis=0) / jnp.where(has, n, 1.0), jnp.nan)


def coverage_indicator(
    rsrp_dbm: Float[ArrayLike, "..."],
    threshold_dbm: float = -110.0,
    temperature_db: float | None = 1.0,
) -> Float[Array, "..."]:
    """``1[RSRP >= threshold]`` (``temperature_db=None``) or ``sigmoid((RSRP - thr) / T)``."""
    r = jnp.asarray(rsrp_dbm, jnp.float32)
    if temperature_db is None:
        return (r >= threshold_dbm).astype(jnp.float32)
    return jax.nn.sigmoid((r - threshold_dbm) / temperature_db)


def total_tx_power_w(tx_power_dbm: Float[ArrayLike, "... cells"]) -> Float[Array, "..."]:
    """Total radiated power of the network, ``sum_c 10^((P_c - 30) / 10)`` in W."""
    return jnp.sum(10.0 ** ((jnp.asarray(tx_power_dbm, jnp.float32) - 30.0) / 10.0), axis=-1)


# --------------------------------------------------------------------------- PM counters
def pm_counters(
    serving_prob: Float[ArrayLike, "ues cells"],
    throughput_mbps: Float[ArrayLike, " ues"],
    prb_utilization: Float[ArrayLike, " cells"],
    rsrp_dbm: Float[ArrayLike, "ues cells"] | Float[ArrayLike, " ues"],
    sinr_db: Float[ArrayLike, " ues"] | Float[ArrayLike, "ues cells"],
    cqi: Float[ArrayLike, " ues"] | Float[ArrayLike, "ues cells"],
    weight: Float[ArrayLike, " ues"] | None = None,
    period_s: float = 900.0,
) -> dict[str, Float[Array, " cells"]]:
    """Performance-management counters of each cell over a reporting period.

    Keys (units as in `dtwin.schema`): ``active_ues`` (served UE mass ``n_c = sum_u p_uc``),
    ``prb_utilization`` (passed through), ``mean_cqi``, ``mean_rsrp_dbm``, ``mean_sinr_db``
    (``p``-weighted means over served UEs; RSRP/SINR/CQI per UE ``[ues]`` are taken as the
    serving values, per link ``[ues, cells]`` as the value towards each cell), and
    ``traffic_volume_mb = cell throughput (Mbps) x period_s / 8``.

    Args:
        serving_prob: association weights ``[ues, cells]``.
        throughput_mbps: UE downlink throughput ``[ues]``.
        prb_utilization: ``[cells]`` in [0, 1].
        rsrp_dbm, sinr_db, cqi: per UE or per link.
        weight: UE presence in [0, 1], multiplies ``serving_prob``.
        period_s: reporting period in seconds (default 15 min).
    """
    p = _masses(serving_prob, weight)
    n = jnp.sum(p, axis=0)
    thr = jnp.asarray(throughput_mbps, jnp.float32)
    if thr.shape != (p.shape[0],):
        raise ValueError(f"throughput_mbps must be [ues]={p.shape[0]}, got {thr.shape}")
    util = jnp.asarray(prb_utilization, jnp.float32)
    if util.shape != (p.shape[1],):
        raise ValueError(f"prb_utilization must be [cells]={p.shape[1]}, got {util.shape}")
    cell_thr = jnp.sum(p * thr[:, None], axis=0)
    return {
        "active_ues": n,
        "prb_utilization": util,
        "mean_cqi": _wmean(_per_link(cqi, p.shape, "cqi"), p, n),
        "mean_rsrp_dbm": _wmean(_per_link(rsrp_dbm, p.shape, "rsrp_dbm"), p, n),
        "mean_sinr_db": _wmean(_per_link(sinr_db, p.shape, "sinr_db"), p, n),
        "traffic_volume_mb": cell_thr * period_s / 8.0,
    }


# --------------------------------------------------------------------------- KPIs
def cell_kpis(
    serving_prob: Float[ArrayLike, "ues cells"],
    throughput_mbps: Float[ArrayLike, " ues"],
    prb_utilization: Float[ArrayLike, " cells"],
    rsrp_dbm: Float[ArrayLike, "ues cells"] | Float[ArrayLike, " ues"],
    sinr_db: Float[ArrayLike, " ues"] | Float[ArrayLike, "ues cells"],
    cqi: Float[ArrayLike, " ues"] | Float[ArrayLike, "ues cells"],
    weight: Float[ArrayLike, " ues"] | None = None,
    *,
    period_s: float = 900.0,
    coverage_threshold_dbm: float = -110.0,
    coverage_temperature_db: float | None = 1.0,
    edge_quantile: float = 0.05,
    quantile_temperature: float | None = None,
) -> dict[str, Float[Array, " cells"]]:
    """Per-cell KPIs keyed by `dtwin.schema.TARGET_COLUMNS` (same order).

    * ``dl_throughput_mbps``: ``sum_u p_uc thr_u / n_c``, mean UE throughput of served UEs;
    * ``cell_edge_throughput_mbps``: ``p``-weighted ``edge_quantile`` (5th percentile) of UE
      throughput, `soft_quantile` with ``quantile_temperature``;
    * ``cell_throughput_mbps``: ``sum_u p_uc thr_u`` (exact for hard association; with soft
      association each UE's throughput is split over cells in proportion to its mass);
    * ``coverage``: ``p``-weighted share of served UEs with serving RSRP above
      ``coverage_threshold_dbm`` (sigmoid with ``coverage_temperature_db``; None = hard);
    * ``prb_utilization``, ``mean_cqi``, ``mean_rsrp_dbm``, ``mean_sinr_db``,
      ``traffic_volume_mb``: as in `pm_counters`.

    Intensive KPIs of a cell without served UE mass are NaN.
    """
    pm = pm_counters(
        serving_prob, throughput_mbps, prb_utilization, rsrp_dbm, sinr_db, cqi, weight, period_s
    )
    p = _masses(serving_prob, weight)
    n = pm["active_ues"]
    thr = jnp.asarray(throughput_mbps, jnp.float32)
    has = n > _EMPTY_MASS
    w_cells = jnp.where(has[:, None], p.T, 1.0)
    if quantile_temperature is None:  # exact: one sort of the UEs shared by all cells
        edge = _hazen_quantile_shared(thr, edge_quantile, w_cells)
    else:
        edge = soft_quantile(
            jnp.broadcast_to(thr, (p.shape[1], p.shape[0])),
            edge_quantile,
            w_cells,
            quantile_temperature,
        )
    cov = coverage_indicator(
        _per_link(rsrp_dbm, p.shape, "rsrp_dbm"), coverage_threshold_dbm, coverage_temperature_db
    )
    out = {
        "dl_throughput_mbps": _wmean(thr[:, None], p, n),
        "cell_edge_throughput_mbps": jnp.where(has, edge, jnp.nan),
        "cell_throughput_mbps": jnp.sum(p * thr[:, None], axis=0),
        "prb_utilization": pm["prb_utilization"],
        "mean_cqi": pm["mean_cqi"],
        "mean_rsrp_dbm": pm["mean_rsrp_dbm"],
        "mean_sinr_db": pm["mean_sinr_db"],
        "coverage": _wmean(cov, p, n),
        "traffic_volume_mb": pm["traffic_volume_mb"],
    }
    return {k: out[k] for k in TARGET_COLUMNS}


SNAPSHOTS_PER_PERIOD: int = 8
"""Snapshots aggregated into one reporting period (one data row) by default, for the twin's rows
(`dtwin.sweep.SweepConfig.snapshots_per_row`) and the field stand-in's commercial rows
(`dtwin.field.commercial_data`) alike, so both see the same counter noise. A single snapshot holds
a handful of UEs per cell (per-cell UE throughput varies by a factor ~e between snapshots); a
real KPI counter averages an hour of traffic."""

UE_WEIGHTED_KPIS: tuple[str, ...] = (
    "dl_throughput_mbps",
    "cell_edge_throughput_mbps",
    "coverage",
    "mean_cqi",
    "mean_rsrp_dbm",
    "mean_sinr_db",
)
"""Intensive per-UE KPIs: a period aggregates them over its UEs (`period_kpis`)."""


def period_kpis(
    per_snapshot: dict[str, Float[ArrayLike, "snapshots cells"]],
    active_ues: Float[ArrayLike, "snapshots cells"],
    snapshot_weight: Float[ArrayLike, " snapshots"] | None = None,
) -> dict[str, Float[Array, " cells"]]:
    """Aggregate per-snapshot cell KPIs over a reporting period, as the period's counters do.

    The intensive per-UE KPIs (`UE_WEIGHTED_KPIS`: mean UE throughput, coverage, mean CQI/RSRP/
    SINR) are means over every UE served during the period, i.e. the per-snapshot values weighted
    by the snapshot's served UE mass ``active_ues`` -- a ratio of sums, as TS 28.552's UE
    throughput (volume over active time, summed over the period). A snapshot in which the cell
    serves nobody adds nothing instead of making the period undefined; a cell that serves no UE in
    any snapshot is NaN. The 5th-percentile throughput is approximated by the UE-weighted mean of
    the per-snapshot 5th percentiles. Every other column (extensive counters such as cell
    throughput, traffic volume, PRB utilisation, active UEs, offered load) is the plain mean.

    Args:
        per_snapshot: column -> ``[snapshots, cells]`` (NaN where a cell served nobody).
        active_ues: ``[snapshots, cells]`` served UE mass per snapshot.
        snapshot_weight: ``[snapshots]`` how much each snapshot stands for (default 1 each):
            a weight ``k`` counts as ``k`` copies of the snapshot, e.g. the post-stratification
            weights of `dtwin.sweep.stratified_hours`.

    Returns:
        column -> ``[cells]``.
    """
    w = jnp.asarray(active_ues, jnp.float32)
    sw = None
    if snapshot_weight is not None:
        sw = jnp.asarray(snapshot_weight, jnp.float32)
        if sw.shape != w.shape[:1]:
            raise ValueError(
                f"period_kpis: snapshot_weight must be [snapshots] = [{w.shape[0]}], "
                f"got {list(sw.shape)}"
            )
        w = w * sw[:, None]
    out = {}
    for name, v in per_snapshot.items():
        v = jnp.asarray(v)
        if name in UE_WEIGHTED_KPIS:
            ok = jnp.isfinite(v) & (w > 0)
            ww = jnp.where(ok, w, 0.0)
            total = jnp.sum(ww, axis=0)
            num = jnp.sum(ww * jnp.where(ok, v, 0.0), axis=0)
            out[name] = jnp.where(total > 0, num / jnp.where(total > 0, total, 1.0), jnp.nan)
        elif sw is None:
            out[name] = jnp.mean(v, axis=0)
        else:
            s = sw.reshape((-1,) + (1,) * (v.ndim - 1))
            out[name] = jnp.sum(s * v, axis=0) / jnp.sum(sw)
    return out


def period_influence(
    per_snapshot: dict[str, Float[ArrayLike, "snapshots cells"]],
    active_ues: Float[ArrayLike, "snapshots cells"],
    snapshot_weight: Float[ArrayLike, " snapshots"] | None = None,
) -> dict[str, Float[Array, "snapshots cells"]]:
    """Each snapshot's linearised (delta-method) influence on the period KPIs of `period_kpis`.

    For a UE-weighted KPI the period value is the ratio ``R = Σ_i w_i v_i / Σ_i w_i`` (``w``:
    served UE mass, ``v``: the snapshot's value; snapshots where the cell serves nobody or ``v``
    is NaN count with ``w = 0``) and the influence of snapshot ``i`` is
    ``a_i = w_i (v_i − R) / Σ_j w_j``; for a plain mean it is ``a_i = (v_i − R) / n``. The
    sampling variance of ``R`` over ``n`` independent snapshots is then approximately
    ``n / (n − 1) Σ_i a_i²`` (for a plain mean exactly the sample variance over ``n``), and that
    of a *change* ``R(x) − R(x₀)`` on the same snapshots (paired) is
    ``n / (n − 1) Σ_i (a_i(x) − a_i(x₀))²``.

    Args:
        per_snapshot: column -> ``[snapshots, cells]`` (NaN where a cell served nobody).
        active_ues: ``[snapshots, cells]`` served UE mass per snapshot.
        snapshot_weight: ``[snapshots]``, as `period_kpis` (``w_i`` becomes ``s_i w_i``; a
            plain mean's influence ``s_i (v_i − R) / Σ_j s_j``).

    Returns:
        column -> ``[snapshots, cells]`` (0 where a snapshot does not count; all 0 for a cell
        whose period value is undefined, NaN in `period_kpis`).
    """
    w = jnp.asarray(active_ues, jnp.float32)
    period = period_kpis(per_snapshot, w, snapshot_weight)
    if snapshot_weight is None:
        sw = jnp.ones(w.shape[:1], jnp.float32)
    else:
        sw = jnp.asarray(snapshot_weight, jnp.float32)
        w = w * sw[:, None]
    out = {}
    for name, v in per_snapshot.items():
        v = jnp.asarray(v)
        r = jnp.where(jnp.isfinite(period[name]), period[name], 0.0)
        if name in UE_WEIGHTED_KPIS:
            ok = jnp.isfinite(v) & (w > 0)
            ww = jnp.where(ok, w, 0.0)
            total = jnp.sum(ww, axis=0)
            dev = jnp.where(ok, v, 0.0) - r
            out[name] = jnp.where(total > 0, ww * dev / jnp.where(total > 0, total, 1.0), 0.0)
        else:  # a plain mean: undefined (NaN) if any snapshot is, as in `period_kpis`
            defined = jnp.isfinite(period[name])
            s = (sw / jnp.sum(sw)).reshape((-1,) + (1,) * (v.ndim - 1))
            out[name] = s * jnp.where(defined, jnp.where(defined, v, 0.0) - r, 0.0)
    return out


__all__ = [
    "SNAPSHOTS_PER_PERIOD",
    "UE_WEIGHTED_KPIS",
    "period_influence",
    "period_kpis",
    "cell_kpis",
    "coverage_indicator",
    "pm_counters",
    "soft_quantile",
    "total_tx_power_w",
]
