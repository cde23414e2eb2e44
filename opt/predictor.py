"""A trained Sim2Real surrogate ensemble as an `opt` predictor (``cm -> Prediction``).

The optimisers in this package take any predictor ``cm -> Prediction`` (`opt.objectives`);
`ensemble_predictor` adapts a stacked ensemble from `sim2real.fit`: the CM is encoded onto the
schema's [0, 1] scale, every context snapshot (e.g. recent commercial periods) is predicted under
it, and means and ensemble spreads are averaged over the snapshots as the KPI counters aggregate
periods (`dtwin.kpi.period_kpis`): the per-UE KPIs (`dtwin.kpi.UE_WEIGHTED_KPIS`: UE throughput,
coverage...) weighted by each period's served UEs (``active_ues``), a ratio of sums as in
TS 28.552, every other column a plain mean.

Why the weights: a period KPI is a mean over the UEs of that period, so a quiet period (few UEs,
high throughput each) weighs as much as a busy one in a plain mean over periods but far less in
the cell's KPI over all its UEs. On the field stand-in (urban, 7 sites, 4,762 periods) the plain
mean of the per-period throughput lies 14.5 % (log, sd 3 % over the 21 cells) above the cell's
KPI over all its UEs; the UE-weighted mean lies 0.4 % below it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema
from dtwin.kpi import UE_WEIGHTED_KPIS
from sim2real.dataset import GraphBatch
from sim2real.ensemble import predict, predict_members

from .objectives import Prediction, Predictor


class EnsemblePredictor(eqx.Module):
    """An `opt` predictor from a trained surrogate ensemble.

    ``predictor(cm)`` encodes the CM to [0, 1] (`dtwin.cm` bounds), predicts every context
    snapshot of ``context`` under it and averages over the snapshots: targets in
    `dtwin.kpi.UE_WEIGHTED_KPIS` weighted by ``weight`` (a cell's served UEs in each snapshot;
    a cell whose weights are all 0 falls back to the plain mean), the others plainly (all of
    them when ``weight`` is None). The std is the ensemble spread averaged the same way.
    Differentiable in ``cm``.

    Attributes:
        ensemble: stacked surrogate ensemble.
        context: the snapshots the prediction averages over.
        weight: ``[snapshots, cells]`` UE mass of each context row (>= 0), or None.
        schema: CM schema (bounds of the [0, 1] encoding).
    """

    ensemble: Any
    context: GraphBatch
    schema: CMSchema = eqx.field(static=True, default=DEFAULT_CM_SCHEMA)
    weight: Float[Array, "snapshots cells"] | None = None

    def _average(self, y: Float[Array, "... snapshots cells n_targets"]) -> Array:
        """``y`` averaged over its snapshot axis (-3) as the class doc says."""
        plain = jnp.mean(y, axis=-3)
        if self.weight is None:
            return plain
        w = self.weight[..., None]  # [snapshots, cells, 1]
        tot = jnp.sum(w, axis=0)  # [cells, 1]
        safe = jnp.where(tot > 0, tot, 1.0)
        weighted = jnp.where(tot > 0, jnp.sum(w * y, axis=-3) / safe, plain)
        ue = jnp.asarray([n in UE_WEIGHTED_KPIS for n in self.context.target_names])
        return jnp.where(ue, weighted, plain)

    def _batch(self, cm: Mapping[str, Float[Array, " cells"]]) -> GraphBatch:
        missing = [n for n in self.context.cm_names if n not in cm]
        if missing:
            raise ValueError(f"EnsemblePredictor: the CM lacks parameter(s) {missing}")
        params = [self.schema[n] for n in self.context.cm_names]
        u = jnp.stack([(cm[p.name] - p.low) / (p.high - p.low) for p in params], axis=-1)
        return self.context.with_cm(u[None])

    def members(
        self, cm: Mapping[str, Float[Array, " cells"]]
    ) -> dict[str, Float[Array, "members cells"]]:
        """Every member's prediction, averaged over the context snapshots (KPI units).

        Their mean over members is ``self(cm).mean``; their spread across members, taken on a
        *change* between two CMs, is the ensemble's uncertainty about that change
        (`AnchoredPredictor`'s ``std_mode="response"``).
        """
        y = self._average(predict_members(self.ensemble, self._batch(cm)))
        return {n: y[..., i] for i, n in enumerate(self.context.target_names)}

    def __call__(self, cm: Mapping[str, Float[Array, " cells"]]) -> Prediction:
        mean, std = (self._average(v) for v in predict(self.ensemble, self._batch(cm)))
        names = self.context.target_names
        return Prediction(
            {n: mean[..., i] for i, n in enumerate(names)},
            {n: std[..., i] for i, n in enumerate(names)},
        )


def context_weight(state_batch: GraphBatch) -> Float[Array, "snapshots cells"] | None:
    """Each context row's served UEs (`sim2real.GraphBatch.ues`, the ``active_ues`` column),
    0 on masked rows; None when the batch holds no ``active_ues``."""
    if state_batch.ues is None:
        return None
    return jnp.where(state_batch.mask, state_batch.ues, 0.0).astype(jnp.float32)


def ensemble_predictor(
    ensemble: Any,
    state_batch: GraphBatch,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    weight: str | Array | None = "ues",
) -> EnsemblePredictor:
    """The adapter from a trained ensemble to the `opt` predictor protocol (``cm -> Prediction``).

    Args:
        ensemble: stacked surrogate ensemble (`sim2real.fit`).
        state_batch: context snapshots whose states (and static features, graph) the prediction
            averages over, e.g. recent commercial periods.
        schema: CM schema (bounds of the [0, 1] encoding).
        weight: how the per-UE KPIs are averaged over the snapshots: ``"ues"`` (default) by each
            row's served UEs (`context_weight`; a plain mean, with a warning, when the state has
            no ``active_ues``), None for a plain mean, or a ``[snapshots, cells]`` array.

    Raises:
        TypeError: if ``state_batch`` is not a `sim2real.GraphBatch`.
        ValueError: if ``weight`` is an unknown string, has the wrong shape or is negative or
            non-finite.
    """
    if not isinstance(state_batch, GraphBatch):
        raise TypeError(
            f"ensemble_predictor: state_batch must be a GraphBatch, got {type(state_batch)}"
        )
    shape = tuple(state_batch.mask.shape)
    if isinstance(weight, str):
        if weight != "ues":
            raise ValueError(
                f"ensemble_predictor: weight must be 'ues', None or an array, got {weight!r}"
            )
        w = context_weight(state_batch)
        if w is None:
            warnings.warn(
                "ensemble_predictor: the context holds no active_ues (GraphBatch.ues), so per-UE "
                "KPIs are averaged plainly over its snapshots (quiet periods weigh as much as "
                "busy ones); add active_ues to the state columns for the UE-weighted average",
                stacklevel=2,
            )
    elif weight is None:
        w = None
    else:
        w = jnp.asarray(weight, jnp.float32)
        if tuple(w.shape) != shape:
            raise ValueError(
                f"ensemble_predictor: weight must be [snapshots, cells] = {list(shape)}, "
                f"got {list(w.shape)}"
            )
        arr = np.asarray(w)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError("ensemble_predictor: weight must be finite and >= 0")
    return EnsemblePredictor(ensemble, state_batch, schema, w)


MIN_CHUNK = 8
"""Smallest batch `predict_candidates` compiles (padding short chunks; see there)."""


@eqx.filter_jit
def _predict_chunk(predictor, cms):
    return jax.vmap(lambda c: predictor(c).mean)(cms)


def predict_candidates(
    predictor: Predictor,
    cms: Mapping[str, Float[Array, "candidates cells"]],
    *,
    chunk: int = 64,
) -> dict[str, np.ndarray]:
    """Predicted mean KPIs ``[candidates, cells]`` for a stack of CMs (vmapped in chunks).

    Any `opt` predictor works (an `EnsemblePredictor`, `SimulatorPredictor`,
    `AnchoredPredictor`...). It is passed to the compiled function as an argument, so its
    arrays are traced inputs rather than constants folded into each new program: one compile
    per predictor structure and chunk shape, shared across predictors and cached on disk.

    Every chunk holds exactly ``max(chunk, MIN_CHUNK)`` candidates: a short last chunk is padded
    with copies of its last candidate and the copies are dropped, so a call compiles one shape.
    (The padding was first added against a CPU miscompilation of the ensemble vmapped over one
    candidate; its cause, a size-2 vmap inside the surrogate's response part, is fixed there,
    see `sim2real.surrogate.ResponsePart`.)
    """
    if chunk < 1:
        raise ValueError(f"predict_candidates: chunk must be >= 1, got {chunk}")
    chunk = max(int(chunk), MIN_CHUNK)
    arrays = {k: np.asarray(v, np.float32) for k, v in cms.items()}
    n = next(iter(arrays.values())).shape[0]
    parts = []
    for i in range(0, n, chunk):
        idx = np.minimum(np.arange(i, i + chunk), n - 1)
        out = _predict_chunk(predictor, {k: jnp.asarray(v[idx]) for k, v in arrays.items()})
        parts.append({k: np.asarray(v)[: min(chunk, n - i)] for k, v in out.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


__all__: Sequence[str] = (
    "EnsemblePredictor",
    "context_weight",
    "ensemble_predictor",
    "predict_candidates",
)
