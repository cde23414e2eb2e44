"""Neighbour graph, factorised surrogate (shapes, jit/vmap/grad, partition) and ensembles."""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from sim2real import (
    env_filter,
    init_surrogate,
    make_ensemble,
    member,
    neighbour_graph,
    predict,
    predict_kpis,
    response_filter,
    sector_coupling_db,
)
from sim2real.dataset import to_model_domain
from sim2real.ensemble import stack
from sim2real.surrogate import apply


# ------------------------------------------------------------------ graph
def test_neighbour_graph_geometry():
    # site A at origin (cells 0: boresight east, 1: boresight north), site B 1 km north (cell 2),
    # site C 2 km east (cell 3).
    g = neighbour_graph(
        np.array([0.0, 0.0, 0.0, 2000.0]),
        np.array([0.0, 0.0, 1000.0, 0.0]),
        np.array([0.0, 90.0, 0.0, 180.0]),
        np.array([0, 0, 1, 2]),
        k=1,
        rank="distance",
    )
    chex.assert_shape(g.index, (4, 2))
    # cell 0: co-site cell 1 first (bearing = its boresight - own = 90), then cell 2 (north: 90)
    np.testing.assert_array_equal(g.index[0], [1, 2])
    np.testing.assert_array_equal(g.co_site[0], [True, False])
    np.testing.assert_allclose(g.bearing_deg[0], [90.0, 90.0], atol=1e-4)
    np.testing.assert_allclose(g.distance_m[0], [0.0, 1000.0], atol=1e-3)
    # cell 3 looks west (180): nearest other site is A at 2 km, straight ahead -> bearing 0
    np.testing.assert_array_equal(g.index[3, 0], 0)
    np.testing.assert_allclose(g.bearing_deg[3, 0], 0.0, atol=1e-4)
    assert not bool(g.mask[3, 1])  # no co-site cell: padded
    # cell 2 (north, boresight east): site A lies south -> -90 deg
    np.testing.assert_allclose(g.bearing_deg[2, 0], -90.0, atol=1e-4)
    ef = g.edge_features()
    chex.assert_shape(ef, (4, 2, 5))
    np.testing.assert_allclose(ef[3, 1], 0.0)


def test_neighbour_graph_coupling_rank():
    # The layout above. Cell 0's sector centre lies 500 m east of site A (half the 1 km to the
    # nearest other site). Cell 3 (2 km east, facing west) sees it on boresight at 1.5 km:
    # -35 log10(1500) dB; cell 2 (1 km north, facing east) at 1118 m, 63.4 deg off boresight:
    # -12 (63.43/65)^2 - 35 log10(1118) dB, 6.9 dB weaker. Coupling therefore picks cell 3,
    # distance picks cell 2.
    args = (
        np.array([0.0, 0.0, 0.0, 2000.0]),
        np.array([0.0, 0.0, 1000.0, 0.0]),
        np.array([0.0, 90.0, 0.0, 180.0]),
        np.array([0, 0, 1, 2]),
    )
    g = neighbour_graph(*args, k=1)
    np.testing.assert_array_equal(g.index[0], [1, 3])
    own = -35.0 * np.log10(500.0)
    np.testing.assert_allclose(g.coupling_db[0, 1], -35.0 * np.log10(1500.0) - own, atol=1e-3)
    c = sector_coupling_db(*args)
    phi = np.rad2deg(np.arctan2(-1000.0, 500.0))
    expect = -12.0 * (phi / 65.0) ** 2 - 35.0 * np.log10(np.hypot(500.0, 1000.0))
    np.testing.assert_allclose(c[0, 2], expect, atol=1e-6)
    assert neighbour_graph(*args, k=1, rank="distance").index[0, 1] == 2
    # the relative coupling is the fifth edge feature, in units of 10 dB
    np.testing.assert_allclose(g.edge_features()[0, 1, 4], (-35.0 * np.log10(3.0)) / 10, atol=1e-4)
    with pytest.raises(ValueError, match="rank"):
        neighbour_graph(*args, k=1, rank="nearest")


def test_neighbour_graph_bad_input():
    with pytest.raises(ValueError, match="shape"):
        neighbour_graph(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3))


# ------------------------------------------------------------------ surrogate
@pytest.fixture(scope="module")
def model(small_batch):
    return init_surrogate(jax.random.key(0), small_batch, embed=8, hidden=16)


def test_shapes_and_dtypes(model, small_batch):
    z = apply(model, small_batch)
    y = predict_kpis(model, small_batch)
    chex.assert_shape([z, y], (small_batch.n_snapshots, small_batch.n_cells, 1))
    chex.assert_type([z, y], jnp.float32)
    chex.assert_tree_all_finite(y)
    assert bool((y > 0).all())  # log-domain target -> positive throughput


def test_response_is_zero_at_reference_cm(model, small_batch):
    """At the default CM everywhere, prediction = prior + calibrate(base(env))."""
    ref = jnp.broadcast_to(small_batch.cm_ref_unit, small_batch.cm_unit.shape)
    b = small_batch.with_cm(ref)
    e = jax.jit(jax.vmap(model.env.embed, in_axes=(0, None)))(b.state, b.static)
    expected = jax.jit(jax.vmap(lambda ei: model.env.calibrate(model.env.base(ei))))(e)
    np.testing.assert_allclose(apply(model, b), expected, rtol=1e-6, atol=1e-6)


def test_prior_enters_additively_in_log_domain(model, small_batch):
    prior = jnp.log(jnp.full(small_batch.prior.shape, 7.0))
    b = eqx.tree_at(lambda x: x.prior, small_batch, prior)
    np.testing.assert_allclose(
        predict_kpis(model, b), 7.0 * predict_kpis(model, small_batch), rtol=1e-5
    )


def test_neighbour_cm_matters(model, small_batch):
    """Changing only a neighbour's CM changes a cell's prediction, not a far cell's."""
    g = small_batch.graph
    cell = 0
    nb = int(g.index[cell, -1])
    far = [c for c in range(small_batch.n_cells) if c != nb and nb not in np.asarray(g.index[c])]
    far = [c for c in far if c != nb][0]
    cm = small_batch.cm_unit.at[:, nb, 1].add(0.3)
    d = apply(model, small_batch.with_cm(cm)) - apply(model, small_batch)
    assert float(jnp.abs(d[:, cell]).max()) > 1e-5
    np.testing.assert_allclose(d[:, far], 0.0, atol=1e-6)


def test_jit_vmap_grad(model, small_batch):
    z = apply(model, small_batch)
    zj = eqx.filter_jit(apply)(model, small_batch)
    np.testing.assert_allclose(zj, z, rtol=1e-5, atol=1e-5)
    # vmap over snapshots of the single-snapshot call equals the batched call
    g = small_batch.graph
    one = lambda s, c, p: model.snapshot(
        s, small_batch.static, c, small_batch.cm_ref_unit, g.index, g.edge_features(), g.mask, p
    )[0]
    zv = jax.jit(jax.vmap(one))(small_batch.state, small_batch.cm_unit, small_batch.prior)
    np.testing.assert_allclose(zv, z, rtol=1e-5, atol=1e-5)

    # gradient w.r.t. the CM (what the optimiser uses) against finite differences
    b1 = small_batch.take(np.arange(2))

    @jax.jit
    def f(cm):
        return apply(model, b1.with_cm(cm)).sum()

    check_grads(f, (b1.cm_unit.astype(jnp.float64) if jax.config.jax_enable_x64 else b1.cm_unit,),
                order=1, modes=["rev"], eps=1e-2, atol=5e-2, rtol=5e-2)  # fmt: skip
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: apply(m, b1).sum()))(model)
    chex.assert_tree_all_finite(eqx.filter(grads, eqx.is_array))


def test_filters_partition_the_model(model, small_batch):
    env_spec, resp_spec = env_filter(model), response_filter(model)
    e = jax.tree.leaves(env_spec)
    r = jax.tree.leaves(resp_spec)
    arrays = jax.tree.leaves(jax.tree.map(eqx.is_array, model))
    assert len(e) == len(r) == len(arrays)
    assert not any(a and b for a, b in zip(e, r, strict=True))  # disjoint
    assert all((a or b) == c for a, b, c in zip(e, r, arrays, strict=True))  # cover all arrays
    # a gradient step on the env partition leaves the response part bit-identical
    diff, frozen = eqx.partition(model, env_spec)

    def loss(d):
        m = eqx.combine(d, frozen)
        return (apply(m, small_batch) ** 2).mean()

    g = eqx.filter_jit(eqx.filter_grad(loss))(diff)
    new = eqx.combine(jax.tree.map(lambda p, gi: p - 0.1 * gi, diff, g), frozen)
    for a, b in zip(jax.tree.leaves(new.response), jax.tree.leaves(model.response), strict=True):
        if eqx.is_array(a):
            np.testing.assert_array_equal(a, b)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(new.env), jax.tree.leaves(model.env), strict=True)
        if eqx.is_array(a)
    ]
    assert any(changed)


def test_calibration_initialised_from_targets(model, small_batch):
    z = np.asarray(to_model_domain(small_batch.targets, small_batch.log_targets))[..., 0]
    np.testing.assert_allclose(model.env.offset[0], z.mean(), rtol=1e-5)
    np.testing.assert_allclose(np.exp(model.env.log_scale[0]), z.std(), rtol=1e-4)


# ------------------------------------------------------------------ ensemble
def test_ensemble_predict(model, small_batch):
    ens = make_ensemble(jax.random.key(1), 3, small_batch, embed=8, hidden=16)
    chex.assert_shape(ens.env.offset, (3, 1))
    mean, std = predict(ens, small_batch)
    chex.assert_shape([mean, std], (small_batch.n_snapshots, small_batch.n_cells, 1))
    members = np.stack([np.asarray(predict_kpis(member(ens, i), small_batch)) for i in range(3)])
    np.testing.assert_allclose(mean, members.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, members.std(0), rtol=1e-4, atol=1e-6)
    assert float(std.mean()) > 0
    # identical members: zero epistemic spread, mean = the member
    same = stack([model, model])
    m2, s2 = predict(same, small_batch)
    np.testing.assert_allclose(m2, predict_kpis(model, small_batch), rtol=1e-5)
    np.testing.assert_allclose(s2, 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="n_models"):
        make_ensemble(jax.random.key(0), 0, small_batch)


@pytest.mark.parametrize("n_models", [1, 2])
def test_vmapped_over_candidates_matches_single_calls(small_batch, n_models):
    """An ensemble vmapped over CM candidates, compiled with the data as traced inputs, equals
    the ensemble called on each candidate alone.

    Regression: the response part used to vmap one network over ``stack([cm, cm_ref])``; with
    one vmap of size 1 and another not (a 1-member ensemble over several candidates, or several
    members over one candidate) the CPU build of jax 0.10.2 compiled that into garbage (inf,
    NaN, other cells' values) while the same jaxpr evaluated op by op was exact."""
    ens = make_ensemble(jax.random.key(5), n_models, small_batch, embed=8, hidden=16)
    u = jax.random.uniform(
        jax.random.key(6), (3, small_batch.n_cells, small_batch.cm_unit.shape[-1])
    )
    one = eqx.filter_jit(lambda e, b, c: predict(e, b.with_cm(c[None]))[0])
    many = eqx.filter_jit(
        lambda e, b, cs: jax.vmap(lambda c: predict(e, b.with_cm(c[None]))[0])(cs)
    )
    want = np.stack([np.asarray(one(ens, small_batch, u[i])) for i in range(3)])
    assert np.all(np.isfinite(want))
    for n in (1, 2, 3):
        got = np.asarray(many(ens, small_batch, u[:n]))
        chex.assert_shape(got, (n, small_batch.n_snapshots, small_batch.n_cells, 1))
        np.testing.assert_allclose(got, want[:n], rtol=1e-4, err_msg=f"{n} candidate(s)")
