"""A trained Sim2Real surrogate ensemble as an `opt` predictor (``cm -> Prediction``).

The optimisers in this package take any predictor ``cm -> Prediction`` (`opt.objectives`);
`ensemble_predictor` adapts a stacked ensemble from `sim2real.fit`: the CM is encoded onto the
schema's [0, 1] scale, every context snapshot (e.g. recent commercial periods) is predicted under
it, and means and ensemble spreads are averaged over the snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema
from sim2real.dataset import GraphBatch
from sim2real.ensemble import predict, predict_members

from .objectives import Prediction, Predictor


class EnsemblePredictor(eqx.Module):
    """An `opt` predictor from a trained surrogate ensemble.

    ``predictor(cm)`` encodes the CM to [0, 1] (`dtwin.cm` bounds), predicts every context
    snapshot of ``context`` under it and averages over the snapshots; the std is the ensemble
    spread averaged the same way. Differentiable in ``cm``.
    """

    ensemble: Any
    context: GraphBatch
    schema: CMSchema = eqx.field(static=True, default=DEFAULT_CM_SCHEMA)

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
        y = jnp.mean(predict_members(self.ensemble, self._batch(cm)), axis=1)
        return {n: y[..., i] for i, n in enumerate(self.context.target_names)}

    def __call__(self, cm: Mapping[str, Float[Array, " cells"]]) -> Prediction:
        mean, std = predict(self.ensemble, self._batch(cm))
        names = self.context.target_names
        return Prediction(
            {n: jnp.mean(mean[..., i], axis=0) for i, n in enumerate(names)},
            {n: jnp.mean(std[..., i], axis=0) for i, n in enumerate(names)},
        )


def ensemble_predictor(
    ensemble: Any, state_batch: GraphBatch, *, schema: CMSchema = DEFAULT_CM_SCHEMA
) -> EnsemblePredictor:
    """The adapter from a trained ensemble to the `opt` predictor protocol (``cm -> Prediction``).

    Args:
        ensemble: stacked surrogate ensemble (`sim2real.fit`).
        state_batch: context snapshots whose states (and static features, graph) the prediction
            averages over, e.g. recent commercial periods.
        schema: CM schema (bounds of the [0, 1] encoding).
    """
    if not isinstance(state_batch, GraphBatch):
        raise TypeError(
            f"ensemble_predictor: state_batch must be a GraphBatch, got {type(state_batch)}"
        )
    return EnsemblePredictor(ensemble, state_batch, schema)


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


__all__: Sequence[str] = ("EnsemblePredictor", "ensemble_predictor", "predict_candidates")
