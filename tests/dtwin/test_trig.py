"""Tests of dtwin._trig (polynomial sin/cos/arctan) and dtwin._cumsum against NumPy (float64)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin import _trig
from dtwin._cumsum import cumsum_last


def test_sin_cos_match_numpy():
    x = np.linspace(-40.0, 40.0, 400_001).astype(np.float32)
    s, c = _trig.sin_cos(x)
    chex.assert_type(s, jnp.float32)
    np.testing.assert_allclose(np.asarray(s), np.sin(x.astype(np.float64)), atol=2e-7)
    np.testing.assert_allclose(np.asarray(c), np.cos(x.astype(np.float64)), atol=2e-7)
    np.testing.assert_array_equal(np.asarray(_trig.cos(x)), np.asarray(c))
    np.testing.assert_array_equal(np.asarray(_trig.sin(x)), np.asarray(s))


def test_arctan_and_atan2_match_numpy():
    t = np.concatenate(
        [np.linspace(-60, 60, 200_001), np.logspace(-9, 9, 2001), -np.logspace(-9, 9, 2001)]
    ).astype(np.float32)
    ref = np.arctan(t.astype(np.float64))
    np.testing.assert_allclose(np.asarray(_trig.arctan(t)), ref, atol=3e-7, rtol=3e-7)
    np.testing.assert_allclose(
        np.asarray(_trig.arctan(jnp.array([np.inf, -np.inf, 0.0]))), [np.pi / 2, -np.pi / 2, 0]
    )
    xy = np.random.default_rng(0).normal(size=(2, 100_000)).astype(np.float32)
    want = np.degrees(np.arctan2(xy[1].astype(np.float64), xy[0]))
    np.testing.assert_allclose(np.asarray(_trig.atan2_deg(xy[1], xy[0])), want, atol=3e-5)
    # axes and the (-180, 180] convention
    got = _trig.atan2_deg(
        jnp.array([0.0, 1.0, 0.0, -1.0, 0.0]), jnp.array([1.0, 0.0, -1.0, 0.0, 0.0])
    )
    np.testing.assert_allclose(np.asarray(got), [0.0, 90.0, 180.0, -90.0, 0.0])


def test_wrap_angle_matches_mod_form():
    a = np.linspace(-1000, 1000, 200_001).astype(np.float32)
    want = 180.0 - np.mod(180.0 - a.astype(np.float64), 360.0)
    np.testing.assert_allclose(np.asarray(_trig.wrap_angle_deg(a)), want, atol=1e-4)
    np.testing.assert_allclose(np.asarray(_trig.wrap_angle_deg(jnp.array([180.0, -180.0]))), 180.0)


@pytest.mark.parametrize("fn", [_trig.sin, _trig.cos, _trig.arctan])
def test_gradients(fn):
    x = jnp.linspace(-7.0, 7.0, 57)
    check_grads(fn, (x,), order=1, modes=["fwd", "rev"], atol=1e-2, rtol=1e-2)
    g = jax.vmap(jax.grad(fn))(x)
    want = {
        _trig.sin: jnp.cos,
        _trig.cos: lambda v: -jnp.sin(v),
        _trig.arctan: lambda v: 1 / (1 + v * v),
    }
    np.testing.assert_allclose(np.asarray(g), np.asarray(want[fn](x)), atol=2e-6)
    assert np.isfinite(float(jax.grad(_trig.arctan)(jnp.inf)))
    check_grads(
        lambda y: _trig.atan2_deg(y, 0.3 - y), (x,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2
    )


@pytest.mark.parametrize("n", [1, 5, 63, 64, 570, 1000])
def test_cumsum_last_matches_cumsum(n):
    x = jax.random.normal(jax.random.PRNGKey(n), (3, 4, n))
    got = jax.jit(cumsum_last)(x)
    chex.assert_shape(got, x.shape)
    want = np.cumsum(np.asarray(x, np.float64), axis=-1)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5 * np.sqrt(n), rtol=1e-5)
    g = jax.grad(lambda v: jnp.sum(cumsum_last(v) * jnp.arange(n)))(x[0, 0])
    np.testing.assert_allclose(np.asarray(g), np.cumsum(np.arange(n)[::-1])[::-1], rtol=1e-5)
