"""Tests of the JAX <-> Sionna RT bridge (dtwin.rt._bridge) on the bundled street-canyon scene."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.rt import RTScene, SolverConfig, path_gain, rt_path_gains, rt_paths

TX = np.array([[-30.0, 0.0, 20.0]], np.float32)
RX = np.array([[20.0, 5.0, 1.5], [40.0, -5.0, 1.5], [-10.0, 4.0, 1.5]], np.float32)
K = 8


@pytest.fixture(scope="module")
def scene():
    # Sionna's bundled street canyon; few rays, up to 2 bounces, specular only.
    return RTScene.from_file(
        "simple_street_canyon",
        config=SolverConfig(max_depth=2, samples_per_src=10_000, max_num_paths=K),
    )


def _params(scene):
    p = scene.default_material_params()
    # a non-zero scattering coefficient, so that its derivative is not zero by symmetry
    p["marble"]["scattering_coefficient"] = np.float32(0.3)
    return p


def _with(p, m, f, v):
    q = {k: dict(d) for k, d in p.items()}
    q[m][f] = np.float32(v)
    return q


def test_shapes_and_free_space_los(scene):
    p = _params(scene)
    paths = rt_paths(p, TX, RX, scene=scene)
    for name in ("a_re", "a_im", "tau_s", "zod_deg", "aod_deg", "zoa_deg", "aoa_deg"):
        chex.assert_shape(getattr(paths, name), (3, 1, K))
        chex.assert_type(getattr(paths, name), jnp.float32)
    chex.assert_shape(paths.num_paths_found, (3, 1))
    assert paths.valid.dtype == jnp.bool_
    # The LOS path obeys the Friis free-space law: |a|^2 = (lambda / (4 pi d))^2, tau = d / c.
    c = 299_792_458.0
    lam = c / scene.carrier_hz
    for r in range(3):
        if not bool(paths.los[r, 0].any()):
            continue
        i = int(jnp.argmax(paths.los[r, 0]))
        d = float(np.linalg.norm(RX[r] - TX[0]))
        np.testing.assert_allclose(
            float(paths.power[r, 0, i]), (lam / (4 * np.pi * d)) ** 2, rtol=1e-3
        )
        np.testing.assert_allclose(float(paths.tau_s[r, 0, i]), d / c, rtol=1e-4)
    assert bool(paths.los.any()), "expected at least one LOS link"
    # padded entries carry no power
    assert float(jnp.sum(jnp.where(paths.valid, 0.0, paths.power))) == 0.0
    g, g_db = rt_path_gains(p, TX, RX, scene=scene)
    chex.assert_shape((g, g_db), (3, 1))
    np.testing.assert_allclose(np.asarray(g), np.asarray(path_gain(paths)), rtol=1e-6)


def test_gradient_matches_central_finite_differences(scene):
    """d(sum of normalised link gains)/d(material property) vs central differences, within 1 %."""
    p = _params(scene)
    g0 = np.asarray(rt_path_gains(p, TX, RX, scene=scene)[0])
    w = jnp.asarray(np.where(g0 > 0, 1.0 / np.maximum(g0, 1e-30), 0.0), jnp.float32)

    @jax.jit
    def f(params):
        return jnp.sum(w * rt_path_gains(params, TX, RX, scene=scene)[0])

    grads = jax.grad(f)(p)
    checked = 0
    # Steps small against each property's natural scale (relative permittivity ~5, conductivity
    # ~ omega * eps0 * eps_r ~ 1 S/m at 3.5 GHz, scattering coefficient ~1), so the O(h^2)
    # truncation error is < 0.1 %, and large enough that float32 rounding stays < 0.1 %.
    steps = {"relative_permittivity": 0.02, "conductivity": 0.005, "scattering_coefficient": 0.005}
    for m, fld in [
        ("concrete", "conductivity"),
        ("concrete", "relative_permittivity"),
        ("marble", "relative_permittivity"),
        ("marble", "conductivity"),
        ("marble", "scattering_coefficient"),
        ("glass", "relative_permittivity"),
    ]:
        v = float(p[m][fld])
        h = steps[fld]
        fd = (float(f(_with(p, m, fld, v + h))) - float(f(_with(p, m, fld, v - h)))) / (2 * h)
        ad = float(grads[m][fld])
        if abs(fd) < 1e-4:  # material not hit by any path
            assert abs(ad) < 1e-4
            continue
        checked += 1
        np.testing.assert_allclose(ad, fd, rtol=1e-2, err_msg=f"{m}.{fld}")
    assert checked >= 3


def test_jit_vmap_and_unused_material_grad(scene):
    p = _params(scene)
    base = rt_path_gains(p, TX, RX, scene=scene)[1]
    eps = jnp.array([4.0, 6.0], jnp.float32)

    def gain_db(e):
        q = {k: dict(d) for k, d in p.items()}
        q["concrete"]["relative_permittivity"] = e
        return rt_path_gains(q, TX, RX, scene=scene)[1]

    batched = jax.jit(jax.vmap(gain_db))(eps)
    chex.assert_shape(batched, (2, 3, 1))
    np.testing.assert_allclose(np.asarray(batched[0]), np.asarray(gain_db(eps[0])), atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(jax.jit(gain_db)(p["concrete"]["relative_permittivity"])),
        np.asarray(base),
        atol=1e-4,
    )
    gv = jax.vmap(jax.grad(lambda e: jnp.sum(gain_db(e)[:2])))(eps)
    chex.assert_shape(gv, (2,))
    assert bool(jnp.all(jnp.isfinite(gv)))


def test_unsupported_and_bad_input(scene):
    p = _params(scene)
    with pytest.raises(NotImplementedError, match="positions"):
        jax.grad(lambda t: jnp.sum(rt_path_gains(p, t, RX, scene=scene)[0]))(jnp.asarray(TX))
    with pytest.raises(ValueError, match="unknown material 'steel'"):
        rt_paths({"steel": {"conductivity": 1.0}}, TX, RX, scene=scene)
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        rt_paths({"concrete": {"colour": 1.0}}, TX, RX, scene=scene)
    with pytest.raises(ValueError, match="tx_positions_m"):
        rt_paths(p, TX[:, :2], RX, scene=scene)
    with pytest.raises(ValueError, match="scene"):
        RTScene.from_file("no_such_scene")


def test_truncation_keeps_shortest_delay_paths_and_grads():
    # flat ground: 2 paths per link (LOS, ground reflection); keeping 1 keeps the LOS path
    flat = RTScene.flat_ground(
        config=SolverConfig(max_depth=1, samples_per_src=1_000, max_num_paths=1)
    )
    tx = np.array([[0.0, 0.0, 10.0]], np.float32)
    rx = np.array([[50.0, 0.0, 1.5], [0.0, 80.0, 1.5]], np.float32)
    paths = rt_paths({}, tx, rx, scene=flat)
    np.testing.assert_array_equal(np.asarray(paths.num_paths_found), [[2], [2]])
    assert bool(jnp.all(paths.los)) and bool(jnp.all(paths.valid))
    # the LOS path does not depend on the ground: zero gradient, not an error
    g = jax.grad(
        lambda e: jnp.sum(
            rt_path_gains({"ground": {"relative_permittivity": e}}, tx, rx, scene=flat)[0]
        )
    )(jnp.float32(5.0))
    assert float(g) == 0.0
