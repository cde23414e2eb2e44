"""Metrics against closed forms and scipy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from sim2real import auc, domain_similarity_pct, mae, mape, response_fidelity, spearman


def test_mape_mae_closed_form():
    true = jnp.array([100.0, 50.0, 20.0, 10.0])
    pred = jnp.array([110.0, 45.0, 20.0, 15.0])
    # |10|/100 + |5|/50 + 0 + |5|/10 = 0.1 + 0.1 + 0 + 0.5 -> mean 0.175
    np.testing.assert_allclose(mape(pred, true), 17.5, rtol=1e-6)
    np.testing.assert_allclose(mae(pred, true), 5.0, rtol=1e-6)
    mask = jnp.array([True, True, False, False])
    np.testing.assert_allclose(mape(pred, true, mask), 10.0, rtol=1e-6)
    np.testing.assert_allclose(mae(pred, true, mask), 7.5, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(mape)(pred, true), 17.5, rtol=1e-6)
    g = jax.grad(lambda p: mae(p, true))(pred)
    np.testing.assert_allclose(g[jnp.array([0, 1, 3])], [0.25, -0.25, 0.25])  # sign / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, 17))
    y = x + rng.normal(size=(5, 17))
    x[:, :4] = np.round(x[:, :4])  # ties
    y[:, 3:8] = 1.0
    ours = np.asarray(spearman(jnp.asarray(x), jnp.asarray(y)))
    ref = [stats.spearmanr(x[i], y[i]).statistic for i in range(5)]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    v = jax.vmap(spearman)(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(v, ref, rtol=1e-5, atol=1e-6)


def test_response_fidelity():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(9, 6))
    pred = 2.0 * true + 1.0  # monotone: perfect ranking and signs
    rf = response_fidelity(pred, true, default_index=0)
    np.testing.assert_allclose(rf.spearman, 1.0, rtol=1e-6)
    np.testing.assert_allclose(rf.sign_accuracy, 1.0)
    rf = response_fidelity(-pred, true, default_index=0)
    np.testing.assert_allclose(rf.spearman, -1.0, rtol=1e-6)
    np.testing.assert_allclose(rf.sign_accuracy, 0.0)
    # sign accuracy closed form on one cell
    t = jnp.array([[0.0], [1.0], [-1.0], [2.0], [-3.0]])
    p = jnp.array([[5.0], [6.0], [6.0], [4.0], [1.0]])  # changes +1, +1, -1, -4 vs true +,-,+,-
    rf = response_fidelity(p, t, default_index=0)
    np.testing.assert_allclose(rf.sign_accuracy, [0.5])
    np.testing.assert_allclose(
        rf.spearman, [stats.spearmanr(p[:, 0], t[:, 0]).statistic], rtol=1e-6
    )
    with pytest.raises(ValueError, match="candidates, cells"):
        response_fidelity(p[:, 0], t[:, 0])


def test_auc_matches_mann_whitney():
    rng = np.random.default_rng(3)
    s = rng.normal(size=60)
    s[:10] = 0.0  # ties
    lab = rng.random(60) < 0.4
    s = s + lab
    u = stats.mannwhitneyu(s[lab], s[~lab]).statistic
    np.testing.assert_allclose(auc(s, lab), u / (lab.sum() * (~lab).sum()), rtol=1e-6)


def test_domain_similarity():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 3))
    same = domain_similarity_pct(jax.random.key(0), a, rng.normal(size=(400, 3)))
    shifted = domain_similarity_pct(jax.random.key(0), a, rng.normal(size=(400, 3)) + [4.0, 0, 0])
    scaled = domain_similarity_pct(jax.random.key(0), a, 3.0 * rng.normal(size=(400, 3)))
    assert float(same) > 85.0
    assert float(shifted) < 5.0
    assert float(scaled) < 40.0  # variance change caught by the quadratic features
    with pytest.raises(ValueError, match="equal d"):
        domain_similarity_pct(jax.random.key(0), a, a[:, :2])


def test_domain_features_twin_vs_commercial(topo):
    from sim2real import domain_features

    from .conftest import make_batch

    rng = np.random.default_rng(1)
    twin = make_batch(rng, topo, 16, commercial=False, cm_mode="local")
    twin2 = make_batch(rng, topo, 16, commercial=False, cm_mode="local")
    comm = make_batch(rng, topo, 16, commercial=True, cm_mode="local")
    fa, fb, fc = domain_features(twin), domain_features(twin2), domain_features(comm)
    assert fa.shape == (16 * 21, 4 + 1)
    key = jax.random.key(0)
    assert float(domain_similarity_pct(key, fa, fb)) > float(domain_similarity_pct(key, fa, fc))


def test_rankdata_matches_scipy_with_ties_and_scales():
    """Average ranks as scipy.stats.rankdata (ties included), batched over leading axes, and
    linear memory: 200k values (a pairwise version would need 160 GB)."""
    import scipy.stats

    from sim2real.metrics import auc, rankdata

    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, size=(3, 50)).astype(np.float32)  # many ties
    np.testing.assert_allclose(rankdata(x), scipy.stats.rankdata(x, axis=-1))
    big = rng.normal(size=200_000).astype(np.float32)
    r = np.asarray(rankdata(big))
    np.testing.assert_allclose(np.sort(r), np.arange(1, big.size + 1), rtol=0, atol=0.5)
    y = rng.random(200_000) < 0.5
    ref = scipy.stats.mannwhitneyu(big[y], big[~y]).statistic / (y.sum() * (~y).sum())
    np.testing.assert_allclose(float(auc(big, y)), ref, rtol=1e-4)
