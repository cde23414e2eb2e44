"""Radio-material calibration: recover material properties from measurements through the RT bridge.

Measurements are either per-position path gains / RSRP (drive tests, MDT logs) or operational
per-cell aggregates (mean RSRP of the positions each cell serves). Material properties are kept
physical by optimising unconstrained variables (`to_unconstrained` / `to_physical`):

* relative permittivity  eps_r = 1 + softplus(u)   (eps_r >= 1)
* conductivity           sigma = exp(u)  [S/m]      (sigma > 0, scale-free steps)
* scattering coefficient S = sigmoid(u)             (0 < S < 1)
* thickness              d = exp(u)  [m]

Compose the pieces: build a loss of the *physical* parameters (`measurement_loss`,
`cell_mean_loss`, or your own), then run `calibrate(loss_fn, init_params, optimizer, num_steps)`.
The parameters present in ``init_params`` are the ones calibrated; the others keep the scene's
defaults.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from dtwin.rt._bridge import rt_path_gains
from dtwin.rt._scene import MATERIAL_FIELDS, RTScene

MaterialParams = dict[str, dict[str, Float[Array, ""]]]


def _inv_softplus(y):
    return y + jnp.log(-jnp.expm1(-y))


_TO_U = {
    "relative_permittivity": lambda x: _inv_softplus(jnp.maximum(x - 1.0, 1e-6)),
    "conductivity": lambda x: jnp.log(jnp.maximum(x, 1e-12)),
    "scattering_coefficient": lambda x: jax.scipy.special.logit(jnp.clip(x, 1e-6, 1 - 1e-6)),
    "thickness": lambda x: jnp.log(jnp.maximum(x, 1e-9)),
}
_TO_X = {
    "relative_permittivity": lambda u: 1.0 + jax.nn.softplus(u),
    "conductivity": jnp.exp,
    "scattering_coefficient": jax.nn.sigmoid,
    "thickness": jnp.exp,
}


def _map(fns: dict, params: MaterialParams) -> MaterialParams:
    out = {}
    for m, d in params.items():
        out[m] = {}
        for f, v in d.items():
            if f not in MATERIAL_FIELDS:
                raise ValueError(
                    f"params[{m!r}]: unknown field {f!r}; expected one of {MATERIAL_FIELDS}"
                )
            out[m][f] = fns[f](jnp.asarray(v, jnp.float32))
    return out


def to_unconstrained(params: MaterialParams) -> MaterialParams:
    """Map physical material properties to unconstrained optimisation variables."""
    return _map(_TO_U, params)


def to_physical(u: MaterialParams) -> MaterialParams:
    """Inverse of `to_unconstrained`: unconstrained variables -> physical properties."""
    return _map(_TO_X, u)


def measurement_loss(
    scene: RTScene,
    tx_positions_m: Float[Array, "tx 3"],
    rx_positions_m: Float[Array, "rx 3"],
    measured_db: Float[Array, "rx tx"],
    *,
    offset_db: float | Float[Array, " tx"] = 0.0,
) -> Callable[[MaterialParams], Float[Array, ""]]:
    """Mean squared error in dB between measured and ray-traced per-link values.

    ``measured_db`` is RSRP (dBm) or path gain (dB); the prediction is
    ``offset_db + 10 log10(path gain)`` with ``offset_db`` the transmit power per resource element
    (dBm) for RSRP, 0 for path gain. Links whose measurement is NaN, or for which the tracer finds
    no path at all, are left out of the mean.

    Returns:
        ``loss(params) -> scalar`` (dB^2), differentiable in the material parameters.
    """
    measured = np.asarray(measured_db, np.float32)
    n_rx, n_tx = np.asarray(rx_positions_m).shape[0], np.asarray(tx_positions_m).shape[0]
    if measured.shape != (n_rx, n_tx):
        raise ValueError(
            f"measured_db must have shape [rx={n_rx}, tx={n_tx}], got {measured.shape}"
        )
    observed = jnp.asarray(np.isfinite(measured))
    measured = jnp.asarray(np.nan_to_num(measured))

    def loss(params: MaterialParams) -> Float[Array, ""]:
        g, g_db = rt_path_gains(params, tx_positions_m, rx_positions_m, scene=scene)
        mask = observed & (g > 0)
        err = jnp.where(mask, g_db + offset_db - measured, 0.0)
        return jnp.sum(jnp.square(err)) / jnp.maximum(jnp.sum(mask), 1)

    return loss


def cell_mean_rsrp_dbm(
    rsrp_dbm: Float[Array, "rx tx"], serving_cell: Int[Array, " rx"]
) -> Float[Array, " tx"]:
    """Operational per-cell aggregate: mean RSRP (in dBm) over the positions each cell serves.

    Args:
        rsrp_dbm: RSRP of every position from every cell (or path gain in dB).
        serving_cell: index of the serving cell of every position.

    Returns:
        Mean of ``rsrp_dbm[i, serving_cell[i]]`` over the positions ``i`` a cell serves; NaN for a
        cell that serves none.
    """
    n_tx = rsrp_dbm.shape[1]
    own = jnp.take_along_axis(rsrp_dbm, serving_cell[:, None], axis=1)[:, 0]
    onehot = jax.nn.one_hot(serving_cell, n_tx, dtype=rsrp_dbm.dtype)
    count = jnp.sum(onehot, axis=0)
    return jnp.where(count > 0, (own @ onehot) / jnp.maximum(count, 1.0), jnp.nan)


def cell_mean_loss(
    scene: RTScene,
    tx_positions_m: Float[Array, "tx 3"],
    rx_positions_m: Float[Array, "rx 3"],
    serving_cell: Int[Array, " rx"],
    measured_cell_mean_db: Float[Array, " tx"],
    *,
    offset_db: float | Float[Array, " tx"] = 0.0,
) -> Callable[[MaterialParams], Float[Array, ""]]:
    """Mean squared error (dB^2) between measured and ray-traced per-cell mean RSRP.

    The operational counterpart of `measurement_loss`: only the per-cell means
    (`cell_mean_rsrp_dbm`) over the served positions are known, not per-position values. Cells
    whose measured mean is NaN are left out.
    """
    serving = np.asarray(serving_cell)
    n_rx, n_tx = np.asarray(rx_positions_m).shape[0], np.asarray(tx_positions_m).shape[0]
    if serving.shape != (n_rx,) or not np.issubdtype(serving.dtype, np.integer):
        raise ValueError(
            f"serving_cell must be an int array of shape [rx={n_rx}], "
            f"got {serving.dtype}{serving.shape}"
        )
    if serving.min() < 0 or serving.max() >= n_tx:
        raise ValueError(
            f"serving_cell values must be in [0, {n_tx}), got [{serving.min()}, {serving.max()}]"
        )
    measured = np.asarray(measured_cell_mean_db, np.float32)
    if measured.shape != (n_tx,):
        raise ValueError(f"measured_cell_mean_db must have shape [tx={n_tx}], got {measured.shape}")
    observed = jnp.asarray(np.isfinite(measured))
    measured = jnp.asarray(np.nan_to_num(measured))
    serving = jnp.asarray(serving, jnp.int32)

    def loss(params: MaterialParams) -> Float[Array, ""]:
        _, g_db = rt_path_gains(params, tx_positions_m, rx_positions_m, scene=scene)
        pred = cell_mean_rsrp_dbm(g_db + offset_db, serving)
        mask = observed & jnp.isfinite(pred)
        err = jnp.where(mask, jnp.nan_to_num(pred) - measured, 0.0)
        return jnp.sum(jnp.square(err)) / jnp.maximum(jnp.sum(mask), 1)

    return loss


class CalibrationResult(eqx.Module):
    """Outcome of `calibrate`.

    Attributes:
        params: calibrated physical material properties (same structure as ``init_params``).
        loss_history: loss before each step, then the final loss ([num_steps + 1]).
        params_history: physical parameters before each step and at the end
            (leaves [num_steps + 1]).
        seconds_per_step: mean wall time of one optimisation step (forward + backward trace).
    """

    params: MaterialParams
    loss_history: Float[Array, " steps"]
    params_history: MaterialParams
    seconds_per_step: float = eqx.field(static=True)


def calibrate(
    loss_fn: Callable[[MaterialParams], Float[Array, ""]],
    init_params: MaterialParams,
    *,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 50,
    progress: bool = False,
) -> CalibrationResult:
    """Minimise ``loss_fn`` over the material properties in ``init_params`` with optax.

    The optimisation runs on `to_unconstrained` variables, so every iterate is physical. Each step
    costs one forward and one backward ray trace (host callbacks), so the loop is a Python loop
    around a jitted ``value_and_grad``.

    Args:
        loss_fn: scalar loss of the physical parameters, e.g. from `measurement_loss`.
        init_params: starting point ``{material: {field: value}}``, e.g. the ITU defaults.
        optimizer: optax transformation (default ``optax.adam(0.05)``).
        num_steps: optimisation steps.
        progress: show a tqdm progress bar.
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    opt = optimizer if optimizer is not None else optax.adam(0.05)
    u = to_unconstrained(init_params)
    state = opt.init(u)

    @jax.jit
    def step(u, state):
        loss, g = jax.value_and_grad(lambda v: loss_fn(to_physical(v)))(u)
        updates, state = opt.update(g, state, u)
        return optax.apply_updates(u, updates), state, loss

    losses, history = [], []
    steps = range(num_steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="calibrate materials")
    t0 = time.perf_counter()
    for _ in steps:
        history.append(to_physical(u))
        u, state, loss = step(u, state)
        losses.append(loss)
    elapsed = time.perf_counter() - t0
    final = to_physical(u)
    history.append(final)
    losses.append(jax.jit(loss_fn)(final))
    params_history = jax.tree.map(lambda *xs: jnp.stack(xs), *history)
    return CalibrationResult(
        params=final,
        loss_history=jnp.stack(losses),
        params_history=params_history,
        seconds_per_step=elapsed / max(num_steps, 1),
    )
