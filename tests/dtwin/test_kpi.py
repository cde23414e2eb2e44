"""Tests of dtwin.kpi: soft quantile vs numpy, KPIs and PM counters vs hand computation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin import kpi
from dtwin.schema import TARGET_COLUMNS


@pytest.mark.parametrize("q", [0.05, 0.5, 0.9])
def test_quantile_exact_vs_numpy(q):
    x = np.random.default_rng(0).lognormal(1.0, 1.0, size=37).astype(np.float32)
    np.testing.assert_allclose(
        kpi.soft_quantile(x, q), np.quantile(x, q, method="hazen"), rtol=1e-5
    )
    # integer weights == repeated samples (numpy inverted_cdf-free check via repetition)
    w = np.random.default_rng(1).integers(1, 4, size=37)
    rep = np.repeat(x, w)
    hz = kpi.soft_quantile(x, q, w.astype(np.float32))
    # weighted Hazen positions differ from the repeated-sample ones by < one sample's weight
    lo, hi = np.quantile(rep, [max(q - 3 / rep.size, 0), min(q + 3 / rep.size, 1)])
    assert lo - 1e-5 <= float(hz) <= hi + 1e-5


@pytest.mark.parametrize("q", [0.05, 0.5])
def test_quantile_kernel_vs_numpy(q):
    x = np.random.default_rng(2).normal(10.0, 3.0, size=2000).astype(np.float32)
    v = kpi.soft_quantile(x, q, temperature=0.05)
    np.testing.assert_allclose(v, np.quantile(x, q), atol=0.05)
    # weights: 0/1 weights select a subset
    w = (np.arange(2000) % 2).astype(np.float32)
    v = kpi.soft_quantile(x, q, w, temperature=0.05)
    np.testing.assert_allclose(v, np.quantile(x[1::2], q), atol=0.08)
    with pytest.raises(ValueError, match="temperature"):
        kpi.soft_quantile(x, q, temperature=0.0)


def test_quantile_grads_and_batch():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(3, 12)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(4).uniform(0.2, 1.0, size=(3, 12)), jnp.float32)
    out = jax.jit(lambda a, b: kpi.soft_quantile(a, 0.2, b, temperature=0.3))(x, w)
    chex.assert_shape(out, (3,))
    out2 = jax.vmap(lambda a, b: kpi.soft_quantile(a, 0.2, b, temperature=0.3))(x, w)
    chex.assert_trees_all_close(out, out2, atol=1e-5)
    f = jax.jit(lambda a, b: kpi.soft_quantile(a, 0.2, b, temperature=0.3))
    check_grads(f, (x[0], w[0]), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-3)
    # implicit gradient: sums to 1 over x (shift equivariance)
    g = jax.grad(lambda a: f(a, w[0]))(x[0])
    np.testing.assert_allclose(jnp.sum(g), 1.0, rtol=1e-3)
    g = jax.grad(lambda a: kpi.soft_quantile(a, 0.5))(x[0])
    np.testing.assert_allclose(jnp.sum(g), 1.0, rtol=1e-4)


def _toy():
    # 4 UEs, 2 cells, hard association: UEs 0,1,2 -> cell 0, UE 3 -> cell 1.
    p = jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    thr = jnp.array([2.0, 4.0, 12.0, 30.0])
    util = jnp.array([1.0, 0.4])
    rsrp = jnp.array([[-100.0, -120.0], [-115.0, -118.0], [-90.0, -130.0], [-125.0, -105.0]])
    sinr = jnp.array([0.0, -3.0, 15.0, 6.0])
    cqi = jnp.array([5.0, 3.0, 12.0, 9.0])
    return p, thr, util, rsrp, sinr, cqi


def test_cell_kpis_hard_by_hand():
    p, thr, util, rsrp, sinr, cqi = _toy()
    k = kpi.cell_kpis(p, thr, util, rsrp, sinr, cqi, period_s=60.0, coverage_temperature_db=None)
    assert list(k) == list(TARGET_COLUMNS)
    chex.assert_shape(list(k.values()), (2,))
    np.testing.assert_allclose(k["dl_throughput_mbps"], [6.0, 30.0])
    np.testing.assert_allclose(k["cell_throughput_mbps"], [18.0, 30.0])
    np.testing.assert_allclose(k["traffic_volume_mb"], [18.0 * 60 / 8, 30.0 * 60 / 8])
    np.testing.assert_allclose(k["mean_rsrp_dbm"], [-305.0 / 3, -105.0], rtol=1e-6)
    np.testing.assert_allclose(k["mean_sinr_db"], [4.0, 6.0])
    np.testing.assert_allclose(k["mean_cqi"], [20.0 / 3, 9.0], rtol=1e-6)
    np.testing.assert_allclose(k["coverage"], [2.0 / 3, 1.0], rtol=1e-6)  # -115 < -110
    np.testing.assert_allclose(k["prb_utilization"], util)
    # 5th percentile of (2, 4, 12) by Hazen: below the first position -> the minimum
    np.testing.assert_allclose(
        k["cell_edge_throughput_mbps"], [np.quantile([2.0, 4.0, 12.0], 0.05, method="hazen"), 30.0]
    )
    pm = kpi.pm_counters(p, thr, util, rsrp, sinr, cqi)
    np.testing.assert_allclose(pm["active_ues"], [3.0, 1.0])


def test_cell_kpis_soft_empty_and_errors():
    p, thr, util, rsrp, sinr, cqi = _toy()
    p3 = jnp.concatenate([p, jnp.zeros((4, 1))], axis=1)
    rsrp3 = jnp.concatenate([rsrp, jnp.full((4, 1), -140.0)], axis=1)
    k = kpi.cell_kpis(p3, thr, jnp.append(util, 0.0), rsrp3, sinr, cqi)
    assert np.isnan(k["dl_throughput_mbps"][2]) and np.isnan(k["coverage"][2])
    assert k["cell_throughput_mbps"][2] == 0.0
    assert np.isfinite(k["dl_throughput_mbps"][:2]).all()
    # presence weight 0 removes a UE
    k2 = kpi.cell_kpis(p, thr, util, rsrp, sinr, cqi, weight=jnp.array([1.0, 1.0, 0.0, 1.0]))
    np.testing.assert_allclose(k2["dl_throughput_mbps"][0], 3.0)
    with pytest.raises(ValueError, match="serving_prob"):
        kpi.cell_kpis(p[0], thr, util, rsrp, sinr, cqi)
    with pytest.raises(ValueError, match="rsrp_dbm"):
        kpi.cell_kpis(p, thr, util, rsrp[:, :1].T, sinr, cqi)
    with pytest.raises(ValueError, match="prb_utilization"):
        kpi.cell_kpis(p, thr, util[:1], rsrp, sinr, cqi)


def test_kpis_grad_jit_vmap():
    p, thr, util, rsrp, sinr, cqi = _toy()
    logits = jnp.log(p + 0.1)

    def f(lg, t, r):
        q = jax.nn.softmax(lg, axis=1)
        k = kpi.cell_kpis(q, t, util, r, sinr, cqi, quantile_temperature=0.5)
        return (
            jnp.sum(k["dl_throughput_mbps"])
            + jnp.sum(k["coverage"])
            + jnp.sum(k["cell_edge_throughput_mbps"])
        )

    fj = jax.jit(f)
    check_grads(fj, (logits, thr, rsrp), order=1, modes=["rev"], atol=5e-2, rtol=5e-2, eps=1e-3)
    batched = jax.jit(jax.vmap(lambda t: kpi.cell_kpis(p, t, util, rsrp, sinr, cqi)))(
        jnp.stack([thr, 2 * thr])
    )
    np.testing.assert_allclose(batched["cell_throughput_mbps"][1], [36.0, 60.0])
    np.testing.assert_allclose(
        kpi.total_tx_power_w(jnp.array([46.0, 43.0])), 10**1.6 + 10**1.3, rtol=1e-5
    )
    g = jax.grad(lambda r: jnp.sum(kpi.coverage_indicator(r)))(jnp.array([-110.0]))
    np.testing.assert_allclose(g, 0.25, rtol=1e-5)  # sigmoid'(0) / T, T = 1 dB


def test_period_kpis_pool_the_ues_of_every_snapshot():
    """A period's per-UE KPI is the mean over all UEs served in it (pooled by hand here);
    counters are plain means; an empty snapshot adds nothing; a never-served cell is NaN."""
    from dtwin.kpi import period_kpis

    # two cells, three snapshots; UE throughputs per (snapshot, cell)
    ues = [[[10.0, 20.0], [5.0]], [[30.0], []], [[], []]]
    thr = np.full((3, 2), np.nan)
    n = np.zeros((3, 2))
    for s, row in enumerate(ues):
        for c, u in enumerate(row):
            n[s, c] = len(u)
            if u:
                thr[s, c] = np.mean(u)
    vol = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    out = period_kpis({"dl_throughput_mbps": thr, "traffic_volume_mb": vol}, n)
    np.testing.assert_allclose(out["dl_throughput_mbps"][0], np.mean([10.0, 20.0, 30.0]))
    np.testing.assert_allclose(out["dl_throughput_mbps"][1], 5.0)
    np.testing.assert_allclose(out["traffic_volume_mb"], vol.mean(axis=0))
    none = period_kpis({"coverage": np.full((2, 1), np.nan)}, np.zeros((2, 1)))
    assert np.isnan(none["coverage"][0])


def test_period_kpis_snapshot_weight_counts_as_copies():
    """An integer snapshot weight k is the same as k copies of the snapshot (both the UE-weighted
    KPIs and the plain-mean counters); a weight of the wrong shape is an error."""
    from dtwin.kpi import period_kpis

    rng = np.random.default_rng(0)
    thr = rng.uniform(5, 50, (4, 3))
    thr[1, 2] = np.nan  # a cell that served nobody in one snapshot
    n = rng.integers(0, 5, (4, 3)).astype(float)
    n[1, 2] = 0.0
    vol = rng.uniform(0, 9, (4, 3))
    k = np.array([1, 3, 0, 2])
    got = period_kpis({"dl_throughput_mbps": thr, "traffic_volume_mb": vol}, n, k)
    rep = np.repeat(np.arange(4), k)
    want = period_kpis({"dl_throughput_mbps": thr[rep], "traffic_volume_mb": vol[rep]}, n[rep])
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="snapshot_weight"):
        period_kpis({"traffic_volume_mb": vol}, n, np.ones(3))
