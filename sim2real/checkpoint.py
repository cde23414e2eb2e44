"""Saving and restoring training state (ensemble, optimiser state, step) with orbax-checkpoint.

The array leaves of each pytree (Equinox modules included) are saved by position; restoring needs
a *template* of the same structure (e.g. a freshly initialised ensemble and ``opt.init`` of it),
whose non-array parts (activation functions, static fields) are reused. This is the Equinox way
of serialising (cf. ``eqx.tree_serialise_leaves``), with orbax handling the storage, atomic
writes and retention.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import orbax.checkpoint as ocp
from jaxtyping import PyTree


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A restored checkpoint."""

    step: int
    ensemble: PyTree
    opt_state: PyTree
    extra: PyTree
    metadata: dict[str, Any]


def _leaves(tree: PyTree) -> dict[str, Any]:
    return {
        f"{i:05d}": np.asarray(x)
        for i, x in enumerate(jax.tree.leaves(eqx.filter(tree, eqx.is_array)))
    }


def _abstract(tree: PyTree) -> dict[str, Any]:
    return {
        f"{i:05d}": jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
        for i, x in enumerate(jax.tree.leaves(eqx.filter(tree, eqx.is_array)))
    }


def _rebuild(template: PyTree, saved: dict[str, Any], what: str) -> PyTree:
    arrays, rest = eqx.partition(template, eqx.is_array)
    leaves, treedef = jax.tree.flatten(arrays)
    if len(saved) != len(leaves):
        raise ValueError(
            f"restore_checkpoint: {what} has {len(saved)} arrays, the template {len(leaves)}"
        )
    new = []
    for i, old in enumerate(leaves):
        v = saved[f"{i:05d}"]
        if np.shape(v) != np.shape(old):
            raise ValueError(
                f"restore_checkpoint: {what} array {i} has shape {np.shape(v)}, "
                f"template {np.shape(old)}"
            )
        new.append(jax.numpy.asarray(v, dtype=np.asarray(old).dtype))
    return eqx.combine(jax.tree.unflatten(treedef, new), rest)


def _manager(directory: str | Path, max_to_keep: int | None = 3) -> ocp.CheckpointManager:
    path = Path(directory).resolve()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(path, options=options)


def save_checkpoint(
    directory: str | Path,
    step: int,
    ensemble: PyTree,
    opt_state: PyTree = None,
    *,
    extra: PyTree = None,
    metadata: dict[str, Any] | None = None,
    max_to_keep: int | None = 3,
) -> Path:
    """Save a training state under ``directory/<step>`` (blocking until written).

    Args:
        directory: checkpoint root (created if needed).
        step: training step (the checkpoint's name).
        ensemble: the model pytree (stacked ensemble or single surrogate).
        opt_state: optax state (or any pytree; ``None`` for none).
        extra: any further pytree of arrays (e.g. early-stopping state).
        metadata: JSON-serialisable dict (configuration, method name, ...).
        max_to_keep: number of most recent checkpoints to retain (``None`` keeps all).
    """
    if int(step) < 0:
        raise ValueError(f"save_checkpoint: step must be >= 0, got {step}")
    mngr = _manager(directory, max_to_keep)
    state = {
        "ensemble": _leaves(ensemble),
        "opt_state": _leaves(opt_state),
        "extra": _leaves(extra),
    }
    mngr.save(
        int(step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave(dict(metadata or {}))
        ),
        force=True,
    )
    mngr.wait_until_finished()
    mngr.close()
    return Path(directory).resolve() / str(int(step))


def latest_step(directory: str | Path) -> int | None:
    """Latest saved step in ``directory``, or ``None`` when there is none."""
    if not Path(directory).exists():
        return None
    mngr = _manager(directory)
    step = mngr.latest_step()
    mngr.close()
    return step


def restore_checkpoint(
    directory: str | Path,
    ensemble_like: PyTree,
    opt_state_like: PyTree = None,
    *,
    extra_like: PyTree = None,
    step: int | None = None,
) -> Checkpoint:
    """Restore a checkpoint saved by `save_checkpoint` into templates of the same structure.

    Args:
        directory: checkpoint root.
        ensemble_like, opt_state_like, extra_like: templates (same structure/shapes as saved).
        step: which step (default: the latest).

    Raises:
        FileNotFoundError: no checkpoint in ``directory`` (or not that step).
        ValueError: the templates do not match what was saved.
    """
    if not Path(directory).exists():
        raise FileNotFoundError(f"restore_checkpoint: no checkpoint directory {directory}")
    mngr = _manager(directory)
    step = mngr.latest_step() if step is None else int(step)
    if step is None or step not in mngr.all_steps():
        mngr.close()
        raise FileNotFoundError(f"restore_checkpoint: no checkpoint step {step} in {directory}")
    abstract = {
        "ensemble": _abstract(ensemble_like),
        "opt_state": _abstract(opt_state_like),
        "extra": _abstract(extra_like),
    }
    try:
        out = mngr.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()
            ),
        )
    except ValueError as e:
        first = str(e).splitlines()[0]
        raise ValueError(
            f"restore_checkpoint: step {step} in {directory} does not match the template "
            f"(ensemble/opt_state/extra structure or shapes differ): {first}"
        ) from None
    finally:
        mngr.close()
    state = out["state"]
    return Checkpoint(
        step=int(step),
        ensemble=_rebuild(ensemble_like, state.get("ensemble") or {}, "ensemble"),
        opt_state=_rebuild(opt_state_like, state.get("opt_state") or {}, "opt_state"),
        extra=_rebuild(extra_like, state.get("extra") or {}, "extra"),
        metadata=dict(out["metadata"] or {}),
    )
