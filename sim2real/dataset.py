"""Turning validated row tables into fixed-shape per-snapshot graph batches.

A `GraphBatch` holds a whole data set as dense arrays over ``[snapshots, cells]`` (a missing
(cell, period) row is masked out), the static per-cell features, and the neighbour graph, so that
every minibatch of snapshots has the same shape under ``jit``.

Feature encodings (fixed, so twin and commercial data are encoded identically):

* state: ``hour`` -> ``(sin, cos)`` of ``2 pi hour / 24``; every other state column
  ``x -> log1p(max(x, 0))`` (counts, loads and densities are non-negative and heavy-tailed).
* CM: scaled to [0, 1] with the CM schema's bounds (`dtwin.cm.CMSchema.to_unit`).
* static: one-hot ``area_type`` (metro, urban, suburban, rural) and ``height_m / 30``.
* targets: kept in physical units; rates and volumes (units Mbps, MB) are modelled in the log
  domain (`is_log_target`), the others linearly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema
from dtwin.schema import TARGET_COLUMNS

from .data import _INT32_MAX, _INT32_MIN, AREA_TYPES, Measurements
from .graph import NeighbourGraph, neighbour_graph, neighbourhood_mean

LOG_FLOOR = 1e-3
"""Floor applied before the log of a log-domain target (same unit as the target)."""


def is_log_target(name: str) -> bool:
    """Whether target ``name`` is modelled in the log domain (positive rates/volumes)."""
    unit = TARGET_COLUMNS.get(name, ("-", ""))[0]
    return unit in ("Mbps", "MB")


class GraphBatch(eqx.Module):
    """A data set as dense ``[snapshots, cells, ...]`` arrays plus the static graph.

    Attributes:
        state: ``[snapshots, cells, n_state]`` encoded state features.
        cm_unit: ``[snapshots, cells, n_cm]`` CM scaled to [0, 1].
        targets: ``[snapshots, cells, n_targets]`` targets in physical units (0 where masked).
        mask: ``[snapshots, cells]`` True where the (cell, snapshot) row exists.
        prior: ``[snapshots, cells, n_targets]`` physics prior in the model domain (log for
            log targets), 0 where there is none.
        static: ``[cells, n_static]`` static cell features.
        graph: the neighbour graph.
        cell_id: ``[cells]`` cell identifiers.
        ues: ``[snapshots, cells]`` served UEs of each row (the ``active_ues`` state column, 0
            where masked): the weight a row's per-UE KPIs carry when rows are pooled
            (`dtwin.kpi.period_kpis`, `opt.ensemble_predictor`); None when the data have no
            ``active_ues``.
        cm_ref_unit: ``[n_cm]`` the schema's default CM in [0, 1] (reference for KPI changes).
        state_names, cm_names, target_names: feature/column names (static).
        log_targets: per target, whether it is modelled in the log domain (static).
    """

    state: Float[Array, "snapshots cells n_state"]
    cm_unit: Float[Array, "snapshots cells n_cm"]
    targets: Float[Array, "snapshots cells n_targets"]
    mask: Bool[Array, "snapshots cells"]
    prior: Float[Array, "snapshots cells n_targets"]
    static: Float[Array, "cells n_static"]
    graph: NeighbourGraph
    cell_id: Int[Array, " cells"]
    cm_ref_unit: Float[Array, " n_cm"]
    state_names: tuple[str, ...] = eqx.field(static=True)
    cm_names: tuple[str, ...] = eqx.field(static=True)
    target_names: tuple[str, ...] = eqx.field(static=True)
    log_targets: tuple[bool, ...] = eqx.field(static=True)
    ues: Float[Array, "snapshots cells"] | None = None

    @property
    def n_snapshots(self) -> int:
        return int(self.state.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.state.shape[1])

    def take(self, idx: Int[Array, " n"]) -> GraphBatch:
        """The snapshots ``idx`` (works under ``jit`` with traced ``idx``; numpy ``idx`` outside
        ``jit`` indexes on the host, avoiding a compilation per shape)."""

        def where(b):
            out = (b.state, b.cm_unit, b.targets, b.mask, b.prior)
            return out if b.ues is None else (*out, b.ues)

        leaves = where(self)
        if isinstance(idx, np.ndarray) and not any(isinstance(x, jax.core.Tracer) for x in leaves):
            taken = tuple(jnp.asarray(np.asarray(x)[idx]) for x in leaves)
        else:
            taken = tuple(x[idx] for x in leaves)
        return eqx.tree_at(where, self, taken)

    def with_cm(self, cm_unit: Float[Array, "snapshots cells n_cm"]) -> GraphBatch:
        """The same snapshots under another CM (in [0, 1] units)."""
        return eqx.tree_at(lambda b: b.cm_unit, self, jnp.broadcast_to(cm_unit, self.cm_unit.shape))


def to_model_domain(values: Float[Array, "... n_targets"], log_targets: Sequence[bool]) -> Array:
    """Physical target values -> model domain (``log(max(y, LOG_FLOOR))`` for log targets)."""
    is_log = jnp.asarray(log_targets, bool)
    return jnp.where(is_log, jnp.log(jnp.maximum(values, LOG_FLOOR)), values)


def from_model_domain(z: Float[Array, "... n_targets"], log_targets: Sequence[bool]) -> Array:
    """Inverse of `to_model_domain` (``exp`` for log targets)."""
    is_log = jnp.asarray(log_targets, bool)
    return jnp.where(is_log, jnp.exp(jnp.where(is_log, z, 0.0)), z)


def _encode_state(name: str, values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    if name == "hour":
        ang = 2.0 * math.pi * values / 24.0
        return [("hour_sin", np.sin(ang)), ("hour_cos", np.cos(ang))]
    return [(f"log1p_{name}", np.log1p(np.maximum(values, 0.0)))]


def static_features(area_type: Sequence[str], height_m: np.ndarray) -> np.ndarray:
    """``[cells, 5]``: one-hot area type (metro, urban, suburban, rural) and ``height_m / 30``."""
    area = np.asarray(area_type).astype(str)
    bad = sorted(set(area) - set(AREA_TYPES))
    if bad:
        raise ValueError(f"static_features: unknown area_type {bad}; allowed {list(AREA_TYPES)}")
    onehot = (area[:, None] == np.array(AREA_TYPES)[None, :]).astype(np.float32)
    return np.concatenate([onehot, (np.asarray(height_m, np.float32) / 30.0)[:, None]], axis=1)


def batch_from_arrays(
    *,
    x_m: np.ndarray,
    y_m: np.ndarray,
    azimuth_deg: np.ndarray,
    site_id: np.ndarray,
    area_type: Sequence[str],
    height_m: np.ndarray,
    cm: Mapping[str, np.ndarray],
    state: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray] | None = None,
    mask: np.ndarray | None = None,
    cell_id: np.ndarray | None = None,
    k: int = 18,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    local_state: Sequence[str] = (),
) -> GraphBatch:
    """Build a `GraphBatch` from dense arrays.

    Args:
        x_m, y_m, azimuth_deg, site_id, area_type, height_m: ``[cells]`` topology.
        cm: CM name -> ``[snapshots, cells]`` physical values (names must be in ``schema``).
        state: state column -> ``[snapshots, cells]``.
        targets: target column -> ``[snapshots, cells]`` physical values.
        priors: optional target -> ``[snapshots, cells]`` baseline (physical units).
        mask: ``[snapshots, cells]`` rows present (default all).
        cell_id: ``[cells]`` (default ``arange``).
        k: neighbours per cell besides co-site ones (`neighbour_graph`).
        schema: CM schema for the [0, 1] scaling.
        local_state: state columns replaced by their mean over the cell and its graph
            neighbours (`sim2real.graph.neighbourhood_mean`, over all cells) and renamed
            ``local_<name>``. Use it for counters that the CM itself moves between neighbours
            (``active_ues``, ``offered_load_mbps``): fed per cell, they explain part of the CM
            response away and the surrogate under-predicts it for a new CM.
    """
    n_cells = int(np.asarray(x_m).shape[0])
    first = np.asarray(next(iter(targets.values())))
    shape = first.shape
    if len(shape) != 2 or shape[1] != n_cells:
        raise ValueError(f"batch_from_arrays: targets must be [snapshots, {n_cells}], got {shape}")
    for group, d in (("cm", cm), ("state", state), ("targets", targets), ("priors", priors or {})):
        for name, v in d.items():
            if np.shape(v) != shape:
                raise ValueError(
                    f"batch_from_arrays: {group}[{name!r}] has shape {np.shape(v)}, "
                    f"expected {shape}"
                )
    unknown = [c for c in cm if c not in schema]
    if unknown:
        raise ValueError(f"batch_from_arrays: CM {unknown} not in the schema {list(schema.names)}")
    missing_local = [c for c in local_state if c not in state]
    if missing_local:
        raise ValueError(
            f"batch_from_arrays: local_state {missing_local} not among the state columns "
            f"{list(state)}"
        )
    mask_arr = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    graph = neighbour_graph(x_m, y_m, azimuth_deg, site_id, k=k)
    state_cols: list[tuple[str, np.ndarray]] = []
    for name, v in state.items():
        v = np.asarray(v, np.float64)
        if name in local_state:
            # every cell counts (a cell serving no UE contributes its 0), masked or not
            name, v = f"local_{name}", neighbourhood_mean(v, graph)
        state_cols += _encode_state(name, v)
    n_s = shape[0]
    state_arr = (
        np.stack([v for _, v in state_cols], axis=-1) if state_cols else np.zeros((n_s, n_cells, 0))
    )
    cm_names = tuple(cm)
    cm_unit = np.stack(
        [
            (np.asarray(cm[n], np.float64) - schema[n].low) / (schema[n].high - schema[n].low)
            for n in cm_names
        ],
        axis=-1,
    )
    cm_ref = np.array(
        [(schema[n].default - schema[n].low) / (schema[n].high - schema[n].low) for n in cm_names]
    )
    target_names = tuple(targets)
    log_targets = tuple(is_log_target(t) for t in target_names)
    tgt = np.stack([np.asarray(targets[t], np.float64) for t in target_names], axis=-1)
    prior = np.zeros_like(tgt)
    for j, t in enumerate(target_names):
        if priors and t in priors:
            p = np.asarray(priors[t], np.float64)
            prior[..., j] = np.log(np.maximum(p, LOG_FLOOR)) if log_targets[j] else p
    ids = np.arange(n_cells) if cell_id is None else np.asarray(cell_id, np.int64)
    big = ids[(ids < _INT32_MIN) | (ids > _INT32_MAX)]
    if big.size:
        raise ValueError(
            f"batch_from_arrays: cell_id(s) {big[:5].tolist()} outside the int32 range the "
            "batch holds cell ids in; renumber the cells (e.g. 1..n)"
        )
    m3 = mask_arr[..., None]
    ues = None
    if "active_ues" in state:  # the rows' weights when pooled (GraphBatch.ues)
        ues = np.where(mask_arr, np.asarray(state["active_ues"], np.float64), 0.0)
        bad = ~np.isfinite(ues) | (ues < 0)
        if bad.any():
            s_, c_ = np.argwhere(bad)[0]
            raise ValueError(
                f"batch_from_arrays: state['active_ues'] must be finite and >= 0 on present rows; "
                f"{int(bad.sum())} are not (first: snapshot {s_}, cell {c_}: {ues[s_, c_]})"
            )
        ues = jnp.asarray(ues, jnp.float32)
    return GraphBatch(
        state=jnp.asarray(np.where(m3, state_arr, 0.0), jnp.float32),
        cm_unit=jnp.asarray(np.where(m3, cm_unit, cm_ref), jnp.float32),
        targets=jnp.asarray(np.where(m3, tgt, 0.0), jnp.float32),
        mask=jnp.asarray(mask_arr),
        prior=jnp.asarray(np.where(m3, prior, 0.0), jnp.float32),
        static=jnp.asarray(static_features(area_type, height_m), jnp.float32),
        graph=graph,
        cell_id=jnp.asarray(ids, jnp.int32),
        cm_ref_unit=jnp.asarray(cm_ref, jnp.float32),
        state_names=tuple(n for n, _ in state_cols),
        cm_names=cm_names,
        target_names=target_names,
        log_targets=log_targets,
        ues=ues,
    )


def build_batch(
    measurements: Measurements, *, k: int = 18, schema: CMSchema = DEFAULT_CM_SCHEMA
) -> GraphBatch:
    """Scatter validated `Measurements` rows into a dense `GraphBatch` over (period, cell).

    Args:
        measurements: from `sim2real.data.load_measurements`.
        k: neighbours per cell besides co-site ones.
        schema: CM schema for the [0, 1] scaling.
    """
    m = measurements
    cells = m.cells
    shape = (len(m.periods), cells.n_cells)
    pi, ci = m.period_index, m.cell_index

    def _dense(v: np.ndarray) -> np.ndarray:
        out = np.zeros(shape)
        out[pi, ci] = v
        return out

    mask = np.zeros(shape, bool)
    mask[pi, ci] = True
    # Missing rows get the cell's current CM from the topology (they are masked anyway).
    cm = {}
    for n, v in m.cm.items():
        d = np.broadcast_to(
            cells.cm.get(n, np.full(cells.n_cells, schema[n].default)), shape
        ).copy()
        d[pi, ci] = v
        cm[n] = d
    return batch_from_arrays(
        x_m=cells.x_m,
        y_m=cells.y_m,
        azimuth_deg=cells.azimuth_deg,
        site_id=cells.site_id,
        area_type=cells.area_type,
        height_m=cells.height_m,
        cm=cm,
        state={n: _dense(v) for n, v in m.state.items()},
        targets={n: _dense(v) for n, v in m.targets.items()},
        priors={n: _dense(v) for n, v in m.priors.items()},
        mask=mask,
        cell_id=cells.cell_id,
        k=k,
        local_state=tuple(c for c in m.roles.local_state if c in m.state),
        schema=schema,
    )


def split_snapshots(
    key: PRNGKeyArray, batch: GraphBatch, val_fraction: float
) -> tuple[GraphBatch, GraphBatch]:
    """Random split of the snapshots into (train, validation); each keeps at least one."""
    n = batch.n_snapshots
    if n < 2:
        raise ValueError(f"split_snapshots: need >= 2 snapshots to split, got {n}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"split_snapshots: val_fraction must be in (0, 1), got {val_fraction}")
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    perm = np.asarray(jax.random.permutation(key, n))
    return batch.take(perm[n_val:]), batch.take(perm[:n_val])


def domain_features(batch: GraphBatch) -> np.ndarray:
    """``[rows, n_state + n_targets]`` per present (snapshot, cell) row: encoded state and the
    targets in the model domain; the input of `sim2real.metrics.domain_similarity_pct`."""
    z = np.asarray(to_model_domain(batch.targets, batch.log_targets))
    feats = np.concatenate([np.asarray(batch.state), z], axis=-1)
    return feats[np.asarray(batch.mask)]
