"""CM-response sweeps: many (scenario, CM) snapshots through the twin, written to Parquet.

A sweep draws, for every snapshot, a UE population (drop, indoor state, activity over the day,
demand), a channel realisation and a CM (``broad``: uniform over the whole CM space, rounded to
the operator's steps; ``local``: ±step perturbations of the default), simulates the network with
hard association and writes one row per cell (columns of :mod:`dtwin.schema`).

* Deterministic: snapshot ``s`` uses ``fold_in(PRNGKey(seed), s)``; the result does not depend on
  the chunking, the number of devices or on interruptions.
* Batched with ``jit`` + ``vmap``, and sharded over all local devices along the snapshot axis with
  ``jax.sharding`` (a 1-D ``Mesh`` and ``NamedSharding``). On several hosts, call
  ``jax.distributed.initialize()`` first and give each process its own ``process_index`` range of
  chunks (see BUILD.md).
* Resumable: each chunk is written to ``part-NNNNNN.parquet`` through a temporary file and an
  atomic rename, so a chunk is either complete or absent; a resumed sweep skips complete chunks,
  and rows are never lost or duplicated. ``sweep.json`` records the configuration; resuming with a
  different configuration is an error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .areas import AreaType, area_type, network_for_area
from .cm import DEFAULT_CM_SCHEMA, CMSchema
from .geometry import drop_ues
from .kpi import SNAPSHOTS_PER_PERIOD, period_kpis
from .network import (
    Network,
    UEPopulation,
    cell_kpis,
    coupling_gain_db,
    draw_channel,
    simulate,
    simulate_from_gain,
)

CM_SAMPLING_MODES: tuple[str, ...] = ("broad", "local", "mixed")
"""CM sampling modes of a sweep (`sample_cm`)."""

DEFAULT_UE_CLUSTERING = 0.35
"""The twin sweeps' default `AreaType.ue_clustering`: UEs pulled up to 35 % of the way toward a
random per-cell hotspot (mean 17.5 %). Real UEs gather (streets, squares, buildings) where the
twin does not know; randomising it made the Sim2Real surrogate's response far less optimistic on
the field stand-in (whose hidden hotspots pull 18 % at gap 1, at other places). Set 0 for the
TR 38.901 uniform drop."""

_HOTSPOT_SALT = 0x5EC7


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep generates.

    Attributes:
        n_snapshots: number of network snapshots (rows = snapshots × cells).
        areas: area-type names cycled over chunks (each chunk holds one area type).
        n_sites: 1, 7 or 19 hexagonal sites (3 cells each).
        ues_per_cell: UEs dropped per cell (the most that can be active).
        cm_sampling: ``broad`` (uniform over the CM space), ``local`` (±steps around default) or
            ``mixed`` (per cell local or broad, the local share drawn per snapshot; `sample_cm`).
        local_max_steps: largest step change per parameter for ``local``/``mixed`` sampling.
        ue_clustering: `AreaType.ue_clustering` of every area (randomised UE hotspots, 0-0.9;
            0 = uniform drop).
        snapshots_per_row: snapshots aggregated into one row, a reporting period under one CM,
            hour and traffic level (`make_batch_fn`); 1 = one row per snapshot.
            ``n_snapshots`` counts rows (periods).
        seed: PRNG seed.
        chunk_size: snapshots per Parquet file (a multiple of the device count is fastest).
    """

    n_snapshots: int = 1024
    areas: tuple[str, ...] = ("metro", "urban", "suburban")
    n_sites: int = 7
    ues_per_cell: int = 10
    cm_sampling: str = "mixed"
    local_max_steps: int = 1
    ue_clustering: float = DEFAULT_UE_CLUSTERING
    snapshots_per_row: int = SNAPSHOTS_PER_PERIOD
    seed: int = 0
    chunk_size: int = 256

    def __post_init__(self):
        if self.n_snapshots <= 0:
            raise ValueError(f"n_snapshots must be > 0, got {self.n_snapshots}")
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {self.chunk_size}")
        if self.cm_sampling not in CM_SAMPLING_MODES:
            raise ValueError(
                f"cm_sampling must be one of {CM_SAMPLING_MODES}, got {self.cm_sampling!r}"
            )
        if not self.areas:
            raise ValueError("areas must name at least one area type")
        for a in self.areas:
            area_type(a).with_ue_clustering(self.ue_clustering)  # validates both
        if self.snapshots_per_row < 1:
            raise ValueError(f"snapshots_per_row must be >= 1, got {self.snapshots_per_row}")
        if self.ues_per_cell <= 0:
            raise ValueError(f"ues_per_cell must be > 0, got {self.ues_per_cell}")

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_snapshots / self.chunk_size)


def diurnal_activity(hour: Float[Array, "..."]) -> Float[Array, "..."]:
    """Relative activity over the day in [0.25, 1]: a smooth two-peak profile (hour in 0-24).

    A stand-in for a real diurnal profile (the C2TM city traffic peaks around 12 h and 20 h with a
    trough near 4 h); :mod:`dtwin.ue` learns the real one.
    """
    h = jnp.asarray(hour, jnp.float32)
    day = 0.5 * (1 - jnp.cos(2 * jnp.pi * (h - 4.0) / 24.0))
    evening = jnp.exp(-0.5 * ((h - 20.0) / 2.5) ** 2)
    return 0.25 + 0.75 * jnp.clip(0.8 * day + 0.35 * evening, 0.0, 1.0)


HOURS_PER_DAY = 24
"""Integer hours a snapshot's hour of day is drawn from (`sample_population`)."""


def stratified_hours(n: int) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """Hours of day (h) for ``n`` snapshots spread evenly over the day, and their weights.

    A stratified sample of the uniform hour `sample_population` draws: with ``n >= 24`` snapshot
    ``i`` is at hour ``i mod 24`` and its weight ``(n / 24) / (snapshots at that hour)``, so
    every hour weighs exactly 1/24 of the day in a weighted average, as in expectation under
    random hours (e.g. ``n = 64``: hours 0-15 three times at weight 8/9, 16-23 twice at 4/3).
    With ``n < 24`` the hours are evenly spaced (``floor(24 i / n)``, a systematic sample) at
    weight 1. Weights average 1. Averages over such a sample keep the expectation of random
    hours and lose most of their variance: the hour moves a cell's throughput several-fold
    (busy hour vs night), so 64 random hours leave about 9 % (sd of log) on a network's mean
    throughput on the field stand-in.

    Raises:
        ValueError: if ``n < 1``.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"stratified_hours: n must be >= 1, got {n}")
    i = np.arange(n)
    if n < HOURS_PER_DAY:
        return jnp.asarray((HOURS_PER_DAY * i) // n, jnp.float32), jnp.ones((n,), jnp.float32)
    hours = i % HOURS_PER_DAY
    count = np.bincount(hours, minlength=HOURS_PER_DAY)
    weight = (n / HOURS_PER_DAY) / count[hours]
    return jnp.asarray(hours, jnp.float32), jnp.asarray(weight, jnp.float32)


class Snapshot(eqx.Module):
    """One sampled network state: UEs, channel, CM and the exogenous state."""

    population: UEPopulation
    channel: object
    cm: dict
    hour: Float[Array, ""]


def sample_population(
    key: PRNGKeyArray,
    network: Network,
    area: AreaType,
    ues_per_cell: int,
    period_key: PRNGKeyArray | None = None,
    hour: Float[ArrayLike, ""] | None = None,
) -> tuple[UEPopulation, Float[Array, ""]]:
    """Draw a snapshot's UE population and hour of day (the channel is drawn separately).

    The hour of day is uniform; the number of active UEs per cell and their mean demand scale with
    :func:`diurnal_activity`; per-UE demand is log-normal (σ = 0.5 in natural-log units) around the
    cell's mean. Uses the same key as :func:`sample_snapshot`, which adds the channel.

    ``period_key``: when given, the period's conditions (hour, per-cell activity level, demand
    level) come from it and only the UE drop and per-UE demand from ``key``, so snapshots with
    the same ``period_key`` belong to one reporting period (`make_batch_fn`
    ``snapshots_per_row``).

    With ``area.ue_clustering > 0`` every cell draws (from the period's key) a hotspot in its
    sector, at ``U(0.15, 0.55) x ISD`` from the site on a bearing ``N(0, 20 deg)`` off boresight,
    and a pull ``p ~ U(0, ue_clustering)``; the cell's dropped UEs move the share ``p`` of the way
    toward it. Other draws are unchanged.

    ``hour``: the hour of day (0-24) instead of a drawn one; the activity and demand follow it.
    Use it to stratify a sample over the day (`stratified_hours`): the hour is what moves a
    cell's throughput most (several-fold between the busy hour and the night), so a sample of
    random hours carries that spread into every average over it.
    """
    k_drop, _, k_hour, k_act, k_dem, k_lvl = jax.random.split(key, 6)
    if period_key is not None:
        _, _, k_hour, k_act, _, k_lvl = jax.random.split(period_key, 6)
    topo = network.topology
    n_cells = topo.cell_site.shape[0]
    ues = drop_ues(
        k_drop, topo, ues_per_cell, area.min_distance_2d_m, indoor_ratio=area.indoor_ratio
    )
    if area.ue_clustering > 0.0:
        src = key if period_key is None else period_key
        k_hot = jax.random.fold_in(src, _HOTSPOT_SALT)
        ues = _pull_to_hotspots(k_hot, ues, topo, area, ues_per_cell)
    if hour is None:
        hour = jax.random.randint(k_hour, (), 0, 24).astype(jnp.float32)
    else:
        hour = jnp.asarray(hour, jnp.float32)
    act = diurnal_activity(hour)
    lo, hi = area.active_ues_per_cell
    level = jax.random.uniform(k_act, (n_cells,), minval=0.7, maxval=1.3)
    n_active = jnp.clip(jnp.round((lo + (hi - lo) * act) * level), 1, ues_per_cell)
    rank = jnp.tile(jnp.arange(ues_per_cell), n_cells)
    weight = (rank < jnp.repeat(n_active, ues_per_cell)).astype(jnp.float32)
    dlo, dhi = area.demand_mbps
    mean_demand = (dlo + (dhi - dlo) * act) * jax.random.uniform(k_lvl, (), minval=0.8, maxval=1.2)
    demand = mean_demand * jnp.exp(0.5 * jax.random.normal(k_dem, weight.shape) - 0.125)
    population = UEPopulation(ues=ues, demand_mbps=demand.astype(jnp.float32), weight=weight)
    return population, hour


def _pull_to_hotspots(key: PRNGKeyArray, ues, topo, area: AreaType, ues_per_cell: int):
    """Move each cell's UEs part of the way toward a random hotspot (`sample_population`)."""
    n_cells = topo.cell_site.shape[0]
    k_d, k_b, k_p = jax.random.split(key, 3)
    dist = area.isd_m * jax.random.uniform(k_d, (n_cells,), minval=0.15, maxval=0.55)
    bearing = jnp.deg2rad(topo.cell_azimuth_deg + 20.0 * jax.random.normal(k_b, (n_cells,)))
    site_xy = topo.site_xy_m[topo.cell_site]
    hotspot = site_xy + dist[:, None] * jnp.stack([jnp.cos(bearing), jnp.sin(bearing)], -1)
    pull = area.ue_clustering * jax.random.uniform(k_p, (n_cells,))
    home = jnp.repeat(jnp.arange(n_cells), ues_per_cell)
    xy = ues.xy_m + pull[home, None] * (hotspot[home] - ues.xy_m)
    return eqx.tree_at(lambda u: u.xy_m, ues, xy.astype(ues.xy_m.dtype))


def sample_snapshot(
    key: PRNGKeyArray,
    network: Network,
    area: AreaType,
    ues_per_cell: int,
    cm: dict[str, Float[Array, " cells"]],
    period_key: PRNGKeyArray | None = None,
    hour: Float[ArrayLike, ""] | None = None,
) -> Snapshot:
    """Draw a UE population (:func:`sample_population`) and a channel realisation, given a CM
    (``hour``: the hour of day instead of a drawn one, as `sample_population`)."""
    population, hour = sample_population(key, network, area, ues_per_cell, period_key, hour)
    k_ch = jax.random.split(key, 6)[1]
    channel = draw_channel(k_ch, network, population)
    return Snapshot(population=population, channel=channel, cm=cm, hour=hour)


def sample_cm(
    key: PRNGKeyArray, schema: CMSchema, n_cells: int, mode: str, local_max_steps: int = 1
) -> dict[str, Float[Array, " cells"]]:
    """Sample a CM of every cell on the operator's step grid.

    * ``broad``: uniform over the bounds.
    * ``local``: ±1..``local_max_steps`` steps around the default (`CMSchema.sample_local`).
    * ``mixed``: each cell local with probability ``p ~ U(0, 1)`` (one ``p`` per snapshot), else
      broad. Snapshots then range from all-broad to nearly all-default, so the data also cover
      the default CM and its neighbourhood jointly -- the reference point a surrogate's CM
      response is measured from (`sim2real.ResponsePart`) and where commercial data live. With
      ``broad`` alone the default for all cells at once is a corner the data never visit, and
      the response relative to it is an extrapolation.
    """
    if mode == "broad":
        return schema.round(schema.sample_uniform(key, n_cells))
    if mode == "local":
        return schema.sample_local(key, schema.default(n_cells), max_steps=local_max_steps)
    if mode == "mixed":
        k_b, k_l, k_p, k_c = jax.random.split(key, 4)
        broad = schema.round(schema.sample_uniform(k_b, n_cells))
        local = schema.sample_local(k_l, schema.default(n_cells), max_steps=local_max_steps)
        pick = jax.random.uniform(k_c, (n_cells,)) < jax.random.uniform(k_p)
        return {k: jnp.where(pick, local[k], broad[k]) for k in broad}
    raise ValueError(f"CM sampling mode must be one of {CM_SAMPLING_MODES}, got {mode!r}")


def evaluate_period(
    key: PRNGKeyArray,
    network: Network,
    area: AreaType,
    ues_per_cell: int,
    cm: dict[str, Float[Array, " cells"]],
    snapshots_per_row: int = SNAPSHOTS_PER_PERIOD,
) -> dict[str, Float[Array, " cells"]]:
    """One data row: a reporting period of ``snapshots_per_row`` snapshots under ``cm``
    (`sample_period` + `evaluate_snapshot`, aggregated by `period_row`); with 1, a snapshot."""
    snaps = sample_period(key, network, area, ues_per_cell, cm, snapshots_per_row)
    if snapshots_per_row == 1:
        return evaluate_snapshot(network, snaps)
    return period_row(jax.vmap(functools.partial(evaluate_snapshot, network))(snaps))


def sample_period(
    key: PRNGKeyArray,
    network: Network,
    area: AreaType,
    ues_per_cell: int,
    cm: dict[str, Float[Array, " cells"]],
    snapshots_per_row: int = SNAPSHOTS_PER_PERIOD,
) -> Snapshot:
    """The snapshots of one reporting period under ``cm``, stacked on a leading axis of
    ``snapshots_per_row`` (UE drops and channels from ``split(key)``, the period's hour and
    traffic levels from ``key``); with 1, the single snapshot `sample_snapshot` draws from
    ``key`` (no leading axis)."""
    if snapshots_per_row < 1:
        raise ValueError(f"snapshots_per_row must be >= 1, got {snapshots_per_row}")
    if snapshots_per_row == 1:
        return sample_snapshot(key, network, area, ues_per_cell, cm)
    return jax.vmap(lambda k: sample_snapshot(k, network, area, ues_per_cell, cm, period_key=key))(
        jax.random.split(key, snapshots_per_row)
    )


def period_row(per_snapshot: dict[str, Float[Array, "snapshots cells"]]) -> dict[str, Array]:
    """One reporting period's row from its snapshots' `evaluate_snapshot` columns.

    KPIs and counters as `dtwin.kpi.period_kpis` (per-UE KPIs over all served UEs, counters
    averaged); ``load_converged`` is true only if every snapshot's load fixed point converged.
    """
    per = dict(per_snapshot)
    converged = jnp.all(per.pop("load_converged"), axis=0)
    out = period_kpis(per, per["active_ues"])
    out["load_converged"] = converged
    return out


def snapshot_gain_db(network: Network, snap: Snapshot) -> Float[Array, "ues cells"]:
    """Coupling gain (dB) of every UE-cell link of a snapshot at its CM's tilts."""
    return coupling_gain_db(network, snap.population, snap.channel, snap.cm["tilt_deg"])


def evaluate_snapshot(
    network: Network, snap: Snapshot, gain_db: Float[Array, "ues cells"] | None = None
) -> dict[str, Float[Array, " cells"]]:
    """Simulate a snapshot (hard association) and return per-cell KPI, PM and state columns.

    ``gain_db``: the snapshot's :func:`snapshot_gain_db` if already computed.
    """
    if gain_db is None:
        res = simulate(network, snap.population, snap.channel, snap.cm, hard=True)
    else:
        res = simulate_from_gain(network, snap.population, gain_db, snap.cm, hard=True)
    out = dict(cell_kpis(network, snap.population, res))
    w = res.serving_prob * snap.population.weight[:, None]
    demand = jnp.where(jnp.isfinite(snap.population.demand_mbps), snap.population.demand_mbps, 0.0)
    out["active_ues"] = jnp.sum(w, axis=0)
    out["offered_load_mbps"] = jnp.sum(w * demand[:, None], axis=0)
    out["hour"] = jnp.broadcast_to(snap.hour, out["active_ues"].shape)
    out["load_converged"] = jnp.broadcast_to(res.load_converged, out["active_ues"].shape)
    for name, v in snap.cm.items():
        out[name] = v
    return out


def snapshot_key(seed: int, snapshot_id) -> PRNGKeyArray:
    """The key of snapshot ``snapshot_id`` (independent of chunking and devices)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), snapshot_id)


@functools.lru_cache(maxsize=32)
def make_batch_fn(
    area: AreaType,
    n_sites: int,
    ues_per_cell: int,
    cm_sampling: str = "broad",
    local_max_steps: int = 1,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    snapshots_per_row: int = 1,
):
    """A batched function ``keys[b] -> dict of [b, cells] arrays`` for one area type.

    With ``snapshots_per_row = K > 1`` every row is a reporting period: ``K`` snapshots (UE
    drops and channels) under one CM, hour and traffic level, aggregated as the period's counters
    (`period_row`), so a row's KPI is far less noisy than one snapshot's.

    Two jitted, vmapped stages: (1) sample the snapshot and compute the coupling gain of every
    link; (2) association, load coupling, throughput and KPIs from that gain. Handing the gain
    from one compiled function to the other materialises it once. In a single function XLA's
    CPU backend fuses the per-link chain (geometry, antenna pattern, pathloss) into each
    reduction that reads it (association argmax, KPI means), where it runs unvectorised once
    per consumer; the split made the sweep ~1.6x faster (``experiments/bench_sweep.py``).
    Results equal ``vmap`` of :func:`sample_snapshot` + :func:`evaluate_snapshot` (to float32
    rounding; tested).

    Cached on its (hashable) arguments, so repeated sweeps of the same shape compile once.

    Returns:
        ``(network, batch_fn)``.
    """
    if snapshots_per_row < 1:
        raise ValueError(f"snapshots_per_row must be >= 1, got {snapshots_per_row}")
    network = network_for_area(area, n_sites)
    n_cells = network.n_cells

    def links(key):
        k_cm, k_snap = jax.random.split(key)
        cm = sample_cm(k_cm, schema, n_cells, cm_sampling, local_max_steps)
        snaps = sample_period(k_snap, network, area, ues_per_cell, cm, snapshots_per_row)
        gain = functools.partial(snapshot_gain_db, network)
        return snaps, (gain(snaps) if snapshots_per_row == 1 else jax.vmap(gain)(snaps))

    snapshot_fn = functools.partial(evaluate_snapshot, network)

    def evaluate(snaps, gains):
        if snapshots_per_row == 1:
            return snapshot_fn(snaps, gains)
        return period_row(jax.vmap(snapshot_fn)(snaps, gains))

    links_fn = jax.jit(jax.vmap(links))
    evaluate_fn = jax.jit(jax.vmap(evaluate))

    def batch_fn(keys):
        return evaluate_fn(*links_fn(keys))

    return network, batch_fn


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("snapshots",))


_snapshot_keys = jax.jit(jax.vmap(snapshot_key, in_axes=(None, 0)))


def run_batch(
    batch_fn, seed: int, snapshot_ids: np.ndarray, mesh: Mesh | None = None
) -> dict[str, np.ndarray]:
    """Evaluate snapshot ids, sharded over the mesh's devices along the snapshot axis.

    The batch is padded to a multiple of the device count; the padding is removed from the result.
    """
    mesh = mesh or _mesh()
    n_dev = mesh.devices.size
    b = len(snapshot_ids)
    pad = (-b) % n_dev
    ids = np.concatenate([snapshot_ids, np.repeat(snapshot_ids[-1:], pad)]).astype(np.int32)
    keys = np.asarray(_snapshot_keys(seed, ids))
    keys = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("snapshots")))
    out = batch_fn(keys)
    return {k: np.asarray(v)[:b] for k, v in out.items()}


def _static_columns(network: Network, area: AreaType) -> dict[str, np.ndarray]:
    topo = network.topology
    site = np.asarray(topo.cell_site)
    xy = np.asarray(topo.site_xy_m)[site]
    return {
        "cell_id": np.arange(len(site), dtype=np.int64),
        "site_id": site.astype(np.int64),
        "x_m": xy[:, 0].astype(np.float32),
        "y_m": xy[:, 1].astype(np.float32),
        "azimuth_deg": np.asarray(topo.cell_azimuth_deg, np.float32),
        "height_m": np.asarray(topo.bs_height_m, np.float32),
    }


def to_rows(
    batch: dict[str, np.ndarray], snapshot_ids: np.ndarray, network: Network, area: AreaType
) -> dict[str, np.ndarray]:
    """Flatten ``[snapshots, cells]`` results into one row per cell per snapshot (columnar)."""
    b = len(snapshot_ids)
    n_cells = network.n_cells
    static = _static_columns(network, area)
    cols: dict[str, np.ndarray] = {
        "snapshot_id": np.repeat(snapshot_ids.astype(np.int64), n_cells),
    }
    for k, v in static.items():
        cols[k] = np.tile(v, b)
    cols["area_type"] = np.array([area.name] * (b * n_cells), dtype=object)
    cols["isd_m"] = np.full(b * n_cells, area.isd_m, np.float32)
    cols["ue_density_per_km2"] = np.full(b * n_cells, area.ue_density_per_km2, np.float32)
    cols["indoor_ratio"] = np.full(b * n_cells, area.indoor_ratio, np.float32)
    for k, v in batch.items():
        arr = np.asarray(v).reshape(b * n_cells)
        cols[k] = arr.astype(np.float32) if arr.dtype != np.bool_ else arr
    return cols


def _write_parquet_atomic(cols: dict[str, np.ndarray], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _check_manifest(out_dir: Path, config: SweepConfig) -> None:
    manifest = out_dir / "sweep.json"
    cfg = dataclasses.asdict(config)
    cfg["areas"] = list(cfg["areas"])
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != cfg:
            diff = {k: (old.get(k), cfg[k]) for k in cfg if old.get(k) != cfg[k]}
            raise ValueError(
                f"{out_dir} holds a sweep with another configuration (differs in {diff}); "
                "use a new output directory or the same configuration to resume"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(cfg, indent=2))


def chunk_path(out_dir: Path, chunk: int) -> Path:
    return Path(out_dir) / f"part-{chunk:06d}.parquet"


def run_sweep(
    config: SweepConfig,
    out_dir: str | os.PathLike,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    progress: bool = True,
    max_chunks: int | None = None,
) -> Path:
    """Run (or resume) a sweep and write its Parquet chunks to ``out_dir``.

    Args:
        config: the sweep's configuration.
        out_dir: output directory (created); holds ``sweep.json`` and ``part-*.parquet``.
        schema: the CM schema to sample from.
        progress: show a tqdm progress bar.
        max_chunks: stop after writing this many new chunks (for tests and time-boxed runs).

    Returns:
        The output directory.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    _check_manifest(out, config)
    todo = [c for c in range(config.n_chunks) if not chunk_path(out, c).exists()]
    mesh = _mesh()
    written = 0
    bar = tqdm(
        total=config.n_chunks,
        initial=config.n_chunks - len(todo),
        disable=not progress,
        desc="twin sweep",
        unit="chunk",
    )
    for c in todo:
        if max_chunks is not None and written >= max_chunks:
            break
        area = area_type(config.areas[c % len(config.areas)]).with_ue_clustering(
            config.ue_clustering
        )
        network, fn = make_batch_fn(
            area,
            config.n_sites,
            config.ues_per_cell,
            config.cm_sampling,
            config.local_max_steps,
            schema,
            config.snapshots_per_row,
        )
        lo = c * config.chunk_size
        ids = np.arange(lo, min(lo + config.chunk_size, config.n_snapshots))
        batch = run_batch(fn, config.seed, ids, mesh)
        _write_parquet_atomic(to_rows(batch, ids, network, area), chunk_path(out, c))
        written += 1
        bar.update(1)
    bar.close()
    return out


def read_sweep(out_dir: str | os.PathLike):
    """Read all complete chunks of a sweep as one ``pyarrow.Table`` sorted by snapshot and cell."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(Path(out_dir).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no sweep chunks (part-*.parquet) in {out_dir}")
    table = pa.concat_tables([pq.read_table(f) for f in files])
    return table.sort_by([("snapshot_id", "ascending"), ("cell_id", "ascending")])
