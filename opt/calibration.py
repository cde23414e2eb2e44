"""Calibrate the twin simulation's per-cell strength to commercial counters.

The twin knows each cell's nominal transmit power, antenna and the scenario's pathloss; the real
network's cells differ by per-cell antenna-gain errors, pathloss offsets (clutter) and a
site-specific shadowing the scenario does not know. Those decide which cells a CM search should
strengthen and which it should weaken, and a twin that gets them wrong points the search into
another basin. The commercial counters carry them: a cell that is stronger than nominal serves a
larger share of the area's UEs (``active_ues``), whatever the traffic each UE offers.

`cell_ue_share` reads the observed share from a commercial table (rows at the CM in force);
`calibrate_power_offsets` fits a per-cell power offset (dB) of an `opt.SimulatorPredictor` so
that the UE share its simulation serves matches it, by gradient descent through the simulation
(the served mass's gradient is the soft simulation's, `opt.SimulatorPredictor`). The share is
invariant to a common offset of every cell, so the fitted offsets have zero mean (the
predictor's own level is kept). What the fit absorbs is every per-cell deviation that moves UEs
between cells (gain errors, pathloss offsets, the shadowing map's mean over the cell, even UE
hotspots), expressed as power: the "effective strength" the search needs, not a physical
antenna-gain estimate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema

from .simulator import SimulatorPredictor

_SHARE_COLUMNS = ("snapshot_id", "cell_id", "active_ues")


def cell_ue_share(
    table: Mapping[str, Any],
    current_cm: Mapping[str, Any],
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    labels: Any | None = None,
) -> Float[np.ndarray, " cells"]:
    """Log of each cell's share of the area's served UEs, at the CM in force, from counters.

    Per reporting period (``snapshot_id``) the share of cell ``c`` is ``active_ues_c /
    Σ_c' active_ues_c'``; its mean over the periods in which cell ``c`` ran the CM in force
    (commercial data hold a few ±1-step trials), then the natural log.

    Args:
        table: commercial rows (columnar), with ``snapshot_id``, ``cell_id``, ``active_ues``
            and the schema's CM columns; every period must report every cell ``0..n-1``.
        current_cm: the CM in force per cell (schema units), ``[cells]`` each.
        labels: optional ``[cells]`` names of the cells (e.g. the operator's cell ids) that
            error messages use instead of the positions ``0..n-1``.

    Raises:
        ValueError: on a missing column or CM parameter, a non-finite or negative
            ``active_ues``, a period that lacks a cell, or a cell that never ran the CM in force.
    """
    missing = [c for c in (*_SHARE_COLUMNS, *schema.names) if c not in table]
    if missing:
        raise ValueError(f"cell_ue_share: the table lacks column(s) {missing}")
    absent = [c for c in schema.names if c not in current_cm]
    if absent:
        raise ValueError(f"cell_ue_share: current_cm lacks {absent}; it has {sorted(current_cm)}")
    n = int(np.asarray(current_cm[schema.names[0]]).shape[0])
    period = np.asarray(table["snapshot_id"])
    cell = np.asarray(table["cell_id"]).astype(np.int64)
    ues = np.asarray(table["active_ues"], np.float64)
    if not np.all(np.isfinite(ues)) or np.any(ues < 0):
        bad = int(np.sum(~np.isfinite(ues) | (ues < 0)))
        raise ValueError(f"cell_ue_share: {bad} row(s) with non-finite or negative active_ues")
    if np.any((cell < 0) | (cell >= n)):
        raise ValueError(f"cell_ue_share: cell_id outside 0..{n - 1} (the CM has {n} cells)")
    periods, p_idx = np.unique(period, return_inverse=True)
    counts = np.zeros((len(periods), n))
    np.add.at(counts, (p_idx, cell), 1.0)
    if np.any(counts != 1.0):
        raise ValueError(
            "cell_ue_share: every period must report every cell exactly once "
            f"({int(np.sum(counts != 1.0))} (period, cell) pairs do not)"
        )
    active = np.zeros((len(periods), n))
    active[p_idx, cell] = ues
    total = active.sum(axis=1, keepdims=True)
    share = np.divide(active, total, out=np.zeros_like(active), where=total > 0)
    at_cm = np.ones((len(periods), n), bool)
    for name in schema.names:
        v = np.zeros((len(periods), n))
        v[p_idx, cell] = np.asarray(table[name], np.float64)
        at_cm &= np.isclose(v, np.asarray(current_cm[name], np.float64)[None, :])
    at_cm &= total > 0
    never = np.flatnonzero(~at_cm.any(axis=0))
    if never.size:
        raise ValueError(
            f"cell_ue_share: cell(s) {_named(never, labels)} never ran the CM in force in a period "
            "with served UEs"
        )
    mean = np.sum(share * at_cm, axis=0) / np.sum(at_cm, axis=0)
    if np.any(mean <= 0):
        zero = _named(np.flatnonzero(mean <= 0), labels)
        raise ValueError(f"cell_ue_share: cell(s) {zero} served no UE at the CM in force")
    return np.log(mean).astype(np.float32)


def _named(positions: np.ndarray, labels: Any | None) -> list:
    """Cell positions as the caller's labels (``cell_id``) where given."""
    if labels is None:
        return positions.tolist()
    return np.asarray(labels)[positions].tolist()


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """What `calibrate_power_offsets` fitted.

    Attributes:
        predictor: the input predictor with ``power_offset_db`` = its own + ``offset_db``.
        offset_db: the fitted per-cell power offset (dB), added to the predictor's.
        loss: the mean squared error of the log share before each step and after the last.
        rmse_before / rmse_after: RMS error of the log UE share at zero offsets and at the
            returned ones.
    """

    predictor: SimulatorPredictor
    offset_db: np.ndarray
    loss: np.ndarray
    rmse_before: float
    rmse_after: float


def _log_share(pred: SimulatorPredictor, cm) -> Float[Array, " cells"]:
    _, _, mass = pred._outputs(cm)  # [snapshots, cells] served UE mass (hard; soft gradient)
    sw = pred.snapshot_weight
    m = jnp.sum(sw[:, None] * mass, axis=0) / jnp.sum(sw)  # hours weighted as the KPIs
    return jnp.log(jnp.maximum(m, 1e-6) / jnp.sum(m))


def calibrate_power_offsets(
    twin: SimulatorPredictor,
    log_share: Float[Array, " cells"],
    current_cm: Mapping[str, Any],
    *,
    steps: int = 80,
    learning_rate: float = 0.25,
    max_offset_db: float = 10.0,
) -> CalibrationResult:
    """Fit per-cell power offsets (dB) so the twin serves the observed UE share per cell.

    Minimises ``mean_c (s_c(δ) − ŝ_c)²`` over offsets ``δ`` with zero mean (the share does not
    depend on a common offset of every cell, so the predictor's own level is kept), with Adam,
    where ``s_c(δ)`` is the log share of the UEs the twin's simulation serves in cell ``c`` at
    ``current_cm`` with ``δ`` added to every cell's transmit power (mass over the predictor's
    snapshots; values of the hard simulation, gradients of the soft one) and ``ŝ`` the observed
    log share (`cell_ue_share`). Offsets are clipped to ``±max_offset_db``. The result is the
    iterate with the smallest error (the hard share is piecewise constant in ``δ``).

    Args:
        twin: the twin simulation (`opt.twin_predictor`), its snapshots fixed.
        log_share: observed log UE share per cell, ``[cells]``.
        current_cm: the CM the observations were made under (schema units).
        steps, learning_rate: Adam steps and step size (dB).
        max_offset_db: bound on |offset| (dB).

    Raises:
        ValueError: if ``log_share`` has the wrong shape or a non-finite value, or a setting is
            out of range.
    """
    if not isinstance(twin, SimulatorPredictor):
        raise TypeError(
            f"calibrate_power_offsets: twin must be a SimulatorPredictor, got {type(twin)}"
        )
    n = twin.network.n_cells
    obs = np.asarray(log_share, np.float32)
    if obs.shape != (n,):
        raise ValueError(f"calibrate_power_offsets: log_share must be [cells]={n}, got {obs.shape}")
    if not np.all(np.isfinite(obs)):
        raise ValueError("calibrate_power_offsets: log_share has non-finite values")
    if int(steps) < 1 or not learning_rate > 0 or not max_offset_db > 0:
        raise ValueError(
            "calibrate_power_offsets: steps >= 1 and positive learning_rate, max_offset_db "
            f"required, got {steps}, {learning_rate}, {max_offset_db}"
        )
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in current_cm.items()}
    base = twin.power_offset_db
    target = jnp.asarray(obs)

    def offsets(raw):
        return jnp.clip(raw - jnp.mean(raw), -max_offset_db, max_offset_db)

    def loss_fn(raw, dyn):
        pred = eqx.combine(dyn, static)
        pred = eqx.tree_at(lambda p: p.power_offset_db, pred, base + offsets(raw))
        err = _log_share(pred, cm) - target
        return jnp.mean(err**2)

    dyn, static = eqx.partition(twin, eqx.is_array)
    optim = optax.adam(learning_rate)

    @jax.jit
    def step(raw, state, dyn):
        loss, g = jax.value_and_grad(loss_fn)(raw, dyn)
        upd, state = optim.update(g, state)
        return raw + upd, state, loss

    raw = jnp.zeros((n,), jnp.float32)
    state = optim.init(raw)
    losses, best = [], (np.inf, raw)
    for _ in range(int(steps) + 1):  # the last call only scores the last iterate
        new, state, loss = step(raw, state, dyn)
        losses.append(float(loss))  # the loss at ``raw``, before this step
        if losses[-1] < best[0]:
            best = (losses[-1], raw)
        raw = new
    delta = offsets(best[1])
    final = eqx.tree_at(lambda p: p.power_offset_db, twin, base + delta)
    return CalibrationResult(
        predictor=final,
        offset_db=np.asarray(delta),
        loss=np.asarray(losses),
        rmse_before=float(np.sqrt(losses[0])),
        rmse_after=float(np.sqrt(best[0])),
    )
