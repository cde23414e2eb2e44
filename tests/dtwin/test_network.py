"""Network model: closed forms, an independent load-coupling solver, finite differences."""

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin import throughput as tp
from dtwin.channel import UMa
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.geometry import drop_ues, hex_topology
from dtwin.network import (
    Network,
    UEPopulation,
    cell_kpis,
    coupling_gain_db,
    draw_channel,
    simulate,
)

# One compiled program per (shapes, hard, temperature): tests share them instead of tracing eagerly.
sim = eqx.filter_jit(simulate)


def _small(n_sites=1, ues_per_cell=3, demand=5.0, seed=0):
    topo = hex_topology(n_sites, 500.0, 25.0, wrap=False)
    net = Network(topo, UMa(), carrier_hz=3.5e9, bandwidth_hz=20e6)
    ues = drop_ues(jax.random.PRNGKey(seed), topo, ues_per_cell, 35.0)
    pop = UEPopulation.with_demand(ues, demand)
    ch = draw_channel(jax.random.PRNGKey(seed + 1), net, pop)
    return net, pop, ch, DEFAULT_CM_SCHEMA.default(net.n_cells)


def _numpy_reference(net, pop, ch, cm, iters=500):
    """An independent, plain-numpy implementation of the hard-association snapshot."""
    g = np.asarray(coupling_gain_db(net, pop, ch, cm["tilt_deg"]), np.float64)
    p = np.asarray(cm["tx_power_dbm"], np.float64)
    rsrp = p[None] - 10 * np.log10(12 * net.n_prb) + g
    serv = np.argmax(rsrp + np.asarray(cm["cio_db"])[None], axis=1)
    rx = 10 ** ((p[None] + g) / 10)
    noise = 10 ** ((-174 + 10 * np.log10(net.bandwidth_hz) + net.noise_figure_db) / 10)
    _, _, se_tab = (np.asarray(a) for a in tp.cqi_table("cqi256"))
    th = np.asarray(tp.CQI_SINR_THRESHOLD_DB["cqi256"])
    d = np.asarray(pop.demand_mbps, np.float64)
    u = np.arange(len(serv))
    load = np.ones(net.n_cells)
    for _ in range(iters):
        s = rx[u, serv]
        sinr = 10 * np.log10(s / (rx @ load - load[serv] * s + noise))
        se = se_tab[np.sum(sinr[:, None] >= th[None], axis=1)]
        rate = net.bandwidth_hz * (1 - net.overhead) * se / 1e6
        t = np.minimum(d / np.maximum(rate, 1e-3), 1.0)
        load = np.minimum(np.bincount(serv, weights=t, minlength=net.n_cells), 1.0)
    return serv, sinr, load


def test_hard_snapshot_matches_independent_numpy_solver():
    net, pop, ch, cm = _small(n_sites=7, ues_per_cell=4, demand=3.0)
    res = sim(net, pop, ch, cm, hard=True)
    serv, sinr, load = _numpy_reference(net, pop, ch, cm)
    np.testing.assert_array_equal(np.argmax(res.serving_prob, 1), serv)
    np.testing.assert_allclose(res.prb_utilization, load, atol=2e-3)
    np.testing.assert_allclose(res.sinr_db, sinr, atol=0.05)
    assert bool(res.load_converged)
    assert 0.0 < float(jnp.min(res.prb_utilization)) and float(jnp.max(res.prb_utilization)) <= 1.0


def test_single_cell_single_ue_closed_form():
    topo = hex_topology(1, 500.0, 25.0, wrap=False)
    net = Network(topo, UMa(), bandwidth_hz=20e6)
    ues = drop_ues(jax.random.PRNGKey(3), topo, 1, 35.0)
    pop = UEPopulation.full_buffer(ues)
    ch = draw_channel(jax.random.PRNGKey(4), net, pop)
    # Switch two cells off (30 dBm and far below the third): the UE of the strongest cell sees
    # essentially only noise plus tiny interference; compare against the closed form with it.
    cm = DEFAULT_CM_SCHEMA.default(3)
    res = sim(net, pop, ch, cm, hard=True)
    g = np.asarray(coupling_gain_db(net, pop, ch, cm["tilt_deg"]), np.float64)
    rx = 10 ** ((np.asarray(cm["tx_power_dbm"])[None] + g) / 10)
    noise = 10 ** (net.noise_dbm / 10)
    s = np.argmax(g, axis=1)
    u = np.arange(3)
    # full buffer: every cell with a UE is fully loaded (ρ = 1)
    np.testing.assert_allclose(res.prb_utilization, 1.0, atol=1e-6)
    sinr = 10 * np.log10(rx[u, s] / (rx.sum(1) - rx[u, s] + noise))
    np.testing.assert_allclose(res.sinr_db, sinr, atol=1e-3)
    se = np.asarray(tp.spectral_efficiency(jnp.asarray(sinr, jnp.float32), hard=True))
    n_in_cell = np.bincount(s, minlength=3)[s]
    expect = net.bandwidth_hz * (1 - net.overhead) * se / n_in_cell / 1e6
    np.testing.assert_allclose(res.throughput_mbps, expect, rtol=1e-4)


def test_cio_moves_association():
    net, pop, ch, cm = _small()
    cm = dict(cm, cio_db=jnp.array([6.0, -6.0, -6.0]))
    base = sim(net, pop, ch, dict(cm, cio_db=jnp.zeros(3)), hard=True)
    biased = sim(net, pop, ch, cm, hard=True)
    assert float(biased.serving_prob[:, 0].sum()) >= float(base.serving_prob[:, 0].sum())


def test_soft_association_rows_sum_to_one_and_approach_hard():
    net, pop, ch, cm = _small()
    soft = sim(net, pop, ch, cm, temperature_db=0.05)
    hard = sim(net, pop, ch, cm, hard=True)
    chex.assert_shape(soft.serving_prob, (pop.ues.xy_m.shape[0], net.n_cells))
    np.testing.assert_allclose(soft.serving_prob.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(soft.serving_prob, hard.serving_prob, atol=1e-3)


def test_shapes_dtypes_and_kpis():
    net, pop, ch, cm = _small()
    res = sim(net, pop, ch, cm)
    n = pop.ues.xy_m.shape[0]
    chex.assert_shape([res.sinr_db, res.throughput_mbps, res.se_bps_hz], (n,))
    chex.assert_shape(res.prb_utilization, (3,))
    chex.assert_type([res.sinr_db, res.throughput_mbps], jnp.float32)
    k = cell_kpis(net, pop, res)
    from dtwin.schema import TARGET_COLUMNS

    assert set(k) == set(TARGET_COLUMNS)
    for v in k.values():
        chex.assert_shape(v, (3,))
    # cell throughput is the sum of its UEs' throughput (mass-weighted)
    np.testing.assert_allclose(
        k["cell_throughput_mbps"].sum(), res.throughput_mbps.sum(), rtol=1e-4
    )


def test_vmap_over_snapshots_equals_loop():
    net, pop, ch, cm = _small()
    keys = jax.random.split(jax.random.PRNGKey(9), 3)
    chans = jax.vmap(lambda k: draw_channel(k, net, pop))(keys)
    batched = jax.jit(jax.vmap(lambda c: simulate(net, pop, c, cm, hard=True).throughput_mbps))(
        chans
    )
    for i, k in enumerate(keys):
        one = sim(net, pop, draw_channel(k, net, pop), cm, hard=True).throughput_mbps
        np.testing.assert_allclose(batched[i], one, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("param", ["tilt_deg", "tx_power_dbm"])
def test_gradient_matches_finite_differences(param):
    """d(mean UE throughput)/d(CM) through the implicit load fixed point vs central differences."""
    with jax.enable_x64(True):
        net, pop, ch, cm = _small(n_sites=1, ues_per_cell=3, demand=4.0)
        cm = {k: v.astype(jnp.float64) + (0.3 if k == "tilt_deg" else 0.0) for k, v in cm.items()}

        @jax.jit
        def f(x):
            res = simulate(net, pop, ch, dict(cm, **{param: x}), temperature_db=2.0)
            return jnp.mean(res.throughput_mbps)

        x0 = cm[param]
        check_grads(f, (x0,), order=1, modes=("rev",), eps=1e-3, atol=2e-3, rtol=2e-2)
        assert float(jnp.abs(jax.grad(f)(x0)).max()) > 0.0


def test_gradient_wrt_scenario_parameters_is_finite():
    net, pop, ch, cm = _small()

    def f(scenario):
        n2 = Network(net.topology, scenario, net.carrier_hz, net.bandwidth_hz)
        return jnp.mean(simulate(n2, pop, ch, cm).throughput_mbps)

    g = jax.jit(jax.grad(f))(net.scenario)
    leaves = [x for x in jax.tree_util.tree_leaves(g) if hasattr(x, "dtype")]
    assert leaves and all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def test_missing_cm_parameter_is_named():
    net, pop, ch, cm = _small()
    with pytest.raises(ValueError, match="tx_power_dbm"):
        simulate(net, pop, ch, {"tilt_deg": cm["tilt_deg"]})


def test_candidate_association_matches_full_softmax_where_it_has_no_mass_outside():
    """At a 0.05 dB temperature the full softmax has no mass beyond a UE's 3 strongest cells, so
    the candidate path (segment sums over ``[ues, k]``) must reproduce the dense one."""
    net, pop, ch, cm = _small(n_sites=7, ues_per_cell=4, demand=3.0)
    full = sim(net, pop, ch, cm, temperature_db=0.05)
    cand = sim(net, pop, ch, cm, temperature_db=0.05, candidates=3)
    chex.assert_trees_all_equal_shapes(full, cand)
    for name in ("serving_prob", "prb_utilization", "throughput_mbps", "sinr_db"):
        np.testing.assert_allclose(getattr(cand, name), getattr(full, name), rtol=1e-4, atol=1e-4)
    assert bool(cand.load_converged)


def test_candidate_association_error_shrinks_with_k():
    """At 1 dB the truncated softmax drops mass; the error falls with k and is gone at k = cells."""
    net, pop, ch, cm = _small(n_sites=7, ues_per_cell=4, demand=3.0)
    full = sim(net, pop, ch, cm)
    err = {}
    for k in (2, 4, 8, net.n_cells):
        res = sim(net, pop, ch, cm, candidates=k)
        np.testing.assert_allclose(res.serving_prob.sum(1), 1.0, atol=1e-5)
        assert int(jnp.max(jnp.sum(res.serving_prob > 0, axis=1))) <= k
        err[k] = float(jnp.max(jnp.abs(res.prb_utilization - full.prb_utilization)))
    assert err[8] < err[2] and err[4] < err[2]
    assert err[net.n_cells] == 0.0 and err[8] < 1e-3


def test_candidate_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        net, pop, ch, cm = _small(n_sites=7, ues_per_cell=2, demand=4.0)
        cm = {k: v.astype(jnp.float64) + (0.3 if k == "tilt_deg" else 0.0) for k, v in cm.items()}

        @jax.jit
        def f(x):
            res = simulate(net, pop, ch, dict(cm, tilt_deg=x), temperature_db=2.0, candidates=4)
            return jnp.mean(res.throughput_mbps)

        x0 = cm["tilt_deg"]
        check_grads(f, (x0,), order=1, modes=("rev",), eps=1e-3, atol=2e-3, rtol=2e-2)
        assert float(jnp.abs(jax.grad(f)(x0)).max()) > 0.0


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_candidates_are_refused(bad):
    net, pop, ch, cm = _small()
    with pytest.raises(ValueError, match="candidates"):
        simulate(net, pop, ch, cm, candidates=bad)
