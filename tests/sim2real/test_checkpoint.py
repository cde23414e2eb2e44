"""Checkpoint round trip (orbax) and exact resume of training."""

from __future__ import annotations

import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sim2real import latest_step, make_ensemble, restore_checkpoint, save_checkpoint
from sim2real.dataset import split_snapshots
from sim2real.transfer import TransferConfig, _sup_loss, _sup_val, _target_weight, train_ensemble


def _assert_tree_equal(a, b):
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    assert len(la) == len(lb) > 0
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_round_trip(tmp_path, small_batch):
    ens = make_ensemble(jax.random.key(0), 2, small_batch, embed=8, hidden=16)
    opt = optax.adam(1e-3)
    state = opt.init(eqx.filter(ens, eqx.is_array))
    # take one step so the optimiser state is not all zeros
    g = jax.tree.map(jnp.ones_like, eqx.filter(ens, eqx.is_array))
    _, state = opt.update(g, state)
    save_checkpoint(tmp_path / "ck", 7, ens, state, metadata={"method": "sim2real"})
    assert latest_step(tmp_path / "ck") == 7
    fresh = make_ensemble(jax.random.key(1), 2, small_batch, embed=8, hidden=16)
    ck = restore_checkpoint(tmp_path / "ck", fresh, opt.init(eqx.filter(fresh, eqx.is_array)))
    assert ck.step == 7 and ck.metadata == {"method": "sim2real"}
    _assert_tree_equal(ck.ensemble, ens)
    _assert_tree_equal(ck.opt_state, state)
    with pytest.raises(ValueError, match="template"):
        other = make_ensemble(jax.random.key(1), 3, small_batch, embed=8, hidden=16)
        restore_checkpoint(tmp_path / "ck", other, None)
    with pytest.raises(FileNotFoundError):
        restore_checkpoint(tmp_path / "nothing", fresh)


def test_resume_is_exact(tmp_path, small_batch):
    cfg = TransferConfig(eval_every=10, patience=100, batch_snapshots=4, progress=False)
    train, val = split_snapshots(jax.random.key(2), small_batch, 0.25)
    ens = make_ensemble(jax.random.key(0), 2, small_batch, embed=8, hidden=16)
    aux = {"w": _target_weight(train)}

    def run(directory):
        return train_ensemble(
            jax.random.key(3), ens, _sup_loss, _sup_val, (train,), val, steps=40,
            learning_rate=3e-3, config=cfg, aux=aux, checkpoint_dir=directory,
            checkpoint_every=20,
        )  # fmt: skip

    full, hist = run(tmp_path / "a")
    assert hist.steps == [10, 20, 30, 40]
    assert latest_step(tmp_path / "a") == 40
    # simulate an interruption after step 20: keep only that checkpoint, then resume
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "40")
    assert latest_step(tmp_path / "b") == 20
    resumed, hist_b = run(tmp_path / "b")
    assert hist_b.steps == [30, 40]
    _assert_tree_equal(resumed, full)
    # and training changed something
    assert not np.array_equal(resumed.env.offset, ens.env.offset)
