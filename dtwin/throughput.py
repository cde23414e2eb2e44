"""Link-level throughput proxy: SINR -> spectral efficiency, overhead, proportional-fair sharing.

Three SINR -> SE mappings are provided, each in a hard (evaluation) and a smooth (gradient) form:

* ``"cqi64"`` / ``"cqi256"``: the 4-bit CQI tables of TS 38.214 Table 5.2.2.1-2 (up to 64QAM)
  and Table 5.2.2.1-3 (up to 256QAM); the UE reports the highest CQI whose SINR threshold is met
  (10 % BLER, TS 38.214 clause 5.2.2.1) and is served at that CQI's spectral efficiency.
* ``"shannon"``: the truncated Shannon bound of TR 36.942 Annex A.1.

The cell's time is shared among its UEs by a proportional-fair scheduler in its steady-state
form (equal time shares at full buffer, time-share water-filling at finite buffer),
`pf_throughput_mbps`.

SINR thresholds of the CQI tables
---------------------------------
`CQI_SINR_THRESHOLD_DB` holds, for each CQI 1..15, the AWGN SINR at which a PDSCH transport
with that CQI's modulation order and code rate reaches 10 % block error rate. They were derived
(once, offline; re-derived in ``tests/dtwin/test_throughput.py``) from Sionna 2.2's
link-level BLER tables (``sionna/sys/bler_tables/PDSCH_table{1,2}.json``, LDPC, code-block size
2000 bits, spline-interpolated by ``sionna.sys.PHYAbstraction``):

1. for each MCS of the matching MCS table (TS 38.214 Table 5.1.3.1-1 for ``cqi64``, 5.1.3.1-2 for
   ``cqi256``), the lowest SINR with BLER <= 0.1 on a 0.02 dB grid;
2. for each CQI, linear interpolation of that SINR in spectral efficiency among the MCSs of the
   same modulation order (most CQI entries coincide with an MCS entry; CQI 15 of ``cqi256``, whose
   MCS has no table, is extrapolated linearly from the last two 256QAM MCSs);
3. CQIs below the lowest tabulated MCS (CQI 1-3 of ``cqi64``, 1-2 of ``cqi256``) are placed at a
   constant gap to the Shannon bound, ``10 log10(2^SE - 1) + gap``, with the gap measured at the
   lowest tabulated MCS (1.09 dB and 1.22 dB).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._cumsum import cumsum_last

SETable = Literal["cqi64", "cqi256", "shannon"]

# --------------------------------------------------------------------------- CQI tables
# Rows: CQI index 0..15; columns: modulation order Qm, code rate x 1024, spectral efficiency
# (bit/s/Hz). CQI 0 = "out of range" (no transmission).

CQI_TABLE_64QAM = np.array(
    [
        [0, 0, 0.0],
        [2, 78, 0.1523],
        [2, 120, 0.2344],
        [2, 193, 0.3770],
        [2, 308, 0.6016],
        [2, 449, 0.8770],
        [2, 602, 1.1758],
        [4, 378, 1.4766],
        [4, 490, 1.9141],
        [4, 616, 2.4063],
        [6, 466, 2.7305],
        [6, 567, 3.3223],
        [6, 666, 3.9023],
        [6, 772, 4.5234],
        [6, 873, 5.1152],
        [6, 948, 5.5547],
    ],
    dtype=np.float64,
)
"""TS 38.214 Table 5.2.2.1-2: 4-bit CQI Table 1 (QPSK..64QAM)."""

CQI_TABLE_256QAM = np.array(
    [
        [0, 0, 0.0],
        [2, 78, 0.1523],
        [2, 193, 0.3770],
        [2, 449, 0.8770],
        [4, 378, 1.4766],
        [4, 490, 1.9141],
        [4, 616, 2.4063],
        [6, 466, 2.7305],
        [6, 567, 3.3223],
        [6, 666, 3.9023],
        [6, 772, 4.5234],
        [6, 873, 5.1152],
        [8, 711, 5.5547],
        [8, 797, 6.2266],
        [8, 885, 6.9141],
        [8, 948, 7.4063],
    ],
    dtype=np.float64,
)
"""TS 38.214 Table 5.2.2.1-3: 4-bit CQI Table 2 (QPSK..256QAM)."""

CQI_TABLES: dict[str, np.ndarray] = {"cqi64": CQI_TABLE_64QAM, "cqi256": CQI_TABLE_256QAM}

CQI_SINR_THRESHOLD_DB: dict[str, np.ndarray] = {
    "cqi64": np.array(
        [
            -8.44,
            -6.45,
            -4.16,
            -2.44,
            0.46,
            2.36,
            4.16,
            5.96,
            7.86,
            9.76,
            11.56,
            13.36,
            14.96,
            17.06,
            18.96,
        ]
    ),
    "cqi256": np.array(
        [
            -8.31,
            -4.03,
            0.06,
            3.66,
            6.06,
            7.86,
            9.46,
            11.06,
            13.26,
            15.56,
            17.36,
            18.86,
            20.86,
            22.96,
            24.76,
        ]
    ),
}
"""AWGN SINR (dB) at 10 % BLER for CQI 1..15 (see the module docstring for the derivation)."""

DL_OVERHEAD_FR1 = 0.14
"""Downlink overhead share for FR1 in the maximum data-rate formula of TS 38.306 clause 4.1.2."""
DL_OVERHEAD_FR2 = 0.18
"""Downlink overhead share for FR2, TS 38.306 clause 4.1.2."""


def _check_table(table: str) -> None:
    if table not in CQI_TABLES:
        raise ValueError(f"unknown CQI table {table!r}; expected one of {list(CQI_TABLES)}")


def cqi_table(table: str = "cqi256") -> tuple[Array, Array, Array]:
    """Modulation order, code rate x 1024 and spectral efficiency for CQI 0..15.

    Returns:
        ``(qm, code_rate_x1024, se_bps_hz)``, each of shape ``(16,)``, float32.
    """
    _check_table(table)
    t = jnp.asarray(CQI_TABLES[table], jnp.float32)
    return t[:, 0], t[:, 1], t[:, 2]


# --------------------------------------------------------------------------- CQI mapping
def cqi_from_sinr(sinr_db: Float[ArrayLike, "..."], table: str = "cqi256") -> Int[Array, "..."]:
    """Reported CQI: the highest index whose 10 %-BLER SINR threshold is met (0 = out of range).

    TS 38.214 clause 5.2.2.1 (CQI = highest index with BLER <= 0.1), thresholds
    `CQI_SINR_THRESHOLD_DB`. Piecewise constant: zero gradient; see `cqi_from_sinr_soft`.
    """
    _check_table(table)
    th = jnp.asarray(CQI_SINR_THRESHOLD_DB[table], jnp.float32)
    s = jnp.asarray(sinr_db, jnp.float32)
    return jnp.sum(s[..., None] >= th, axis=-1).astype(jnp.int32)


def cqi_from_sinr_soft(
    sinr_db: Float[ArrayLike, "..."], table: str = "cqi256", temperature_db: float = 0.5
) -> Float[Array, "..."]:
    """Smooth CQI: ``sum_k sigmoid((sinr_db - threshold_k) / temperature_db)``, in [0, 15]."""
    _check_table(table)
    th = jnp.asarray(CQI_SINR_THRESHOLD_DB[table], jnp.float32)
    s = jnp.asarray(sinr_db, jnp.float32)
    return jnp.sum(jax.nn.sigmoid((s[..., None] - th) / temperature_db), axis=-1)


def cqi_se(sinr_db: Float[ArrayLike, "..."], table: str = "cqi256") -> Float[Array, "..."]:
    """Hard lookup: spectral efficiency (bit/s/Hz) of the CQI reported at ``sinr_db``."""
    _, _, se = cqi_table(table)
    return se[cqi_from_sinr(sinr_db, table)]


def cqi_se_smooth(
    sinr_db: Float[ArrayLike, "..."], table: str = "cqi256", temperature_db: float = 0.5
) -> Float[Array, "..."]:
    """Smooth staircase: ``sum_k (SE_k - SE_{k-1}) sigmoid((sinr_db - threshold_k) / T)``.

    Monotone increasing (all steps are positive), equal to `cqi_se` in the limit ``T -> 0``;
    at a distance ``d`` dB from every threshold, the error is at most
    ``max_k dSE_k * 15 * sigmoid(-d / T)``.
    """
    _, _, se = cqi_table(table)
    th = jnp.asarray(CQI_SINR_THRESHOLD_DB[table], jnp.float32)
    s = jnp.asarray(sinr_db, jnp.float32)
    return jnp.sum(jnp.diff(se) * jax.nn.sigmoid((s[..., None] - th) / temperature_db), axis=-1)


def cqi_se_linear(sinr_db: Float[ArrayLike, "..."], table: str = "cqi256") -> Float[Array, "..."]:
    """Piecewise-linear SE through ``(threshold_k, SE_k)``; 0 below CQI 1's threshold minus 3 dB.

    A common proxy of the fading-averaged link curve; continuous, gradient defined everywhere
    except at the knots, constant above CQI 15.
    """
    _, _, se = cqi_table(table)
    th = jnp.asarray(CQI_SINR_THRESHOLD_DB[table], jnp.float32)
    xp = jnp.concatenate([th[:1] - 3.0, th])
    return jnp.interp(jnp.asarray(sinr_db, jnp.float32), xp, se)


# --------------------------------------------------------------------------- Shannon
def shannon_se(
    sinr_db: Float[ArrayLike, "..."],
    alpha: float = 0.6,
    sinr_min_db: float = -10.0,
    se_max: float = 4.4,
) -> Float[Array, "..."]:
    """Truncated Shannon bound, TR 36.942 Annex A.1 (hard form).

    ``SE = 0`` for ``SINR < SINR_MIN``; ``alpha log2(1 + SINR)`` up to ``se_max``; ``se_max``
    above. Defaults: alpha = 0.6, SINR_MIN = -10 dB, Thr_MAX = 4.4 bit/s/Hz (the DL values of
    Table A.2).
    """
    s = jnp.asarray(sinr_db, jnp.float32)
    se = alpha * jnp.log2(1.0 + 10.0 ** (s / 10.0))
    return jnp.where(s < sinr_min_db, 0.0, jnp.minimum(se, se_max))


def shannon_se_smooth(
    sinr_db: Float[ArrayLike, "..."],
    alpha: float = 0.6,
    sinr_min_db: float = -10.0,
    se_max: float = 4.4,
    temperature_db: float = 0.5,
) -> Float[Array, "..."]:
    """Smooth truncated Shannon: soft cut-in at ``sinr_min_db`` and soft cap at ``se_max``.

    ``SE = softmin(alpha log2(1 + SINR), se_max) * sigmoid((sinr_db - sinr_min_db) / T)``, with
    ``softmin(a, b) = -tau log(exp(-a/tau) + exp(-b/tau))`` and
    ``tau = alpha T ln(10) / (10 ln 2)`` (the Shannon slope per dB at high SINR times ``T``), so
    both corners are rounded over about ``T`` dB. Tends to `shannon_se` as ``T -> 0``.
    """
    s = jnp.asarray(sinr_db, jnp.float32)
    # log2(1 + 10^(s/10)) computed stably for large s.
    se = alpha * jax.nn.softplus(s * jnp.log(10.0) / 10.0) / jnp.log(2.0)
    tau = alpha * temperature_db * jnp.log(10.0) / (10.0 * jnp.log(2.0))
    capped = -tau * jnp.logaddexp(-se / tau, -se_max / tau)
    return capped * jax.nn.sigmoid((s - sinr_min_db) / temperature_db)


# --------------------------------------------------------------------------- dispatcher
def spectral_efficiency(
    sinr_db: Float[ArrayLike, "..."],
    table: SETable = "cqi256",
    *,
    hard: bool = False,
    temperature_db: float = 0.5,
) -> Float[Array, "..."]:
    """Spectral efficiency (bit/s/Hz) of a link at ``sinr_db`` (dB), before control overhead.

    Args:
        sinr_db: SINR in dB, any shape.
        table: ``"cqi256"`` (TS 38.214 Table 5.2.2.1-3), ``"cqi64"`` (Table 5.2.2.1-2) or
            ``"shannon"`` (TR 36.942 A.1 with its default parameters).
        hard: exact table lookup / hard truncation (for evaluation) instead of the smooth form.
        temperature_db: smoothing width in dB of the smooth form.
    """
    if table == "shannon":
        if hard:
            return shannon_se(sinr_db)
        return shannon_se_smooth(sinr_db, temperature_db=temperature_db)
    _check_table(table)
    if hard:
        return cqi_se(sinr_db, table)
    return cqi_se_smooth(sinr_db, table, temperature_db)


def pdsch_overhead(
    pdcch_symbols: int = 2,
    dmrs_re_per_prb: int = 12,
    other_re_per_prb: float = 4.0,
    symbols_per_slot: int = 14,
) -> float:
    """Share of resource elements of a slot not carrying PDSCH data.

    ``1 - (12 (symbols_per_slot - pdcch_symbols) - dmrs - other) / (12 symbols_per_slot)`` per PRB,
    with ``other`` for CSI-RS/TRS/PTRS/SSB averaged per PRB. A configuration-based alternative
    to the flat `DL_OVERHEAD_FR1` of TS 38.306 clause 4.1.2.
    """
    if not 0 <= pdcch_symbols < symbols_per_slot:
        raise ValueError(f"pdcch_symbols must be in [0, {symbols_per_slot}), got {pdcch_symbols}")
    total = 12.0 * symbols_per_slot
    data = 12.0 * (symbols_per_slot - pdcch_symbols) - dmrs_re_per_prb - other_re_per_prb
    if data <= 0:
        raise ValueError("pdsch_overhead: no resource elements left for data")
    return float(1.0 - data / total)


# --------------------------------------------------------------------------- PF scheduler
def _water_level_sorted(ts: Float[Array, " ues"], ps: Float[Array, " ues"]) -> Float[Array, ""]:
    """`_water_level` on time shares already sorted ascending (``ps`` in the same order)."""
    cum_pt, cum_p = cumsum_last(jnp.stack([ps * ts, ps]))
    tail_p = jnp.sum(ps) - cum_p
    g = cum_pt + ts * tail_p
    k = jnp.sum(g <= 1.0)  # number of satisfied UEs (G is non-decreasing)
    cum_pt0 = jnp.concatenate([jnp.zeros(1, ts.dtype), cum_pt])
    tail_p0 = jnp.concatenate([jnp.sum(ps)[None], tail_p])
    num, den = cum_pt0[k], tail_p0[k]
    ok = den > 1e-12
    lam = jnp.where(ok, (1.0 - num) / jnp.where(ok, den, 1.0), 1.0)
    return jnp.clip(lam, 0.0, 1.0)


def _water_level(t: Float[Array, " ues"], p: Float[Array, " ues"]) -> Float[Array, ""]:
    """Solve ``sum_u p_u min(t_u, lam) = 1`` for ``lam`` in ``[0, 1]`` (``1`` if under-loaded).

    Sorted water-filling: with ``t`` sorted ascending, ``G_k = sum_{j<=k} p_j t_j + t_k
    sum_{j>k} p_j`` is the load at level ``t_k``; with ``k*`` the number of ``G_k <= 1``, the
    level is ``(1 - sum_{j<=k*} p_j t_j) / sum_{j>k*} p_j``. Differentiable almost everywhere.
    """
    order = jnp.argsort(t)
    return _water_level_sorted(t[order], p[order])


def pf_throughput_mbps(
    se_bps_hz: Float[Array, " ues"] | Float[Array, "ues cells"],
    serving_prob: Float[Array, "ues cells"],
    demand_mbps: Float[Array, " ues"] | None = None,
    bandwidth_hz: float | Float[Array, " cells"] = 20e6,
    overhead: float = DL_OVERHEAD_FR1,
) -> tuple[Float[Array, " ues"], Float[Array, " cells"]]:
    """Steady-state proportional-fair sharing of each cell's time among its UEs.

    A UE ``u`` alone in cell ``c`` would get the peak rate
    ``R_uc = B_c SE_u (1 - overhead)``. It needs the time share ``t_uc = min(d_u / R_uc, 1)``
    (``1`` at full buffer, ``d_u = inf``). Under PF with i.i.d. fading and full buffers every
    active UE receives an equal share of time; with finite buffers, UEs whose demand is met
    release their time to the others (max-min fair time shares, i.e. water-filling): the level
    ``lam_c`` solves ``sum_u p_uc min(t_uc, lam_c) = 1`` (``lam_c = 1`` when the cell can serve
    every demand). At full buffer this reduces to ``lam_c = 1 / max(n_c, 1)``,
    ``n_c = sum_u p_uc``.

    Soft association: ``p_uc = serving_prob[u, c]`` is the (possibly fractional) mass of UE ``u``
    in cell ``c`` (rows may sum to less than 1 for UEs only partly present). UE throughput is
    ``sum_c p_uc min(t_uc, lam_c) R_uc``; PRB utilisation ``sum_u p_uc min(t_uc, lam_c)`` in
    [0, 1]. With one-hot ``serving_prob`` this is the usual hard-association scheduler.

    Args:
        se_bps_hz: spectral efficiency of each UE on its serving link (bit/s/Hz), ``[ues]``, or
            per candidate cell ``[ues, cells]``.
        serving_prob: association weights ``[ues, cells]``, >= 0.
        demand_mbps: offered load per UE in Mbps (``inf`` = full buffer); None = all full buffer.
        bandwidth_hz: channel bandwidth, scalar or per cell ``[cells]``.
        overhead: share of resources used by control/reference signals (TS 38.306 4.1.2).

    Returns:
        ``(throughput_mbps [ues], prb_utilization [cells])``.
    """
    p = jnp.asarray(serving_prob, jnp.float32)
    if p.ndim != 2:
        raise ValueError(f"serving_prob must be [ues, cells], got shape {p.shape}")
    n_ues, n_cells = p.shape
    se = jnp.asarray(se_bps_hz, jnp.float32)
    if se.shape not in ((n_ues,), (n_ues, n_cells)):
        raise ValueError(
            f"se_bps_hz must be [ues]={n_ues} or [ues, cells]={p.shape}, got shape {se.shape}"
        )
    shared_t = se.ndim == 1 and jnp.ndim(bandwidth_hz) == 0
    if se.ndim == 1:
        se = se[:, None]
    bw = jnp.asarray(bandwidth_hz, jnp.float32)
    bw = bw if shared_t else jnp.broadcast_to(bw, (n_cells,))[None, :]
    peak_mbps = bw * se * (1.0 - overhead) / 1e6  # [ues, cells], or [ues, 1] when shared
    if demand_mbps is None:
        n = jnp.sum(p, axis=0)
        share = jnp.broadcast_to(1.0 / jnp.maximum(n, 1.0), p.shape)
    else:
        d = jnp.asarray(demand_mbps, jnp.float32)
        if d.shape != (n_ues,):
            raise ValueError(f"demand_mbps must be [ues]={n_ues}, got shape {d.shape}")
        finite = jnp.isfinite(d)
        d_safe = jnp.where(finite, d, 0.0)[:, None]
        # Peak rates below 1 kbit/s count as no service: clamping keeps d/peak (and its
        # gradient) finite where the smooth SE is tiny but positive.
        pk_safe = jnp.maximum(peak_mbps, 1e-3)
        need = jnp.where(peak_mbps > 1e-3, d_safe / pk_safe, jnp.where(d_safe > 0, 1.0, 0.0))
        t = jnp.where(finite[:, None], jnp.minimum(need, 1.0), 1.0)
        if shared_t:  # same time shares toward every cell: one sort serves all cells
            order = jnp.argsort(t[:, 0])
            lam = jax.vmap(_water_level_sorted, in_axes=(None, 1))(t[order, 0], p[order])
        else:
            lam = jax.vmap(_water_level, in_axes=(1, 1))(t, p)  # [cells]
        share = jnp.minimum(t, lam[None, :])
    used = p * share
    throughput = jnp.sum(used * peak_mbps, axis=1)
    prb_util = jnp.clip(jnp.sum(used, axis=0), 0.0, 1.0)
    return throughput, prb_util


def _segment_cumsum(x: Float[Array, "... n"], start: Array) -> Float[Array, "... n"]:
    """Inclusive prefix sums of ``x`` along its last axis that restart where ``start`` is True."""

    def op(a, b):
        fa, va = a
        fb, vb = b
        return fa | fb, jnp.where(fb, vb, va + vb)

    return jax.lax.associative_scan(op, (jnp.broadcast_to(start, x.shape), x), axis=-1)[1]


def pf_throughput_hard_mbps(
    se_bps_hz: Float[Array, " ues"],
    serving_cell: Int[Array, " ues"],
    weight: Float[Array, " ues"],
    n_cells: int,
    demand_mbps: Float[Array, " ues"] | None = None,
    bandwidth_hz: float = 20e6,
    overhead: float = DL_OVERHEAD_FR1,
) -> tuple[Float[Array, " ues"], Float[Array, " cells"]]:
    """`pf_throughput_mbps` for hard association, ``serving_prob = one_hot(serving_cell) * weight``.

    The same steady-state proportional-fair shares, in ``O(ues log ues)`` instead of
    ``O(ues × cells)``: the UEs are sorted once by (serving cell, time share) and every cell's
    water level comes from prefix sums within its segment of that order (the sweep's fast path).

    Args:
        se_bps_hz: spectral efficiency of each UE on its serving link (bit/s/Hz).
        serving_cell: index of each UE's serving cell, in ``[0, n_cells)``.
        weight: UE presence in [0, 1] (its mass in the serving cell).
        n_cells: number of cells (static).
        demand_mbps, bandwidth_hz, overhead: as `pf_throughput_mbps` (scalar bandwidth).

    Returns:
        ``(throughput_mbps [ues], prb_utilization [cells])``.
    """
    se = jnp.asarray(se_bps_hz, jnp.float32)
    cell = jnp.asarray(serving_cell, jnp.int32)
    w = jnp.asarray(weight, jnp.float32)
    n_ues = se.shape[0]
    if se.shape != (n_ues,) or cell.shape != (n_ues,) or w.shape != (n_ues,):
        raise ValueError(
            "pf_throughput_hard_mbps: se_bps_hz, serving_cell and weight must all be [ues], got "
            f"{se.shape}, {cell.shape}, {w.shape}"
        )
    peak_mbps = bandwidth_hz * se * (1.0 - overhead) / 1e6
    n_c = jax.ops.segment_sum(w, cell, n_cells)  # served mass per cell
    if demand_mbps is None:
        share = (1.0 / jnp.maximum(n_c, 1.0))[cell]
    else:
        d = jnp.asarray(demand_mbps, jnp.float32)
        finite = jnp.isfinite(d)
        d_safe = jnp.where(finite, d, 0.0)
        pk_safe = jnp.maximum(peak_mbps, 1e-3)
        need = jnp.where(peak_mbps > 1e-3, d_safe / pk_safe, jnp.where(d_safe > 0, 1.0, 0.0))
        t = jnp.where(finite, jnp.minimum(need, 1.0), 1.0)
        # water level per cell (`_water_level_sorted` on each cell's segment)
        cs, ts, order = jax.lax.sort((cell, t, jnp.arange(n_ues)), num_keys=2)
        ws = w[order]
        first = jnp.concatenate([jnp.ones(1, bool), cs[1:] != cs[:-1]])
        cum_pt, cum_p = _segment_cumsum(jnp.stack([ws * ts, ws]), first)
        tail_p = n_c[cs] - cum_p
        satisfied = (cum_pt + ts * tail_p <= 1.0).astype(jnp.int32)
        k = jax.ops.segment_sum(satisfied, cs, n_cells)  # satisfied UEs per cell
        count = jax.ops.segment_sum(jnp.ones_like(cs), cs, n_cells)
        last_ok = jnp.clip(jnp.cumsum(count) - count + k - 1, 0, n_ues - 1)
        num = jnp.where(k > 0, cum_pt[last_ok], 0.0)
        den = jnp.where(k > 0, tail_p[last_ok], n_c)
        ok = den > 1e-12
        lam = jnp.clip(jnp.where(ok, (1.0 - num) / jnp.where(ok, den, 1.0), 1.0), 0.0, 1.0)
        share = jnp.minimum(t, lam[cell])
    used = w * share
    prb_util = jnp.clip(jax.ops.segment_sum(used, cell, n_cells), 0.0, 1.0)
    return used * peak_mbps, prb_util


__all__ = [
    "CQI_SINR_THRESHOLD_DB",
    "CQI_TABLES",
    "CQI_TABLE_256QAM",
    "CQI_TABLE_64QAM",
    "DL_OVERHEAD_FR1",
    "DL_OVERHEAD_FR2",
    "cqi_from_sinr",
    "cqi_from_sinr_soft",
    "cqi_se",
    "cqi_se_linear",
    "cqi_se_smooth",
    "cqi_table",
    "pdsch_overhead",
    "pf_throughput_hard_mbps",
    "pf_throughput_mbps",
    "shannon_se",
    "shannon_se_smooth",
    "spectral_efficiency",
]
