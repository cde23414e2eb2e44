"""Gradient CM search through a differentiable predictor, jointly over the cells of an area.

Pipeline for one area (`search`; `search_areas` vmaps it over areas):

1. **Continuous phase.** The CM is relaxed to the unit box (``CMSchema.to_unit``) and restricted
   to the trust region (`opt.safety.GridBox`). From several starts (the current CM plus uniform
   draws inside the trust region, vmapped) Adam (Kingma & Ba 2015) maximises the safe score
   ``V_κ − penalties`` (`opt.safety.safe_score`) with a projection onto the trust region after
   every step; objective constraints (e.g. the energy problem's QoS floor) are handled by the
   augmented Lagrangian of `opt.constrained`.
2. **Discrete phase.** Each start is rounded onto the operator's grid; the best is refined by a
   greedy coordinate pass (`coordinate_refine`): every (cell, parameter) tries ±1 step and keeps
   it only when the safe score strictly improves.
3. **Safety.** `opt.safety.enforce_safety` reverts cells (guardrails, uncertainty, no-change rule).

Everything is pure JAX (jit/vmap-able); the result is a `Recommendation` pytree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema

from .constrained import augmented_lagrangian
from .objectives import AbstractObjective, KPIObjective, Prediction, Predictor
from .safety import (
    REASON_NAMES,
    GridBox,
    Reference,
    SafetyConfig,
    enforce_safety,
    grid_box,
    reference,
    safe_score,
)


class Recommendation(eqx.Module):
    """A CM recommendation for one area (or a batch, with leading axes on every array).

    Attributes:
        current_cm: the CM in force (input).
        cm: the recommended CM: on the grid where changed, equal to ``current_cm`` elsewhere,
            inside the schema's bounds and the trust region.
        mean_before, std_before: prediction (mean, std per KPI and cell) at ``current_cm``.
        mean_after, std_after: prediction at ``cm``.
        changed: per-cell mask, True where any parameter changed.
        reason: per-cell `opt.safety.Reason` code (int32).
        objective_before, objective_after: the objective ``V_0`` (no uncertainty penalty) at
            ``current_cm`` and ``cm``.
    """

    current_cm: dict[str, Float[Array, " cells"]]
    cm: dict[str, Float[Array, " cells"]]
    mean_before: dict[str, Float[Array, " cells"]]
    std_before: dict[str, Float[Array, " cells"]]
    mean_after: dict[str, Float[Array, " cells"]]
    std_after: dict[str, Float[Array, " cells"]]
    changed: Bool[Array, " cells"]
    reason: Int[Array, " cells"]
    objective_before: Float[Array, ""]
    objective_after: Float[Array, ""]


class SearchConfig(eqx.Module):
    """Settings of the gradient search (static).

    Attributes:
        n_starts: number of starts (the current CM + ``n_starts − 1`` random ones).
        n_steps: Adam steps per start (split over the augmented-Lagrangian outer iterations
            when the objective has constraints).
        learning_rate: Adam step size in unit-box coordinates.
        n_outer: augmented-Lagrangian outer iterations (constrained objectives only).
        refine_sweeps: maximum sweeps of the greedy ±1-step coordinate pass.
        relax_temperature: if set, evaluate the predictor at `CMSchema.relaxed_round` of the
            iterate (soft staircase, in grid steps) during the continuous phase.
    """

    n_starts: int = eqx.field(static=True, default=8)
    n_steps: int = eqx.field(static=True, default=100)
    learning_rate: float = eqx.field(static=True, default=0.05)
    n_outer: int = eqx.field(static=True, default=5)
    refine_sweeps: int = eqx.field(static=True, default=2)
    relax_temperature: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        for name in ("n_starts", "n_steps", "n_outer"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SearchConfig: {name} must be >= 1, got {getattr(self, name)}")
        if int(self.refine_sweeps) < 0:
            raise ValueError(f"SearchConfig: refine_sweeps must be >= 0, got {self.refine_sweeps}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"SearchConfig: learning_rate must be > 0, got {self.learning_rate}")


# ---------------------------------------------------------------------------- shared machinery
class _Problem(eqx.Module):
    """One area's problem in vector form: box, reference, and the callables on ``x``."""

    box: GridBox
    ref: Reference
    predictor: Predictor
    objective: AbstractObjective
    schema: CMSchema = eqx.field(static=True)
    safety: SafetyConfig

    def predict_x(self, x) -> Prediction:
        return self.predictor(self.schema.from_vector(x))

    def score_x(self, x, constraints: bool = True) -> Float[Array, ""]:
        """Safe score (NaN -> −inf)."""
        cm = self.schema.from_vector(x)
        s = safe_score(
            self.objective, self.safety, self.predictor(cm), cm, self.ref, constraints=constraints
        )
        moved = jnp.mean(jnp.abs(x - self.box.x_cur) / self.box.step)
        s = s - self.safety.change_cost * self.ref.scale * moved
        return jnp.where(jnp.isnan(s), -jnp.inf, s)

    def score_k(self, k) -> Float[Array, ""]:
        return self.score_x(self.box.x_of(k))


def _problem(predictor, current_cm, objective, schema, safety) -> _Problem:
    box = grid_box(schema, current_cm, safety.trust_steps)
    cm_cur = schema.from_vector(box.x_cur)
    ref = reference(objective, predictor(cm_cur), cm_cur)
    return _Problem(box, ref, predictor, objective, schema, safety)


def coordinate_refine(
    score_k: Callable[[Float[Array, "cells params"]], Float[Array, ""]],
    box: GridBox,
    k0: Float[Array, "cells params"],
    n_sweeps: int,
    s0: Float[Array, ""] | None = None,
) -> tuple[Float[Array, "cells params"], Float[Array, ""]]:
    """Greedy ±1-step coordinate pass on grid indices, accepting strict improvements only.

    Each sweep visits every (cell, parameter) in order and tries ``k − 1`` then ``k + 1`` (inside
    the trust region); a move is kept iff it raises ``score_k`` by more than ``1e-6 |score|``.
    Stops after ``n_sweeps`` sweeps or a sweep without improvement. Costs ``2 cells params``
    evaluations per sweep, plus one.

    ``s0``, when given, is ``score_k(k0)`` already computed (a search has it from choosing
    ``k0``): one evaluation, and one copy of the predictor in a compiled program, fewer.

    Returns:
        ``(k, score)`` with ``score = score_k(k) ≥ score_k(k0)`` (NaN scores count as −inf).
    """
    n_cells, n_params = k0.shape
    cells, params, dirs = np.meshgrid(
        np.arange(n_cells), np.arange(n_params), np.array([-1.0, 1.0]), indexing="ij"
    )
    cells, params, dirs = (jnp.asarray(a.ravel()) for a in (cells, params, dirs))
    k0 = box.k_of(box.x_of(k0))
    s0 = score_k(k0) if s0 is None else s0
    s0 = jnp.where(jnp.isnan(s0), -jnp.inf, s0)
    if n_sweeps <= 0:
        return k0, s0

    def move(carry, m):
        k, best, improved = carry
        c, p, d = cells[m], params[m], dirs[m]
        kn = k.at[c, p].add(d)
        valid = (kn[c, p] >= box.k_lo[c, p]) & (kn[c, p] <= box.k_hi[c, p])
        s = score_k(kn)
        accept = valid & (s > best + 1e-6 * jnp.abs(best))
        accept = accept | (valid & jnp.isinf(best) & jnp.isfinite(s))
        return (
            jnp.where(accept, kn, k),
            jnp.where(accept, s, best),
            improved | accept,
        ), None

    def sweep(c):
        k, best, _, i = c
        (k, best, improved), _ = jax.lax.scan(
            move, (k, best, jnp.asarray(False)), jnp.arange(cells.shape[0])
        )
        return k, best, improved, i + 1

    def cond(c):
        return c[2] & (c[3] < n_sweeps)

    k, best, _, _ = jax.lax.while_loop(cond, sweep, (k0, s0, jnp.asarray(True), 0))
    return k, best


def prefer_current(
    score_k: Callable[[Float[Array, "cells params"]], Float[Array, ""]],
    box: GridBox,
    k: Float[Array, "cells params"],
    s0: Float[Array, ""] | None = None,
) -> Float[Array, "cells params"]:
    """Put back each (cell, parameter) to its current value where that costs no score.

    Parameters the objective does not depend on (or ties) would otherwise keep whatever value a
    random start gave them; a change must earn its place. Sequential over (cell, parameter):
    ``cells params`` evaluations.
    """
    k_cur = box.k_of(box.x_cur)
    s0 = score_k(k)
    s0 = jnp.where(jnp.isnan(s0), -jnp.inf, s0)
    n_cells, n_params = k.shape

    def reset(carry, m):
        k, best = carry
        c, p = m // n_params, m % n_params
        kn = k.at[c, p].set(k_cur[c, p])
        s = score_k(kn)
        accept = (k[c, p] != k_cur[c, p]) & (s >= best - 1e-6 * jnp.abs(best))
        return (jnp.where(accept, kn, k), jnp.where(accept, jnp.maximum(s, best), best)), None

    (k, _), _ = jax.lax.scan(reset, (k, s0), jnp.arange(n_cells * n_params))
    return k


def _finalise(problem: _Problem, x_cand, score=None) -> Recommendation:
    """Prefer-current pass, safety check on ``x_cand``, and packing into a `Recommendation`.

    ``score``, when given, is ``problem.score_x(x_cand)`` (on the grid) already computed.
    """
    box, schema, obj = problem.box, problem.schema, problem.objective
    x_cand = box.x_of(prefer_current(problem.score_k, box, box.k_of(x_cand), score))
    x, changed, reason = enforce_safety(
        problem.predict_x, obj, problem.safety, schema, box.x_cur, x_cand, problem.ref
    )
    cm = schema.from_vector(x)
    pred = problem.predict_x(x)
    return Recommendation(
        current_cm=problem.ref.cm,
        cm=cm,
        mean_before=problem.ref.pred.mean,
        std_before=problem.ref.pred.std,
        mean_after=pred.mean,
        std_after=pred.std,
        changed=changed,
        reason=reason,
        objective_before=problem.ref.value0,
        objective_after=obj.value(pred, cm, 0.0),
    )


# ---------------------------------------------------------------------------- the search
def _search(key, predictor, current_cm, objective, schema, safety, config) -> Recommendation:
    prob = _problem(predictor, current_cm, objective, schema, safety)
    box = prob.box
    u_lo, u_hi = box.u_lo, box.u_hi
    u_cur = box.project_unit(box.unit(box.x_cur))
    u_rand = jax.random.uniform(key, (config.n_starts - 1, *u_lo.shape), jnp.float32)
    u0 = jnp.concatenate([u_cur[None], u_lo + u_rand * (u_hi - u_lo)])

    def fun(u):
        cm = schema.from_unit(schema.from_vector(u))
        if config.relax_temperature is not None:
            cm = schema.relaxed_round(cm, config.relax_temperature)
        pred = predictor(cm)
        score = safe_score(objective, safety, pred, cm, prob.ref, constraints=False)
        return -score / prob.ref.scale, objective.constraints(pred, cm)

    m = jax.eval_shape(fun, u_cur)[1].shape[0]
    n_outer = config.n_outer if m else 1
    optimizer = optax.adam(config.learning_rate)

    def run(u_start):
        res = augmented_lagrangian(
            fun,
            u_start,
            box.project_unit,
            optimizer,
            n_outer=n_outer,
            n_inner=max(1, config.n_steps // n_outer),
        )
        return res.x

    u_end = jax.vmap(run)(u0)
    k_all = box.k_of(box.from_unit(u_end))
    scores = jax.vmap(prob.score_k)(k_all)
    best = jnp.argmax(scores)
    k, s = coordinate_refine(prob.score_k, box, k_all[best], config.refine_sweeps, scores[best])
    return _finalise(prob, box.x_of(k), s)


def _check_inputs(current_cm, schema, objective, safety, config, batch: bool) -> None:
    if not isinstance(schema, CMSchema):
        raise ValueError(f"schema must be a CMSchema, got {type(schema).__name__}")
    if not isinstance(objective, AbstractObjective):
        raise ValueError(f"objective must be an AbstractObjective, got {type(objective).__name__}")
    if not isinstance(safety, SafetyConfig):
        raise ValueError(f"safety must be a SafetyConfig, got {type(safety).__name__}")
    if config is not None and not isinstance(config, SearchConfig):
        raise ValueError(f"config must be a SearchConfig, got {type(config).__name__}")
    if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(dict(current_cm))):
        return  # traced: the caller validated (call search inside jit only with valid CMs)
    schema.validate(current_cm)
    ndim = np.ndim(current_cm[schema.names[0]])
    if batch and ndim != 2:
        raise ValueError(f"search_areas: current_cm arrays must be [areas, cells], got ndim {ndim}")
    if not batch and ndim != 1:
        raise ValueError(f"search: current_cm arrays must be [cells], got ndim {ndim}")


_search_jit = eqx.filter_jit(_search)


def search(
    key: PRNGKeyArray,
    predictor: Predictor,
    current_cm: Mapping[str, Float[Array, " cells"]],
    objective: AbstractObjective | None = None,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    safety: SafetyConfig | None = None,
    config: SearchConfig | None = None,
) -> Recommendation:
    """Recommend a CM for one area by multi-start projected gradient search + discrete refinement.

    Args:
        key: PRNG key (random starts).
        predictor: ``predict(cm) -> Prediction``, differentiable and vmappable in ``cm``
            (pure JAX: the safety check vmaps it over single-cell reversions).
        current_cm: the CM in force, ``{name: [cells]}``, inside the schema's bounds.
        objective: what to maximise (default `opt.objectives.mean_throughput`).
        schema: the CM schema (bounds, grid).
        safety: trust region, uncertainty, guardrails and no-change settings (default
            `SafetyConfig()`).
        config: search settings (default `SearchConfig()`).

    Returns:
        A `Recommendation` (jit-compiled; pure, so it can also be called inside `jax.jit`).

    Raises:
        ValueError: on an invalid CM (naming parameter and cell) or argument types.
    """
    objective = KPIObjective() if objective is None else objective
    safety = SafetyConfig() if safety is None else safety
    config = SearchConfig() if config is None else config
    _check_inputs(current_cm, schema, objective, safety, config, batch=False)
    cm = {k: jnp.asarray(current_cm[k], jnp.float32) for k in schema.names}
    return _search_jit(key, predictor, cm, objective, schema, safety, config)


def search_areas(
    key: PRNGKeyArray,
    predictor: Predictor,
    current_cm: Mapping[str, Float[Array, "areas cells"]],
    objective: AbstractObjective | None = None,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    safety: SafetyConfig | None = None,
    config: SearchConfig | None = None,
    objective_batched: bool = False,
) -> Recommendation:
    """`search` vmapped over independent areas (one jit-compiled call).

    Args:
        predictor: an `equinox.Module` whose array leaves have a leading ``areas`` axis (a plain
            function is shared by all areas).
        current_cm: ``{name: [areas, cells]}``.
        objective_batched: whether the objective's array leaves have a leading ``areas`` axis.

    Returns:
        A `Recommendation` with a leading ``areas`` axis on every array.
    """
    objective = KPIObjective() if objective is None else objective
    safety = SafetyConfig() if safety is None else safety
    config = SearchConfig() if config is None else config
    _check_inputs(current_cm, schema, objective, safety, config, batch=True)
    cm = {k: jnp.asarray(current_cm[k], jnp.float32) for k in schema.names}
    n_areas = cm[schema.names[0]].shape[0]
    return _search_areas_jit(
        jax.random.split(key, n_areas),
        predictor,
        cm,
        objective,
        schema,
        safety,
        config,
        objective_batched,
    )


@eqx.filter_jit
def _search_areas_jit(keys, predictor, cm, objective, schema, safety, config, objective_batched):
    obj_axis = eqx.if_array(0) if objective_batched else None
    fn = eqx.filter_vmap(
        lambda k, p, c, o: _search(k, p, c, o, schema, safety, config),
        in_axes=(0, eqx.if_array(0), 0, obj_axis),
    )
    return fn(keys, predictor, cm, objective)


# ---------------------------------------------------------------------------- export
def recommendation_to_rows(
    rec: Recommendation, cell_ids: Sequence[int] | np.ndarray, schema: CMSchema = DEFAULT_CM_SCHEMA
) -> dict[str, np.ndarray]:
    """Flatten a (possibly batched) `Recommendation` into columns for a CSV/Parquet writer.

    Columns: ``cell_id``; per CM parameter ``<name>_current`` and ``<name>_recommended``; per
    KPI ``<kpi>_before``, ``<kpi>_after``, ``<kpi>_std_before``, ``<kpi>_std_after``;
    ``changed`` (bool) and ``reason`` (lower-case `opt.safety.Reason` name).

    Args:
        rec: the recommendation; leading batch axes are flattened in C order.
        cell_ids: one id per flattened cell.
    """
    changed = np.asarray(rec.changed).reshape(-1)
    ids = np.asarray(cell_ids).reshape(-1)
    if ids.shape[0] != changed.shape[0]:
        raise ValueError(
            f"recommendation_to_rows: {ids.shape[0]} cell_ids for {changed.shape[0]} cells"
        )
    flat = lambda v: np.asarray(v).reshape(-1)  # noqa: E731
    cols: dict[str, np.ndarray] = {"cell_id": ids}
    for n in schema.names:
        cols[f"{n}_current"] = flat(rec.current_cm[n])
        cols[f"{n}_recommended"] = flat(rec.cm[n])
    for kpi in rec.mean_before:
        cols[f"{kpi}_before"] = flat(rec.mean_before[kpi])
        cols[f"{kpi}_after"] = flat(rec.mean_after[kpi])
        cols[f"{kpi}_std_before"] = flat(rec.std_before[kpi])
        cols[f"{kpi}_std_after"] = flat(rec.std_after[kpi])
    cols["changed"] = changed.astype(bool)
    cols["reason"] = np.asarray([REASON_NAMES[int(r)] for r in flat(rec.reason)], dtype=object)
    return cols


__all__ = [
    "Recommendation",
    "SearchConfig",
    "coordinate_refine",
    "prefer_current",
    "recommendation_to_rows",
    "search",
    "search_areas",
]
