"""Safety of CM recommendations: trust region, uncertainty, guardrail KPIs, and the no-change rule.

A recommendation is only as good as the predictor it comes from; far from the data (or where
the ensemble disagrees) it is not to be trusted. The safeguards, all relative to the **current**
CM and its prediction (the reference):

* **Trust region** (`GridBox`): each parameter of each cell moves at most ``trust_steps`` of the
  operator's grid steps from its current value, and never leaves ``[low, high]``.
* **Uncertainty penalty**: the search maximises ``V_κ = mean_c w_c (u_c − κ s_c)`` (see
  :mod:`opt.objectives`), and optionally bounds the per-cell std: ``s_c ≤ max(max_std, s_c^ref)``.
* **Guardrail KPIs** (`Guardrail`): e.g. coverage and cell-edge throughput must not fall below the
  reference prediction by more than a margin. Penalties during the search; a hard check at the
  end (`enforce_safety`) reverts the offending cells' changes.
* **No change** when a cell's predicted gain is within its uncertainty: the leave-one-out gain
  ``Δ_c = V_0(x) − V_0(x with cell c reverted)`` must exceed ``z σ_c + min_gain``, with ``σ_c``
  the std of the utility summed over the cells that reverting c affects.

The current CM is always a feasible fall-back (zero violation, zero excess std), so the final
check can always restore safety by reverting.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from dtwin.cm import CMSchema

from .objectives import AbstractObjective, Prediction

_TOL = 1e-5


class Reason(enum.IntEnum):
    """Why a cell's CM is (un)changed; stored as int32 per cell in a `Recommendation`."""

    CHANGED = 0
    """Changed: predicted gain beyond its uncertainty, guardrails hold."""
    OPTIMAL_AS_IS = 1
    """The search found nothing better than the current value (within the trust region)."""
    WITHIN_UNCERTAINTY = 2
    """Reverted: predicted gain below ``z σ + min_gain``."""
    GUARDRAIL = 3
    """Reverted: a guardrail KPI (or an objective constraint) would degrade beyond its margin."""
    UNCERTAINTY_TOO_HIGH = 4
    """Reverted: predicted std above ``max_std``."""
    NON_FINITE = 5
    """Reverted: the predictor returned NaN/inf."""


REASON_NAMES: tuple[str, ...] = tuple(r.name.lower() for r in Reason)


@dataclass(frozen=True)
class Guardrail:
    """A KPI that must not degrade beyond a margin relative to the current CM's prediction.

    Feasible iff ``new_c ≥ ref_c − margin`` (absolute, KPI unit) or ``new_c ≥ ref_c (1 − margin)``
    (``relative=True``), for every cell c; with ``area=True`` the same test is applied once to
    the mean over the area's cells (an operator's area-level KPI), and its violation is spread
    evenly over the cells (so sums over cells give the area's violation).
    """

    kpi: str
    margin: float
    relative: bool = False
    area: bool = False

    def __post_init__(self) -> None:
        if not np.isfinite(self.margin) or self.margin < 0:
            raise ValueError(f"Guardrail {self.kpi!r}: margin must be finite and >= 0")

    def violation(
        self, new: Float[Array, " cells"], ref: Float[Array, " cells"]
    ) -> Float[Array, " cells"]:
        """Normalised violation ``max(0, ref − margin − new) / (|ref| + 1e-3)``; 0 if feasible."""
        if self.area:
            n = new.shape[-1]
            new = jnp.broadcast_to(jnp.nanmean(new, axis=-1, keepdims=True), new.shape)
            ref = jnp.broadcast_to(jnp.nanmean(ref, axis=-1, keepdims=True), ref.shape)
        margin = self.margin * jnp.abs(ref) if self.relative else self.margin
        v = jnp.maximum(0.0, ref - margin - new) / (jnp.abs(ref) + 1e-3)
        return v / n if self.area else v


DEFAULT_GUARDRAILS = (
    Guardrail("coverage", 0.01),
    Guardrail("cell_edge_throughput_mbps", 0.05, relative=True),
)

AREA_GUARDRAILS = (
    Guardrail("coverage", 0.01, area=True),
    Guardrail("cell_edge_throughput_mbps", 0.05, relative=True, area=True),
)
"""The default guardrails on area means (how a field trial judges an area) instead of per cell."""


def _f32(v) -> Array:
    return jnp.asarray(v, jnp.float32)


class SafetyConfig(eqx.Module):
    """Safety settings. Numbers are array leaves (changing them does not recompile).

    Attributes:
        trust_steps: largest move per parameter per cell, in grid steps (default 2).
        kappa: uncertainty penalty ``κ`` in ``V_κ`` (std units).
        max_std: bound on the objective utility's per-cell std (inf: none); cells may keep
            their current std if it is already above.
        guardrails: guardrail KPIs (need to be keys of the prediction); static.
        penalty_weight: weight of the normalised guardrail/std penalties, relative to the
            reference objective's magnitude, in the search.
        z: no-change rule, number of std a cell's gain must exceed.
        min_gain: no-change rule, absolute gain a cell must exceed (objective units).
        change_cost: price of moving the network, as a fraction of the current objective
            ``|V_0^ref|`` per grid step of mean ``|ΔCM|`` (over cells and parameters): the search
            maximises ``score − change_cost |V_0^ref| mean|Δk|``, so a change must buy at least
            that much predicted gain (e.g. 0.01: 1 % of throughput per mean step). 0 = free.
    """

    trust_steps: Float[Array, ""] = eqx.field(converter=_f32, default=2)
    kappa: Float[Array, ""] = eqx.field(converter=_f32, default=1.0)
    max_std: Float[Array, ""] = eqx.field(converter=_f32, default=float("inf"))
    guardrails: tuple[Guardrail, ...] = eqx.field(static=True, default=DEFAULT_GUARDRAILS)
    penalty_weight: Float[Array, ""] = eqx.field(converter=_f32, default=10.0)
    z: Float[Array, ""] = eqx.field(converter=_f32, default=1.0)
    min_gain: Float[Array, ""] = eqx.field(converter=_f32, default=0.0)
    change_cost: Float[Array, ""] = eqx.field(converter=_f32, default=0.0)

    def __check_init__(self):
        if isinstance(self.kappa, jax.core.Tracer):
            return
        ts = float(self.trust_steps)
        if not (ts >= 0 and ts == round(ts)):
            raise ValueError(f"SafetyConfig: trust_steps must be an integer >= 0, got {ts}")
        for name in ("kappa", "z", "min_gain", "penalty_weight", "change_cost"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"SafetyConfig: {name} must be finite and >= 0, got {v}")
        if not float(self.max_std) > 0:
            raise ValueError(f"SafetyConfig: max_std must be > 0, got {float(self.max_std)}")
        for g in self.guardrails:
            if not isinstance(g, Guardrail):
                raise ValueError(f"SafetyConfig: guardrails must be Guardrail, got {g!r}")


# ---------------------------------------------------------------------------- trust region
class GridBox(eqx.Module):
    """The trust region on the operator's grid, as grid indices ``k`` (``x = low + k step``).

    Arrays are ``[cells, params]`` in schema order (`CMSchema.to_vector`); ``k_lo``/``k_hi`` are
    integer-valued floats with ``0 ≤ k_lo ≤ k_hi ≤ n_steps``.
    """

    low: Float[Array, " params"]
    high: Float[Array, " params"]
    step: Float[Array, " params"]
    x_cur: Float[Array, "cells params"]
    k_lo: Float[Array, "cells params"]
    k_hi: Float[Array, "cells params"]

    def x_of(self, k: Float[Array, "... cells params"]) -> Float[Array, "... cells params"]:
        """Grid indices -> values, clipped into the trust region (NaN -> nearest to current)."""
        k_cur = jnp.clip(jnp.round((self.x_cur - self.low) / self.step), self.k_lo, self.k_hi)
        k = jnp.where(jnp.isfinite(k), k, k_cur)
        k = jnp.clip(jnp.round(k), self.k_lo, self.k_hi)
        return jnp.clip(self.low + k * self.step, self.low, self.high)

    def k_of(self, x: Float[Array, "... cells params"]) -> Float[Array, "... cells params"]:
        """Values -> nearest grid index inside the trust region."""
        k_cur = jnp.round((self.x_cur - self.low) / self.step)
        k = jnp.where(jnp.isfinite(x), (x - self.low) / self.step, k_cur)
        return jnp.clip(jnp.round(k), self.k_lo, self.k_hi)

    def unit(self, x):
        """Values -> [0, 1] (schema `to_unit` on the vector form)."""
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u):
        """[0, 1] -> values."""
        return self.low + u * (self.high - self.low)

    @property
    def u_lo(self) -> Float[Array, "cells params"]:
        """Lower corner of the trust region in the unit box."""
        return self.unit(self.low + self.k_lo * self.step)

    @property
    def u_hi(self) -> Float[Array, "cells params"]:
        """Upper corner of the trust region in the unit box."""
        return self.unit(jnp.minimum(self.low + self.k_hi * self.step, self.high))

    def project_unit(self, u):
        """Clip to the trust region in the unit box (NaN -> current)."""
        u_cur = jnp.clip(self.unit(self.x_cur), self.u_lo, self.u_hi)
        return jnp.clip(jnp.where(jnp.isfinite(u), u, u_cur), self.u_lo, self.u_hi)


def grid_box(schema: CMSchema, current_cm: Mapping[str, Array], trust_steps=2) -> GridBox:
    """Build the trust region around ``current_cm`` (pure JAX; works under jit/vmap).

    Per parameter with grid ``low + k step``: ``k ∈ [ceil(k_cur − T), floor(k_cur + T)] ∩
    [0, n_steps]`` with ``k_cur = (x_cur − low)/step`` and ``T = trust_steps``.
    """
    f32 = jnp.float32
    low = jnp.asarray([p.low for p in schema.params], f32)
    high = jnp.asarray([p.high for p in schema.params], f32)
    step = jnp.asarray([p.step for p in schema.params], f32)
    n = jnp.asarray([p.n_steps for p in schema.params], f32)
    x_cur = jnp.clip(
        schema.to_vector({k: jnp.asarray(current_cm[k], f32) for k in schema.names}), low, high
    )
    k_cur = (x_cur - low) / step
    k_lo = jnp.clip(jnp.ceil(k_cur - trust_steps - 1e-4), 0.0, n)
    k_hi = jnp.clip(jnp.floor(k_cur + trust_steps + 1e-4), 0.0, n)
    k_hi = jnp.maximum(k_hi, k_lo)
    return GridBox(low, high, step, x_cur, k_lo, k_hi)


def trust_region(
    schema: CMSchema, current_cm: Mapping[str, Array], trust_steps=2
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Lowest and highest allowed grid values per cell and parameter, as two CMs."""
    box = grid_box(schema, current_cm, trust_steps)
    return (
        schema.from_vector(box.low + box.k_lo * box.step),
        schema.from_vector(jnp.minimum(box.low + box.k_hi * box.step, box.high)),
    )


# ---------------------------------------------------------------------------- penalties
def guardrail_violation(
    pred: Prediction, ref: Prediction, guardrails: tuple[Guardrail, ...]
) -> Float[Array, " cells"]:
    """Sum over guardrails of the normalised per-cell violation (0 when all hold)."""
    out = 0.0
    for g in guardrails:
        if g.kpi not in pred.mean:
            raise ValueError(
                f"guardrail KPI {g.kpi!r} not in the prediction (has {sorted(pred.mean)}); "
                "predict it or pass SafetyConfig(guardrails=...) without it"
            )
        out = out + g.violation(pred.mean[g.kpi], ref.mean[g.kpi])
    return jnp.asarray(out, jnp.float32) * jnp.ones_like(next(iter(pred.mean.values())))


def std_excess(
    std: Float[Array, " cells"], ref_std: Float[Array, " cells"], max_std: float
) -> Float[Array, " cells"]:
    """``max(0, s_c − max(max_std, s_c^ref)) / max_std`` (0 when ``max_std`` is inf)."""
    max_std = jnp.asarray(max_std, jnp.float32)
    ex = jnp.maximum(0.0, std - jnp.maximum(max_std, ref_std)) / max_std
    return jnp.where(jnp.isfinite(max_std), ex, 0.0)


def no_change_mask(
    gain: Float[Array, " cells"], std: Float[Array, " cells"], z: float = 1.0, min_gain: float = 0.0
) -> Bool[Array, " cells"]:
    """True where a change should not be made: ``gain < z std + min_gain`` (or NaN)."""
    return ~(gain >= z * std + min_gain)


class Reference(eqx.Module):
    """The current CM's prediction and objective, against which safety is judged."""

    pred: Prediction
    cm: dict[str, Float[Array, " cells"]]
    value0: Float[Array, ""]
    scale: Float[Array, ""]
    u_std: Float[Array, " cells"]


def reference(objective: AbstractObjective, pred: Prediction, cm) -> Reference:
    """Build the `Reference` from the current CM and its prediction."""
    v0 = objective.value(pred, cm, 0.0)
    _, s = objective.utility(pred, cm)
    scale = jnp.where(jnp.isfinite(v0), jnp.abs(v0), 0.0) + 1e-3
    return Reference(pred, dict(cm), v0, scale, s)


def safe_score(
    objective: AbstractObjective,
    safety: SafetyConfig,
    pred: Prediction,
    cm,
    ref: Reference,
    *,
    constraints: bool = True,
) -> Float[Array, ""]:
    """Score to maximise: ``V_κ − ρ |V_0^ref| (Σ guardrail + Σ std excess [+ Σ max(0, g)])``.

    ``ρ`` is ``safety.penalty_weight``; with ``constraints`` the objective's constraints enter
    as an exact (L1) penalty (used in the discrete phase; the gradient phase uses the augmented
    Lagrangian instead). NaN predictions give NaN (rejected by the callers).
    """
    v = objective.value(pred, cm, safety.kappa)
    _, s = objective.utility(pred, cm)
    pen = jnp.sum(guardrail_violation(pred, ref.pred, safety.guardrails))
    pen = pen + jnp.sum(std_excess(s, ref.u_std, safety.max_std))
    if constraints:
        pen = pen + jnp.sum(jnp.maximum(objective.constraints(pred, cm), 0.0))
    return v - safety.penalty_weight * ref.scale * pen


def hard_violation(
    objective: AbstractObjective, safety: SafetyConfig, pred: Prediction, cm, ref: Reference
) -> Float[Array, ""]:
    """Total guardrail violation plus constraint violation in excess of the current CM's."""
    viol = jnp.sum(guardrail_violation(pred, ref.pred, safety.guardrails))
    g = objective.constraints(pred, cm)
    g_ref = objective.constraints(ref.pred, ref.cm)
    return viol + jnp.sum(jnp.maximum(0.0, g - jnp.maximum(g_ref, 0.0)))


def _finite(pred: Prediction) -> Bool[Array, ""]:
    leaves = jax.tree.leaves((pred.mean, pred.std))
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(v)) for v in leaves]))


# ---------------------------------------------------------------------------- final check
def enforce_safety(
    predict_x: Callable[[Float[Array, "cells params"]], Prediction],
    objective: AbstractObjective,
    safety: SafetyConfig,
    schema: CMSchema,
    x_cur: Float[Array, "cells params"],
    x_cand: Float[Array, "cells params"],
    ref: Reference,
) -> tuple[Float[Array, "cells params"], Bool[Array, " cells"], Int[Array, " cells"]]:
    """Hard safety check: revert cells of ``x_cand`` to ``x_cur`` until the result is safe.

    Greedy backward elimination, one cell per round (at most ``cells`` rounds), in priority:
    non-finite prediction of the current CM -> no change at all (reason ``NON_FINITE``);
    non-finite prediction -> revert the first changed cell whose reversion makes it finite (all
    if none does); guardrail/constraint violation -> revert the changed
    cell whose reversion reduces it most (all if none does); std above ``max_std`` -> likewise;
    leave-one-out gain within uncertainty (`no_change_mask`) -> revert the cell with the
    smallest margin, if reverting it does not create a violation. A last check reverts every
    cell if anything is still unsafe, so the output is never worse than the current CM on the
    safety criteria.

    Args:
        predict_x: prediction of a CM in vector form ``[cells, params]`` (schema order).
        x_cur, x_cand: current and candidate CM, vector form.

    Returns:
        ``(x, changed, reason)``: the safe CM, the per-cell changed mask and `Reason` codes.
    """
    n = x_cur.shape[0]
    eye = jnp.eye(n, dtype=bool)
    step = jnp.asarray([p.step for p in schema.params], jnp.float32)
    # Moves below 1e-4 of a step (float rounding of an on-grid current CM) are no change.
    x_cand = jnp.where(jnp.abs(x_cand - x_cur) <= 1e-4 * step, x_cur, x_cand)

    def stats(x):
        pred = predict_x(x)
        cm = schema.from_vector(x)
        u, s = objective.utility(pred, cm)
        v0 = objective.value(pred, cm, 0.0)
        viol = hard_violation(objective, safety, pred, cm, ref)
        sx = jnp.sum(std_excess(s, ref.u_std, safety.max_std))
        ok = _finite(pred) & jnp.isfinite(v0) & jnp.isfinite(viol)
        return v0, u, s, viol, sx, ok

    changed0 = jnp.any(x_cand != x_cur, axis=-1)
    reason0 = jnp.where(changed0, Reason.CHANGED, Reason.OPTIMAL_AS_IS).astype(jnp.int32)
    w = objective.cell_weights(n)

    def cond(c):
        _, changed, _, done, it = c
        return (~done) & (it <= n) & jnp.any(changed)

    def body(c):
        x, changed, reason, _, it = c
        xr = jnp.where(eye[:, :, None], x_cur[None], x[None])
        # x and its n single-cell reversions in one batch (one copy of the predictor compiled)
        both = jax.vmap(stats)(jnp.concatenate([x[None], xr]))
        (v0, u, s, viol, sx, ok) = (a[0] for a in both)
        v0r, ur, _, violr, sxr, okr = (a[1:] for a in both)
        affected = (jnp.abs(ur - u[None]) > 1e-6 * (1.0 + jnp.abs(u[None]))) | eye
        sigma = jnp.sqrt(jnp.sum(jnp.where(affected, (w * s)[None] ** 2, 0.0), -1)) / jnp.sum(w)
        gain = v0 - v0r
        cand = changed & okr
        red_g = jnp.where(cand, viol - violr, -jnp.inf)
        red_s = jnp.where(cand, sx - sxr, -jnp.inf)
        can_revert = cand & (violr <= viol + _TOL) & (sxr <= sx + _TOL)
        lack = jnp.where(
            can_revert & no_change_mask(gain, sigma, safety.z, safety.min_gain),
            gain - safety.z * sigma - safety.min_gain,
            jnp.inf,
        )
        lack = jnp.where(jnp.isnan(lack), -jnp.inf, lack)
        one = lambda i: jax.nn.one_hot(i, n, dtype=bool)  # noqa: E731
        fix_nan = changed & okr
        nan_mask = jnp.where(jnp.any(fix_nan), one(jnp.argmax(fix_nan)), changed)
        guard_mask = jnp.where(jnp.max(red_g) > _TOL, one(jnp.argmax(red_g)), changed)
        std_mask = jnp.where(jnp.max(red_s) > _TOL, one(jnp.argmax(red_s)), changed)
        need_g, need_s = viol > _TOL, sx > _TOL
        need_lack = jnp.min(lack) < jnp.inf
        code = jnp.select(
            [~ok, need_g, need_s, need_lack],
            [
                Reason.NON_FINITE,
                Reason.GUARDRAIL,
                Reason.UNCERTAINTY_TOO_HIGH,
                Reason.WITHIN_UNCERTAINTY,
            ],
            -1,
        )
        mask = (
            jnp.select(
                [~ok, need_g, need_s, need_lack],
                [nan_mask, guard_mask, std_mask, one(jnp.argmin(lack))],
                jnp.zeros_like(changed),
            )
            & changed
        )
        x = jnp.where(mask[:, None], x_cur, x)
        reason = jnp.where(mask, code, reason).astype(jnp.int32)
        return x, changed & ~mask, reason, code == -1, it + 1

    init = (x_cand, changed0, reason0, jnp.asarray(False), jnp.asarray(0))
    x, changed, reason, _, _ = jax.lax.while_loop(cond, body, init)
    _, _, _, viol, sx, ok = stats(x)
    final = jnp.select(
        [~ok, viol > _TOL, sx > _TOL],
        [Reason.NON_FINITE, Reason.GUARDRAIL, Reason.UNCERTAINTY_TOO_HIGH],
        -1,
    )
    revert_all = (final >= 0) & changed
    x = jnp.where(revert_all[:, None], x_cur, x)
    reason = jnp.where(revert_all, final, reason).astype(jnp.int32)
    changed = changed & ~revert_all
    # a non-finite prediction of the current CM: nothing can be judged, nothing changes
    ref_bad = ~(_finite(ref.pred) & jnp.isfinite(ref.value0))
    x = jnp.where(ref_bad, x_cur, x)
    reason = jnp.where(ref_bad, jnp.int32(Reason.NON_FINITE), reason)
    return x, changed & ~ref_bad, reason


__all__ = [
    "DEFAULT_GUARDRAILS",
    "REASON_NAMES",
    "GridBox",
    "Guardrail",
    "Reason",
    "Reference",
    "SafetyConfig",
    "enforce_safety",
    "grid_box",
    "guardrail_violation",
    "hard_violation",
    "no_change_mask",
    "reference",
    "safe_score",
    "std_excess",
    "trust_region",
]
