"""Deep ensembles of surrogates (Lakshminarayanan et al. 2017, arXiv:1612.01474).

An ensemble is a single `Surrogate` whose array leaves carry a leading ``members`` axis (built with
``eqx.filter_vmap`` over PRNG keys), so the whole ensemble trains and predicts in one vmapped
call. The spread across members is the epistemic uncertainty.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .dataset import GraphBatch
from .surrogate import Surrogate, _calibration_init, _host_build, _sizes, key_seed, predict_kpis


def make_ensemble(
    key: PRNGKeyArray, n_models: int, batch: GraphBatch, **surrogate_kwargs
) -> Surrogate:
    """``n_models`` independently initialised surrogates, stacked on a leading axis.

    Args:
        key: PRNG key (split into one key per member).
        n_models: ensemble size (>= 1).
        batch: data that fixes the input sizes and the initial output calibration.
        **surrogate_kwargs: sizes as in `init_surrogate` (``embed``, ``hidden``, ...).
    """
    if int(n_models) < 1:
        raise ValueError(f"make_ensemble: n_models must be >= 1, got {n_models}")
    offset, log_scale = _calibration_init(batch)
    kw = {"embed": 16, "hidden": 32, "depth": 2, "n_message": 8, **surrogate_kwargs}
    rng = np.random.default_rng(key_seed(key))
    models = [
        _host_build(rng, _sizes(batch), offset, log_scale, tuple(batch.log_targets), **kw)
        for _ in range(int(n_models))
    ]
    return stack(models)


def ensemble_size(ensemble: Surrogate) -> int:
    """Number of members (leading axis of the array leaves)."""
    return int(ensemble.env.offset.shape[0]) if ensemble.env.offset.ndim == 2 else 1


def member(ensemble: Surrogate, i: int) -> Surrogate:
    """The ``i``-th member as a plain surrogate."""
    return jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, ensemble)


def stack(models: list[Surrogate]) -> Surrogate:
    """Stack surrogates of identical structure into an ensemble."""
    if not models:
        raise ValueError("stack: need at least one model")
    arrays = [eqx.filter(m, eqx.is_array) for m in models]
    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *arrays)
    return eqx.combine(stacked, eqx.filter(models[0], eqx.is_array, inverse=True))


def predict_members(
    ensemble: Surrogate, batch: GraphBatch
) -> Float[Array, "members snapshots cells n_targets"]:
    """Every member's prediction in physical units."""
    return eqx.filter_vmap(lambda m: predict_kpis(m, batch))(ensemble)


@eqx.filter_jit
def predict(
    ensemble: Surrogate, batch: GraphBatch
) -> tuple[Float[Array, "snapshots cells n_targets"], Float[Array, "snapshots cells n_targets"]]:
    """Predictive mean and epistemic std over members, in physical units.

    Returns:
        ``(mean, std)``, each ``[snapshots, cells, n_targets]``; ``std`` is the population std
        of the members' predictions (0 for a single member).
    """
    y = predict_members(ensemble, batch)
    return y.mean(axis=0), y.std(axis=0)
