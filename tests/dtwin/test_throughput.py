"""Tests of dtwin.throughput against TS 38.214 tables, TR 36.942 closed forms, hand-worked
scheduler cases and Sionna 2.2's PHY abstraction with inner-loop link adaptation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from dtwin import throughput as tp

# ----------------------------------------------------------------------------- CQI tables
# Rows typed in from TS 38.214 V17 Table 5.2.2.1-2 (CQI Table 1) and 5.2.2.1-3 (CQI Table 2):
# (CQI, modulation order, code rate x 1024, efficiency).
SPEC_ROWS_64 = [
    (1, 2, 78, 0.1523),
    (6, 2, 602, 1.1758),
    (7, 4, 378, 1.4766),
    (10, 6, 466, 2.7305),
    (15, 6, 948, 5.5547),
]
SPEC_ROWS_256 = [
    (1, 2, 78, 0.1523),
    (3, 2, 449, 0.8770),
    (4, 4, 378, 1.4766),
    (7, 6, 466, 2.7305),
    (12, 8, 711, 5.5547),
    (15, 8, 948, 7.4063),
]


@pytest.mark.parametrize("table,rows", [("cqi64", SPEC_ROWS_64), ("cqi256", SPEC_ROWS_256)])
def test_cqi_table_matches_spec(table, rows):
    qm, rate, se = tp.cqi_table(table)
    chex.assert_shape((qm, rate, se), (16,))
    for cqi, q, r, e in rows:
        assert qm[cqi] == q and rate[cqi] == r
        np.testing.assert_allclose(se[cqi], e, atol=1e-4)
    # efficiency = Qm * R / 1024 to the 4 decimals printed in the spec
    np.testing.assert_allclose(se[1:], qm[1:] * rate[1:] / 1024, atol=6e-5)


@pytest.mark.parametrize("table", ["cqi64", "cqi256"])
def test_thresholds_increasing(table):
    assert np.all(np.diff(tp.CQI_SINR_THRESHOLD_DB[table]) > 0)
    assert tp.CQI_SINR_THRESHOLD_DB[table].shape == (15,)


def test_cqi_from_sinr_edges():
    th = tp.CQI_SINR_THRESHOLD_DB["cqi256"]
    s = jnp.asarray(np.concatenate([[-30.0], th, th - 0.01, [60.0]]), jnp.float32)
    c = tp.cqi_from_sinr(s, "cqi256")
    chex.assert_type(c, jnp.int32)
    assert c[0] == 0 and c[-1] == 15
    np.testing.assert_array_equal(c[1:16], np.arange(1, 16))
    np.testing.assert_array_equal(c[16:31], np.arange(0, 15))


def test_unknown_table_raises():
    with pytest.raises(ValueError, match="unknown CQI table"):
        tp.cqi_se(jnp.zeros(3), "cqi1024")


_se_jit = jax.jit(tp.spectral_efficiency, static_argnames=("table", "hard"))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-20, 40, allow_nan=False, width=32), min_size=16, max_size=16),
    st.sampled_from(["cqi64", "cqi256", "shannon"]),
    st.booleans(),
)
def test_se_monotone(sinrs, table, hard):
    s = jnp.sort(jnp.asarray(sinrs, jnp.float32))
    se = _se_jit(s, table, hard=hard)
    assert np.all(np.diff(np.asarray(se)) >= -1e-6)
    assert np.all(np.asarray(se) >= 0)


@pytest.mark.parametrize("table", ["cqi64", "cqi256"])
def test_smooth_matches_hard_away_from_steps(table):
    th = tp.CQI_SINR_THRESHOLD_DB[table]
    s = np.linspace(-15, 35, 2001)
    dist = np.min(np.abs(s[:, None] - th[None, :]), axis=1)
    far = s[dist > 1.5]
    T = 0.25
    hard = tp.cqi_se(far, table)
    smooth = tp.cqi_se_smooth(far, table, T)
    # bound: 15 steps of at most 0.7 bit/s/Hz times sigmoid(-1.5/T)
    bound = 15 * 0.7 / (1 + np.exp(1.5 / T))
    assert np.max(np.abs(hard - smooth)) < bound
    # and the linear interpolation passes through the table points
    np.testing.assert_allclose(tp.cqi_se_linear(th, table), tp.cqi_table(table)[2][1:], atol=1e-5)


def test_shannon_closed_form():
    s_db = np.array([-20.0, -10.5, -5.0, 0.0, 10.0, 20.0, 30.0])
    expect = np.where(s_db < -10, 0.0, np.minimum(0.6 * np.log2(1 + 10 ** (s_db / 10)), 4.4))
    np.testing.assert_allclose(tp.shannon_se(s_db), expect, rtol=1e-5)
    # 0 dB -> 0.6 bit/s/Hz exactly; cap 4.4
    assert abs(float(tp.shannon_se(0.0)) - 0.6) < 1e-6
    np.testing.assert_allclose(
        tp.shannon_se(5.0, alpha=0.75, se_max=10.0), 0.75 * np.log2(1 + 10**0.5), rtol=1e-6
    )
    smooth = tp.shannon_se_smooth(s_db, temperature_db=0.1)
    mid = (s_db > -9) & (s_db < 15)
    np.testing.assert_allclose(np.asarray(smooth)[mid], expect[mid], rtol=1e-3)
    assert np.all(np.asarray(tp.shannon_se_smooth(np.linspace(-20, 60, 50))) <= 4.4 + 1e-6)


def test_se_grads():
    s = jnp.array([-3.3, 2.1, 7.7, 14.2, 21.9], jnp.float32)
    for f in (
        lambda x: tp.cqi_se_smooth(x, "cqi256", 1.0),
        lambda x: tp.shannon_se_smooth(x, temperature_db=1.0),
        lambda x: tp.cqi_from_sinr_soft(x, "cqi64", 1.0),
    ):
        check_grads(jax.jit(f), (s,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)
        g = jax.jit(jax.vmap(jax.grad(f)))(s)
        assert np.all(np.asarray(g) > 0)
    jitted = jax.jit(tp.spectral_efficiency, static_argnames=("table", "hard"))
    chex.assert_trees_all_close(jitted(s, "cqi256"), tp.spectral_efficiency(s, "cqi256"), atol=1e-6)
    chex.assert_type(jitted(s, "shannon", hard=True), jnp.float32)


def test_overhead():
    assert tp.DL_OVERHEAD_FR1 == 0.14 and tp.DL_OVERHEAD_FR2 == 0.18
    # 2 PDCCH symbols, 12 DMRS REs, nothing else: 1 - (144 - 12) / 168
    assert abs(tp.pdsch_overhead(2, 12, 0.0) - (1 - 132 / 168)) < 1e-12
    with pytest.raises(ValueError, match="pdcch_symbols"):
        tp.pdsch_overhead(pdcch_symbols=14)


# ----------------------------------------------------------------------------- PF scheduler
def test_pf_full_buffer_equal_share():
    n, bw, se, oh = 4, 20e6, 3.0, 0.1
    p = jnp.ones((n, 1))
    thr, util = tp.pf_throughput_mbps(jnp.full(n, se), p, None, bw, oh)
    chex.assert_shape(thr, (n,))
    chex.assert_shape(util, (1,))
    np.testing.assert_allclose(thr, bw * se * (1 - oh) / n / 1e6, rtol=1e-6)
    np.testing.assert_allclose(util, 1.0)
    # same through the finite-buffer path with infinite demand
    thr2, util2 = tp.pf_throughput_mbps(jnp.full(n, se), p, jnp.full(n, jnp.inf), bw, oh)
    np.testing.assert_allclose(thr2, thr, rtol=1e-6)
    np.testing.assert_allclose(util2, 1.0)


def test_pf_demand_limited_by_hand():
    # One cell, B = 10 MHz, no overhead. SE = (1, 2, 4) -> peak rates (10, 20, 40) Mbps.
    se = jnp.array([1.0, 2.0, 4.0])
    p = jnp.ones((3, 1))
    # Demands (1, 2, 100): time needs (0.1, 0.1, >1). UE 3 gets the remaining 0.8 -> 32 Mbps.
    thr, util = tp.pf_throughput_mbps(se, p, jnp.array([1.0, 2.0, 100.0]), 10e6, 0.0)
    np.testing.assert_allclose(thr, [1.0, 2.0, 32.0], rtol=1e-5)
    np.testing.assert_allclose(util, [1.0], rtol=1e-6)
    # Demands (5, 8, 16): needs (0.5, 0.4, 0.4) sum 1.3. Level lam: 3 lam = 1 -> 1/3 < 0.4,
    # so all are capped at 1/3: throughputs (10/3, 20/3, 40/3).
    thr, util = tp.pf_throughput_mbps(se, p, jnp.array([5.0, 8.0, 16.0]), 10e6, 0.0)
    np.testing.assert_allclose(thr, [10 / 3, 20 / 3, 40 / 3], rtol=1e-5)
    # Demands (1, 8, 16): needs (0.1, 0.4, 0.4): lam = 0.45 > 0.4 -> all satisfied?
    # 0.1 + 0.4 + 0.4 = 0.9 <= 1: everyone served, utilisation 0.9.
    thr, util = tp.pf_throughput_mbps(se, p, jnp.array([1.0, 8.0, 16.0]), 10e6, 0.0)
    np.testing.assert_allclose(thr, [1.0, 8.0, 16.0], rtol=1e-5)
    np.testing.assert_allclose(util, [0.9], rtol=1e-5)
    # Demands (1, 12, 32): needs (0.1, 0.6, 0.8): lam = 0.45 -> (1, 9, 18) Mbps.
    thr, util = tp.pf_throughput_mbps(se, p, jnp.array([1.0, 12.0, 32.0]), 10e6, 0.0)
    np.testing.assert_allclose(thr, [1.0, 9.0, 18.0], rtol=1e-5)


def test_pf_soft_association_and_cells():
    # Two cells; UE0 split 50/50 alone -> gets its full peak rate, each cell half used.
    p = jnp.array([[0.5, 0.5]])
    thr, util = tp.pf_throughput_mbps(jnp.array([2.0]), p, None, 10e6, 0.0)
    np.testing.assert_allclose(thr, [20.0], rtol=1e-6)
    np.testing.assert_allclose(util, [0.5, 0.5], rtol=1e-6)
    # Hard association equals soft with one-hot; per-cell bandwidth.
    p = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    thr, util = tp.pf_throughput_mbps(
        jnp.array([1.0, 1.0, 1.0]), p, None, jnp.array([10e6, 20e6]), 0.0
    )
    np.testing.assert_allclose(thr, [5.0, 5.0, 20.0], rtol=1e-6)
    np.testing.assert_allclose(util, [1.0, 1.0])
    with pytest.raises(ValueError, match="serving_prob"):
        tp.pf_throughput_mbps(jnp.ones(3), jnp.ones(3))
    with pytest.raises(ValueError, match="demand_mbps"):
        tp.pf_throughput_mbps(jnp.ones(3), p, jnp.ones(2))


@pytest.mark.parametrize("demand", ["full", "light", "heavy"])
def test_pf_hard_equals_dense_one_hot(demand):
    """The sorted per-cell fast path equals pf_throughput_mbps on one-hot masses (weights 0, 1
    and fractional; some zero SE, infinite demands, empty cells), under jit + vmap."""
    rng = np.random.default_rng({"full": 0, "light": 1, "heavy": 2}[demand])
    b, n, c = 6, 60, 9
    se = rng.uniform(0, 7, (b, n)) * (rng.uniform(size=(b, n)) > 0.1)
    cell = rng.integers(0, c - 1, (b, n))  # the last cell serves no UE
    w = rng.choice([0.0, 1.0, 0.4], (b, n))
    dem = None
    if demand != "full":
        dem = rng.uniform(0, 30 if demand == "light" else 300, (b, n))
        dem = jnp.asarray(np.where(rng.uniform(size=(b, n)) < 0.2, np.inf, dem), jnp.float32)
    se, cell, w = jnp.asarray(se, jnp.float32), jnp.asarray(cell), jnp.asarray(w, jnp.float32)
    p = jax.nn.one_hot(cell, c) * w[..., None]

    def dense(se, p, d):
        return tp.pf_throughput_mbps(se, p, d, 20e6, 0.14)

    def hard(se, cell, w, d):
        return tp.pf_throughput_hard_mbps(se, cell, w, c, d, 20e6, 0.14)

    thr, util = jax.jit(jax.vmap(dense, in_axes=(0, 0, None if dem is None else 0)))(se, p, dem)
    thr_h, util_h = jax.jit(jax.vmap(hard, in_axes=(0, 0, 0, None if dem is None else 0)))(
        se, cell, w, dem
    )
    chex.assert_shape(thr_h, (b, n))
    chex.assert_shape(util_h, (b, c))
    np.testing.assert_allclose(thr_h, thr, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(util_h, util, atol=1e-6)
    np.testing.assert_allclose(util_h[:, -1], 0.0)


def test_pf_jit_vmap_grad():
    key = jax.random.key(0)
    k1, k2, k3 = jax.random.split(key, 3)
    logits = jax.random.normal(k1, (2, 5, 3))
    p = jax.nn.softmax(logits, axis=-1)
    se = jax.random.uniform(k2, (2, 5), minval=0.5, maxval=5.0)
    d = jax.random.uniform(k3, (2, 5), minval=1.0, maxval=40.0)
    f = jax.jit(jax.vmap(lambda s, q, dd: tp.pf_throughput_mbps(s, q, dd, 10e6, 0.14)))
    thr, util = f(se, p, d)
    chex.assert_shape(thr, (2, 5))
    chex.assert_shape(util, (2, 3))
    assert np.all(np.asarray(util) <= 1 + 1e-6) and np.all(np.asarray(util) >= 0)
    # conservation: throughput never exceeds demand
    assert np.all(np.asarray(thr) <= np.asarray(d) + 1e-4)

    def loss(s, q, dd):
        return jnp.sum(tp.pf_throughput_mbps(s, q, dd, 10e6, 0.14)[0] ** 0.5)

    check_grads(
        jax.jit(loss), (se[0], p[0], d[0]), order=1, modes=["rev"], atol=5e-2, rtol=5e-2, eps=1e-3
    )
    check_grads(
        jax.jit(lambda s, q: jnp.sum(jnp.log(tp.pf_throughput_mbps(s, q, None, 10e6, 0.14)[0]))),
        (se[0], p[0]),
        order=1,
        modes=["rev"],
        atol=5e-2,
        rtol=5e-2,
        eps=1e-3,
    )


# ----------------------------------------------------------------------------- Sionna reference
@pytest.fixture(scope="module")
def sionna_phy():
    pytest.importorskip("torch")
    sys_ = pytest.importorskip("sionna.sys")
    return sys_.PHYAbstraction()


def _sionna_illa_se(phy, sinr_db: np.ndarray, mcs_table: int) -> np.ndarray:
    import sionna.sys as sys_
    import torch
    from sionna.phy.nr.utils import MCSDecoderNR

    illa = sys_.InnerLoopLinkAdaptation(phy, bler_target=0.1)
    s = torch.tensor(10 ** (sinr_db / 10), dtype=torch.float32)
    nre = torch.full(s.shape, 12 * 12 * 50, dtype=torch.int32)  # 50 PRB x 12 data symbols
    kw = dict(num_allocated_re=nre, mcs_table_index=mcs_table, mcs_category=1)  # 1 = PDSCH
    mcs = illa(sinr_eff=s, **kw)
    tbler = phy(mcs, sinr_eff=s, check_mcs_index_validity=False, **kw)[3]
    qm, r = MCSDecoderNR()(mcs, torch.full_like(mcs, mcs_table), torch.ones_like(mcs))
    return (qm * r).numpy() * (1 - tbler.numpy())


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("table,mcs_table", [("cqi64", 1), ("cqi256", 2)])
def test_se_vs_sionna_link_adaptation(sionna_phy, table, mcs_table):
    """SE x (1 - TBLER) of Sionna's ILLA-selected MCS vs our CQI mapping, -5..25 dB."""
    s = np.arange(-5.0, 25.01, 0.25)
    ref = _sionna_illa_se(sionna_phy, s, mcs_table)
    hard = np.asarray(tp.cqi_se(s, table))
    smooth = np.asarray(tp.cqi_se_smooth(s, table, 0.5))
    gap_hard, gap_smooth = np.mean(np.abs(hard - ref)), np.mean(np.abs(smooth - ref))
    print(
        f"{table}: mean |gap| hard {gap_hard:.3f}, smooth {gap_smooth:.3f}, "
        f"max {np.max(np.abs(hard - ref)):.3f}, mean signed {np.mean(hard - ref):.3f}"
    )
    assert gap_hard < 0.35, gap_hard
    assert gap_smooth < 0.35, gap_smooth
    assert np.max(np.abs(hard - ref)) < 1.2


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("table,mcs_table", [("cqi64", 1), ("cqi256", 2)])
def test_thresholds_rederived_from_sionna(sionna_phy, table, mcs_table):
    """Re-derive CQI_SINR_THRESHOLD_DB from Sionna's BLER tables (see module docstring)."""
    import torch
    from sionna.phy.nr.utils import MCSDecoderNR

    phy = sionna_phy
    dec = MCSDecoderNR()
    sdb = np.arange(-8.0, 30.0, 0.05)
    s = torch.tensor(10 ** (sdb / 10), dtype=torch.float32)
    n_mcs = 29
    s = s[None, :].expand(n_mcs, -1)
    nre = torch.full(s.shape, 12 * 12 * 100, dtype=torch.int32)
    mi = torch.arange(n_mcs, dtype=torch.int32)[:, None].expand(-1, sdb.size)
    bler_all = phy(
        mi,
        sinr_eff=s,
        num_allocated_re=nre,
        mcs_table_index=mcs_table,
        mcs_category=1,
        check_mcs_index_validity=False,
    )[4].numpy()
    rows = []
    for m in range(n_mcs):
        bler = bler_all[m]
        if not np.isfinite(bler).all() or not (bler <= 0.1).any():
            continue
        qm, r = dec(torch.tensor([m]), torch.tensor([mcs_table]), torch.tensor([1]))
        rows.append((float(qm), float(qm * r), sdb[np.argmax(bler <= 0.1)]))
    rows = np.array(rows)
    gap = rows[0, 2] - 10 * np.log10(2 ** rows[0, 1] - 1)
    qm_c, _, se_c = (np.asarray(a) for a in tp.cqi_table(table))
    derived = []
    for q, e in zip(qm_c[1:], se_c[1:], strict=True):
        sel = rows[rows[:, 0] == q]
        x, y = sel[:, 1], sel[:, 2]
        if e < rows[0, 1]:
            v = 10 * np.log10(2**e - 1) + gap
        elif e > x[-1]:
            v = y[-1] + (e - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
        else:
            v = np.interp(e, x, y)
        derived.append(v)
    np.testing.assert_allclose(tp.CQI_SINR_THRESHOLD_DB[table], derived, atol=0.1)
