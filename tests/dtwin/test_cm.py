"""Tests of dtwin.cm: schema, validation errors, projection/rounding and their gradients."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA, CMParam, CMSchema

S = DEFAULT_CM_SCHEMA


def _cm(tilt, power, cio):
    return {
        "tilt_deg": jnp.asarray(tilt, jnp.float32),
        "tx_power_dbm": jnp.asarray(power, jnp.float32),
        "cio_db": jnp.asarray(cio, jnp.float32),
    }


def test_default_schema():
    assert S.names == ("tilt_deg", "tx_power_dbm", "cio_db")
    assert (S["tilt_deg"].low, S["tilt_deg"].high, S["tilt_deg"].step, S["tilt_deg"].default) == (
        0.0,
        15.0,
        1.0,
        6.0,
    )
    assert (S["tx_power_dbm"].low, S["tx_power_dbm"].high, S["tx_power_dbm"].default) == (
        30.0,
        49.0,
        46.0,
    )
    assert (S["cio_db"].low, S["cio_db"].high, S["cio_db"].default) == (-6.0, 6.0, 0.0)
    cm = S.default(5)
    chex.assert_shape(list(cm.values()), (5,))
    chex.assert_type(list(cm.values()), jnp.float32)
    np.testing.assert_array_equal(cm["tilt_deg"], 6.0)
    S.validate(cm, n_cells=5)


def test_extensible():
    s2 = S.add(CMParam("bandwidth_share", "-", 0.1, 1.0, 0.1, 1.0))
    assert s2.names[-1] == "bandwidth_share" and len(s2) == 4 and len(S) == 3
    assert "bandwidth_share" not in S
    assert s2.remove("cio_db").names == ("tilt_deg", "tx_power_dbm", "bandwidth_share")
    with pytest.raises(ValueError, match="duplicate"):
        S.add(CMParam("tilt_deg", "deg", 0, 1, 1, 0))
    with pytest.raises(ValueError, match="default"):
        CMParam("x", "-", 0.0, 1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="step"):
        CMParam("x", "-", 0.0, 1.0, 0.0, 0.5)
    with pytest.raises(KeyError, match="no parameter"):
        S["nope"]


@pytest.mark.parametrize(
    "cm,match",
    [
        ({**S.default(3), "azimuth_deg": jnp.zeros(3)}, "unknown parameter.*azimuth_deg"),
        ({"tilt_deg": jnp.zeros(3), "cio_db": jnp.zeros(3)}, "missing parameter.*tx_power_dbm"),
        (_cm([6, np.nan, 6], [46] * 3, [0] * 3), "'tilt_deg': non-finite value nan.*cell 1"),
        (_cm([6] * 3, [46, 46, np.inf], [0] * 3), "'tx_power_dbm': non-finite.*cell 2"),
        (_cm([6, 16, 6], [46] * 3, [0] * 3), "'tilt_deg': value 16.0 deg.*cell 1.*outside"),
        (_cm([6] * 3, [46] * 3, [0, 0, -7]), "'cio_db': value -7.0 dB.*cell 2"),
        (_cm([6] * 3, [46] * 2, [0] * 3), "'tx_power_dbm': shape"),
        (_cm(6.0, 46.0, 0.0), "scalar"),
    ],
)
def test_validate_errors(cm, match):
    with pytest.raises(ValueError, match=match):
        S.validate(cm)


def test_validate_n_cells_and_batch():
    with pytest.raises(ValueError, match="expected 4 cells"):
        S.validate(S.default(3), n_cells=4)
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), S.default(3))
    S.validate(batch, n_cells=3)
    bad = dict(batch, cio_db=batch["cio_db"].at[1, 2].set(9.0))
    with pytest.raises(ValueError, match=r"index \(1, 2\) \(cell 2\)"):
        S.validate(bad)


def test_project_and_round():
    cm = _cm([-1.0, 6.4, 6.5, 20.0], [29.0, 46.49, 46.51, 50.0], [-6.6, -0.5, 0.49, 6.2])
    pr = S.project(cm)
    np.testing.assert_allclose(pr["tilt_deg"], [0.0, 6.4, 6.5, 15.0])
    np.testing.assert_allclose(pr["cio_db"], [-6.0, -0.5, 0.49, 6.0], rtol=1e-6)
    r = S.round(cm)
    np.testing.assert_allclose(r["tilt_deg"], [0.0, 6.0, 7.0, 15.0])
    np.testing.assert_allclose(r["tx_power_dbm"], [30.0, 46.0, 47.0, 49.0])
    np.testing.assert_allclose(r["cio_db"], [-6.0, 0.0, 0.0, 6.0])
    S.validate(r)
    # grid origin is `low`, and the top grid point never exceeds `high`
    s = CMSchema((CMParam("x", "-", 0.5, 2.0, 0.4, 0.5),))
    np.testing.assert_allclose(
        s.round({"x": jnp.array([0.69, 0.71, 2.0])})["x"], [0.5, 0.9, 1.7], rtol=1e-6
    )


def test_round_ste_gradient_identity():
    cm = _cm([3.3, 7.8], [40.2, 44.9], [0.4, -2.6])
    fwd = S.round_ste(cm)
    chex.assert_trees_all_close(fwd, S.round(cm))

    def f(c):
        out = S.round_ste(c)
        return sum(jnp.sum(w * out[k]) for w, k in zip([1.0, 2.0, 3.0], S.names, strict=True))

    g = jax.jit(jax.grad(f))(cm)
    for w, k in zip([1.0, 2.0, 3.0], S.names, strict=True):
        np.testing.assert_allclose(g[k], w)
    # hard round has zero gradient
    g0 = jax.grad(lambda c: jnp.sum(S.round(c)["tilt_deg"]))(cm)
    np.testing.assert_allclose(g0["tilt_deg"], 0.0)


def test_relaxed_round():
    x = jnp.linspace(0.0, 15.0, 301)
    cm = _cm(x, jnp.full_like(x, 40.0), jnp.zeros_like(x))
    soft = S.relaxed_round(cm, temperature=0.02)["tilt_deg"]
    hard = S.round(cm)["tilt_deg"]
    frac = np.asarray(x) % 1.0
    away = np.abs(frac - 0.5) > 0.15
    np.testing.assert_allclose(np.asarray(soft)[away], np.asarray(hard)[away], atol=1e-3)
    assert np.all(np.diff(np.asarray(soft)) >= -1e-5)  # monotone and continuous
    assert np.max(np.abs(np.diff(np.asarray(S.relaxed_round(cm, 0.3)["tilt_deg"])))) < 0.2
    g = jax.vmap(jax.grad(lambda t: S.relaxed_round(_cm(t, 40.0, 0.0), 0.2)["tilt_deg"]))(
        jnp.array([2.5, 7.5])
    )
    assert np.all(np.asarray(g) > 1.0)  # steep in the middle of a step
    from jax.test_util import check_grads

    check_grads(
        lambda t: S.relaxed_round(_cm(t, 40.0, 0.0), 0.3)["tilt_deg"],
        (jnp.array([2.3, 7.6]),),
        order=1,
        modes=["rev"],
        atol=1e-2,
        rtol=1e-2,
        eps=1e-3,
    )


def test_unit_roundtrip_and_vector():
    cm = _cm([0.0, 15.0, 7.5], [30.0, 49.0, 39.5], [-6.0, 6.0, 0.0])
    u = S.to_unit(cm)
    np.testing.assert_allclose(u["tilt_deg"], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(u["tx_power_dbm"], [0.0, 1.0, 0.5])
    chex.assert_trees_all_close(S.from_unit(u), cm, atol=1e-5)
    g = jax.grad(lambda c: jnp.sum(S.to_unit(c)["tx_power_dbm"]))(cm)
    np.testing.assert_allclose(g["tx_power_dbm"], 1 / 19.0, rtol=1e-6)
    v = S.to_vector(cm)
    chex.assert_shape(v, (3, 3))
    chex.assert_trees_all_close(S.from_vector(v), cm)


def test_sampling():
    key = jax.random.key(0)
    cm = S.sample_uniform(key, 7, shape=(50,))
    chex.assert_shape(list(cm.values()), (50, 7))
    S.validate(cm, n_cells=7)
    chex.assert_trees_all_close(S.round(cm), cm)  # on the grid
    # covers the whole range
    assert float(cm["tilt_deg"].min()) == 0.0 and float(cm["tilt_deg"].max()) == 15.0
    # same key -> same sample
    chex.assert_trees_all_close(S.sample_uniform(key, 7, shape=(50,)), cm)
    base = S.default(7)
    loc = S.sample_local(key, base, max_steps=2, p_change=0.5, shape=(200,))
    S.validate(loc, n_cells=7)
    d = np.asarray(loc["tilt_deg"] - base["tilt_deg"])
    assert set(np.unique(d)) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert 0.35 < np.mean(d != 0) < 0.65
    # bounded at the edges: tx power default 46, +-2 steps never exceeds 49
    assert float(loc["tx_power_dbm"].max()) <= 48.0
    with pytest.raises(ValueError, match="max_steps"):
        S.sample_local(key, base, max_steps=0)
    with pytest.raises(ValueError, match="n_cells"):
        S.sample_local(key)
    u = S.sample_uniform(key, 3, on_grid=False)
    S.validate(u, n_cells=3)


def test_jit_vmap():
    cm = S.sample_uniform(jax.random.key(1), 4, shape=(6,), on_grid=False)
    out = jax.jit(jax.vmap(S.round_ste))(cm)
    chex.assert_trees_all_close(out, S.round(cm))
    out = jax.jit(jax.vmap(lambda c: S.relaxed_round(c, 0.1)))(cm)
    chex.assert_shape(list(out.values()), (6, 4))
    keys = jax.random.split(jax.random.key(2), 3)
    samples = jax.vmap(lambda k: S.sample_local(k, S.default(4)))(keys)
    chex.assert_shape(list(samples.values()), (3, 4))
