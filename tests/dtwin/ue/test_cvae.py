import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin.ue.context import Context
from dtwin.ue.cvae import (
    CVAE,
    N_UE_FEATURES,
    decode_features,
    elbo,
    encode_ues,
    fit_cvae,
    log_likelihood_iw,
    mean_negative_elbo,
    sample,
    sample_features,
)

CTX = 3


def _toy(key, n=3000):
    """x | c: means 2 c0 - 1 (sd 0.3) and -c0 (sd 0.5); indoor ~ Bern(0.2 + 0.6 c0)."""
    k1, k2, k3 = jr.split(key, 3)
    c0 = jr.bernoulli(k1, 0.5, (n,)).astype(jnp.float32)
    c = jnp.stack([c0, 1 - c0, jnp.zeros(n)], 1)
    noise = jr.normal(k2, (n, 6))
    g = jnp.stack(
        [2 * c0 - 1 + 0.3 * noise[:, 0], -c0 + 0.5 * noise[:, 1]]
        + [0.2 * noise[:, i] for i in range(2, 6)],
        1,
    )
    indoor = jr.uniform(k3, (n,)) < 0.2 + 0.6 * c0
    return jnp.concatenate([g, indoor[:, None].astype(jnp.float32)], 1), c


@pytest.fixture(scope="module")
def trained():
    x, c = _toy(jr.key(0))
    model = CVAE(jr.key(1), latent_size=2, width=32, context_size=CTX)
    fitted, losses = fit_cvae(jr.key(2), model, x, c, steps=1200, batch_size=256)
    return model, fitted, losses, x, c


def test_elbo_decreases_and_approaches_entropy(trained):
    model, fitted, losses, x, c = trained
    before = mean_negative_elbo(jr.key(3), model, x, c)
    after = mean_negative_elbo(jr.key(3), fitted, x, c)
    assert after < before - 5.0
    assert float(jnp.mean(losses[-100:])) < float(jnp.mean(losses[:100]))
    # Closed-form entropy of the data (nats per UE): the ELBO is a bound, so -ELBO >= H - noise.
    h_gauss = lambda s: 0.5 * np.log(2 * np.pi * np.e * s**2)
    h_bern = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))
    entropy = h_gauss(0.3) + h_gauss(0.5) + 4 * h_gauss(0.2) + 0.5 * (h_bern(0.2) + h_bern(0.8))
    assert entropy - 0.15 < float(after) < entropy + 0.5
    iw = jnp.mean(
        jax.vmap(log_likelihood_iw, (0, None, 0, 0))(
            jr.split(jr.key(4), 500), fitted, x[:500], c[:500]
        )
    )
    assert -iw < entropy + 0.5


@pytest.mark.parametrize("c0", [0.0, 1.0])
def test_recovers_conditional_distribution(trained, c0):
    _, fitted, _, _, _ = trained
    ctx = jnp.array([c0, 1 - c0, 0.0])
    u, indoor = sample_features(jr.key(5), fitted, ctx, 4000, temperature=0.1)
    np.testing.assert_allclose(jnp.mean(u[:, 0]), 2 * c0 - 1, atol=0.1)
    np.testing.assert_allclose(jnp.std(u[:, 0]), 0.3, atol=0.08)
    np.testing.assert_allclose(jnp.mean(u[:, 1]), -c0, atol=0.1)
    np.testing.assert_allclose(jnp.mean(indoor > 0.5), 0.2 + 0.6 * c0, atol=0.06)


def test_encode_decode_roundtrip():
    d = jnp.array([0.1, 0.5, 0.9])
    x = encode_ues(
        d,
        jnp.array([-50.0, 0.0, 30.0]),
        jnp.array([1, 0, 1]),
        jnp.array([0.0, 3.0, 50.0]),
        jnp.array([10.0, -170.0, 90.0]),
        jnp.array([0.5, 2.0, 10.0]),
    )
    chex.assert_shape(x, (3, N_UE_FEATURES))
    b = decode_features(x[:, :6], x[:, 6], cell_range_m=110.0, min_distance_m=10.0)
    np.testing.assert_allclose(b.distance_2d_m, 10 + 100 * d, rtol=1e-4)
    np.testing.assert_allclose(b.angle_deg, [-50, 0, 30], atol=1e-3)
    np.testing.assert_allclose(b.speed_kmh, [0, 3, 50], atol=1e-3)
    np.testing.assert_allclose(b.heading_deg, [10, -170, 90], atol=1e-3)
    np.testing.assert_allclose(b.demand_mbps, [0.5, 2, 10], rtol=1e-4)


def test_sample_shapes_and_errors():
    model = CVAE(jr.key(0))
    ctx = Context("urban", 1000.0, 0.8, 9)
    b = jax.jit(lambda k: sample(k, model, ctx, 16))(jr.key(1))
    chex.assert_shape([b.distance_2d_m, b.angle_deg, b.speed_kmh, b.demand_mbps], (16,))
    chex.assert_type(b.distance_2d_m, jnp.float32)
    assert bool(jnp.all((b.distance_2d_m >= 10) & (b.distance_2d_m <= 500 / np.sqrt(3))))
    assert bool(jnp.all(jnp.abs(b.angle_deg) <= 60) & jnp.all(b.speed_kmh >= 0))
    # Same key, same result; a different key, a different draw.
    draw = jax.jit(lambda k: sample(k, model, ctx, 16))
    np.testing.assert_array_equal(draw(jr.key(1)).demand_mbps, b.demand_mbps)
    assert not np.allclose(draw(jr.key(2)).demand_mbps, b.demand_mbps)
    batched = jax.vmap(lambda k: sample(k, model, ctx.to_features(), 8, cell_range_m=300.0))(
        jr.split(jr.key(2), 3)
    )
    chex.assert_shape(batched.heading_deg, (3, 8))
    with pytest.raises(ValueError, match="cell_range_m"):
        sample(jr.key(0), model, ctx.to_features(), 8)
    with pytest.raises(ValueError, match="n_ues"):
        sample(jr.key(0), model, ctx, 0)
    with pytest.raises(ValueError, match="x must have shape"):
        fit_cvae(jr.key(0), model, jnp.zeros((4, 3)), jnp.zeros((4, 10)), steps=1)


def test_reparameterised_samples_have_gradients():
    model = CVAE(jr.key(0))
    ctx = Context("rural", 10.0, 0.5, 3)
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def f(p):
        b = sample(jr.key(7), eqx.combine(p, static), ctx, 32)
        return (
            jnp.mean(b.distance_2d_m)
            + jnp.mean(b.demand_mbps)
            + jnp.mean(b.indoor_prob)
            + jnp.mean(b.speed_kmh)
        )

    g = jax.grad(f)(params)
    leaves = jax.tree_util.tree_leaves(g.decoder)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)
    assert sum(float(jnp.sum(jnp.abs(leaf))) for leaf in leaves) > 0
    # Finite differences on the decoder's output bias.
    bias = model.decoder.layers[-1].bias

    def h(b):
        m = eqx.tree_at(lambda m: m.decoder.layers[-1].bias, model, b)
        s = sample(jr.key(7), m, ctx, 8)
        return (
            jnp.mean(s.distance_2d_m) / 100
            + jnp.mean(jnp.log(s.demand_mbps))
            + jnp.mean(s.indoor_prob)
        )

    check_grads(jax.jit(h), (bias,), order=1, modes=["rev"], eps=1e-2, atol=2e-2, rtol=2e-2)


def test_elbo_jit_vmap():
    model = CVAE(jr.key(0), context_size=CTX)
    x, c = _toy(jr.key(1), 5)
    e = eqx.filter_jit(jax.vmap(elbo, (None, None, 0, 0)))(jr.key(2), model, x, c)
    chex.assert_shape(e, (5,))
    assert bool(jnp.all(jnp.isfinite(e)))
