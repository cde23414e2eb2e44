"""Day-ahead per-cell demand prediction from the cell's recent history and the context.

Task: given the last 24 hourly demands of a cell (a day), predict the next 24. Work in log space,
``y = log(demand)``, and normalise each window by the mean of its history,
``y~ = y - mean(y_hist)``, so one model serves cells whose volumes differ by orders of magnitude.
The model (`DemandPredictor`, an Equinox MLP) maps ``[y~_hist (24), weekday features of the
target day (2), area one-hot (4)]`` to ``y~_next (24)`` and is trained with Adam on the squared
error in log space.

Baseline: seasonal-naive, ``y_hat(t) = y(t - 24 h)`` (same hour the previous day; Hyndman &
Athanasopoulos, "Forecasting: Principles and Practice", sec. 5.2). Errors: MAE of
``log(demand)`` and sMAPE of the demand, ``mean(2 |y_hat - y| / (|y_hat| + |y|))``.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

HORIZON_H = 24
HISTORY_H = 24
N_EXTRA_FEATURES = 6  # sin/cos day of week of the target day + area one-hot (4)


@dataclasses.dataclass(frozen=True)
class DemandWindows:
    """Day-ahead windows: ``history [n, 24]``, ``target [n, 24]`` (demand > 0), ``extra [n, 6]``.

    ``cell [n]`` and ``start [n]`` (grid index of the first target hour) identify each window.
    """

    history: np.ndarray
    target: np.ndarray
    extra: np.ndarray
    cell: np.ndarray
    start: np.ndarray


def make_windows(
    demand: np.ndarray,
    day_of_week: np.ndarray,
    area_index: np.ndarray,
    target_mask: np.ndarray | None = None,
    stride_h: int = 24,
    floor: float | None = None,
) -> DemandWindows:
    """Cut ``[cells, hours]`` demand series into complete (gap-free) day-ahead windows.

    Args:
        demand: ``[cells, hours]`` hourly demand on a regular grid, NaN = missing.
        day_of_week: ``[hours]`` 0 = Monday.
        area_index: ``[cells]`` area-type index (`dtwin.ue.context.AREA_TYPES`).
        target_mask: ``[hours]`` bool; a window is kept only if all its target hours are True
            (use it for a train / held-out time split).
        stride_h: step between window starts, hours.
        floor: demands below it (e.g. zero) are raised to it before taking logs; default the
            1st percentile of the positive values.

    Raises:
        ValueError: naming the argument on a shape mismatch.
    """
    demand = np.asarray(demand, np.float64)
    cells, hours = demand.shape
    if day_of_week.shape != (hours,):
        raise ValueError(f"day_of_week must have shape [{hours}], got {day_of_week.shape}")
    if area_index.shape != (cells,):
        raise ValueError(f"area_index must have shape [{cells}], got {area_index.shape}")
    if target_mask is None:
        target_mask = np.ones(hours, bool)
    if floor is None:
        pos = demand[np.isfinite(demand) & (demand > 0)]
        floor = float(np.percentile(pos, 1)) if pos.size else 1e-6
    d = np.where(np.isfinite(demand), np.maximum(demand, floor), np.nan)
    hist, targ, extra, cell, start = [], [], [], [], []
    for s in range(HISTORY_H, hours - HORIZON_H + 1, stride_h):
        if not target_mask[s : s + HORIZON_H].all():
            continue
        block = d[:, s - HISTORY_H : s + HORIZON_H]
        ok = np.isfinite(block).all(axis=1)
        for k in np.nonzero(ok)[0]:
            hist.append(block[k, :HISTORY_H])
            targ.append(block[k, HISTORY_H:])
            w = 2 * np.pi * day_of_week[s] / 7.0
            extra.append(np.concatenate([[np.sin(w), np.cos(w)], np.eye(4)[area_index[k]]]))
            cell.append(k)
            start.append(s)
    if not hist:
        raise ValueError("make_windows: no complete day-ahead window (check gaps / target_mask)")
    return DemandWindows(
        np.array(hist, np.float32),
        np.array(targ, np.float32),
        np.array(extra, np.float32),
        np.array(cell),
        np.array(start),
    )


class DemandPredictor(eqx.Module):
    """MLP day-ahead predictor in normalised log space plus a learned mean diurnal profile.

    ``y~_next = profile + MLP([y~_hist, extra])``; ``profile [24]`` starts at zero.
    """

    mlp: eqx.nn.MLP
    profile: Float[Array, " 24"]

    def __init__(self, key: PRNGKeyArray, width: int = 64, depth: int = 2):
        self.mlp = eqx.nn.MLP(
            HISTORY_H + N_EXTRA_FEATURES, HORIZON_H, width, depth, jax.nn.gelu, key=key
        )
        self.profile = jnp.zeros(HORIZON_H, jnp.float32)

    def __call__(
        self, history: Float[Array, " 24"], extra: Float[Array, " 6"]
    ) -> Float[Array, " 24"]:
        """Predicted demand of the next 24 h (same unit as ``history``, > 0)."""
        log_h = jnp.log(history)
        level = jnp.mean(log_h)
        out = self.profile + self.mlp(jnp.concatenate([log_h - level, extra]))
        return jnp.exp(level + out)


def seasonal_naive(history: Float[Array, "... 24"]) -> Float[Array, "... 24"]:
    """Same hour of the previous day: the baseline forecast."""
    return history


def mae_log(pred: Float[Array, "..."], target: Float[Array, "..."]) -> Float[Array, ""]:
    """Mean absolute error of ``log(demand)`` (nats)."""
    return jnp.mean(jnp.abs(jnp.log(pred) - jnp.log(target)))


def smape(pred: Float[Array, "..."], target: Float[Array, "..."]) -> Float[Array, ""]:
    """Symmetric MAPE, ``mean(2 |p - y| / (|p| + |y|))``, in [0, 2]."""
    return jnp.mean(2.0 * jnp.abs(pred - target) / (jnp.abs(pred) + jnp.abs(target)))


def predict(model: DemandPredictor, windows: DemandWindows) -> Float[Array, "n 24"]:
    """Day-ahead predictions for every window."""
    return jax.vmap(model)(jnp.asarray(windows.history), jnp.asarray(windows.extra))


def fit_demand_predictor(
    key: PRNGKeyArray,
    model: DemandPredictor,
    windows: DemandWindows,
    *,
    steps: int = 1500,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
) -> tuple[DemandPredictor, Float[Array, " steps"]]:
    """Fit by AdamW on the squared log error (``lax.scan`` over minibatch steps)."""
    hist = jnp.asarray(windows.history)
    targ = jnp.log(jnp.asarray(windows.target))
    extra = jnp.asarray(windows.extra)
    n = hist.shape[0]
    optimizer = optax.adamw(
        optax.cosine_decay_schedule(learning_rate, steps, 0.05), weight_decay=weight_decay
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)

    def loss_fn(p, idx):
        m = eqx.combine(p, static)
        pred = jax.vmap(m)(hist[idx], extra[idx])
        return jnp.mean((jnp.log(pred) - targ[idx]) ** 2)

    def step(carry, k):
        p, s = carry
        idx = jr.randint(k, (min(batch_size, n),), 0, n)
        loss, g = jax.value_and_grad(loss_fn)(p, idx)
        u, s = optimizer.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    (params, _), losses = jax.lax.scan(step, (params, opt_state), jr.split(key, steps))
    return eqx.combine(params, static), losses
