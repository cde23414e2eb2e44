"""Material calibration through the RT bridge (dtwin.rt.calibrate): identifiability on a flat
ground."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dtwin.rt import RTScene, SolverConfig, rt_path_gains
from dtwin.rt.calibrate import (
    calibrate,
    cell_mean_loss,
    cell_mean_rsrp_dbm,
    measurement_loss,
    to_physical,
    to_unconstrained,
)

TRUTH = {"ground": {"relative_permittivity": 3.0, "conductivity": 0.5}}


@pytest.fixture(scope="module")
def scene():
    return RTScene.flat_ground(
        config=SolverConfig(max_depth=1, samples_per_src=2_000, max_num_paths=4)
    )


def _rx(n, seed):
    rng = np.random.default_rng(seed)
    d = np.geomspace(10.0, 300.0, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.stack([d * np.cos(phi), d * np.sin(phi), np.full(n, 1.5)], -1).astype(np.float32)


def _init(scene):
    d = scene.default_material_params()
    return {"ground": {f: d["ground"][f] for f in TRUTH["ground"]}}


def test_reparameterisation_round_trip_and_physical():
    p = {
        "m": {
            "relative_permittivity": 5.0,
            "conductivity": 0.1,
            "scattering_coefficient": 0.3,
            "thickness": 0.2,
        }
    }
    back = to_physical(to_unconstrained(p))
    for f, v in p["m"].items():
        np.testing.assert_allclose(float(back["m"][f]), v, rtol=1e-5)
    # any unconstrained value maps to a physical one
    u = {"m": {f: jnp.float32(-30.0) for f in p["m"]}}
    x = to_physical(u)["m"]
    assert float(x["relative_permittivity"]) >= 1.0 and float(x["conductivity"]) > 0.0
    assert 0.0 <= float(x["scattering_coefficient"]) <= 1.0
    with pytest.raises(ValueError, match="unknown field"):
        to_unconstrained({"m": {"colour": 1.0}})


@pytest.mark.slow
def test_recovers_hidden_ground_properties_from_noisy_path_gains(scene):
    tx = np.array([[0.0, 0.0, 25.0]], np.float32)
    rx, rx_test = _rx(12, 0), _rx(8, 1)
    _, g_db = rt_path_gains(TRUTH, tx, rx, scene=scene)
    noisy = np.asarray(g_db) + np.random.default_rng(2).normal(0.0, 0.05, g_db.shape)
    res = calibrate(
        measurement_loss(scene, tx, rx, noisy),
        _init(scene),
        optimizer=optax.adam(0.15),
        num_steps=25,
    )
    chex.assert_shape(res.loss_history, (26,))
    rec = res.params["ground"]
    np.testing.assert_allclose(float(rec["relative_permittivity"]), 3.0, rtol=0.15)
    np.testing.assert_allclose(float(rec["conductivity"]), 0.5, rtol=0.3)
    assert float(res.loss_history[-1]) < 0.5 * float(res.loss_history[0])
    # held-out positions: error of the calibrated model below that of the ITU defaults
    true_test = rt_path_gains(TRUTH, tx, rx_test, scene=scene)[1]
    err_before = jnp.sqrt(
        jnp.mean((rt_path_gains(_init(scene), tx, rx_test, scene=scene)[1] - true_test) ** 2)
    )
    err_after = jnp.sqrt(
        jnp.mean((rt_path_gains(res.params, tx, rx_test, scene=scene)[1] - true_test) ** 2)
    )
    assert float(err_after) < 0.3 * float(err_before)


def test_cell_mean_rsrp_matches_loop():
    rsrp = jnp.array([[-80.0, -90.0], [-85.0, -70.0], [-60.0, -99.0]])
    serving = jnp.array([0, 1, 0])
    out = cell_mean_rsrp_dbm(rsrp, serving)
    np.testing.assert_allclose(np.asarray(out), [(-80 - 60) / 2, -70.0])
    assert bool(jnp.isnan(cell_mean_rsrp_dbm(rsrp, jnp.array([0, 0, 0]))[1]))
    g = jax.grad(lambda r: jnp.sum(cell_mean_rsrp_dbm(r, serving)))(rsrp)
    np.testing.assert_allclose(np.asarray(g), [[0.5, 0], [0, 1], [0.5, 0]])


@pytest.mark.slow
def test_calibration_from_per_cell_aggregates(scene):
    tx = np.array([[0.0, 0.0, 25.0], [200.0, 0.0, 10.0], [0.0, 200.0, 40.0]], np.float32)
    rx = _rx(15, 3) + np.array([60.0, 60.0, 0.0], np.float32)
    _, g_db = rt_path_gains(TRUTH, tx, rx, scene=scene)
    serving = np.asarray(jnp.argmax(g_db, axis=1)).astype(np.int32)
    measured = cell_mean_rsrp_dbm(g_db, jnp.asarray(serving))
    loss = cell_mean_loss(scene, tx, rx, serving, measured)
    res = calibrate(loss, _init(scene), optimizer=optax.adam(0.2), num_steps=15)
    assert float(res.loss_history[-1]) < 0.1 * float(res.loss_history[0])
    np.testing.assert_allclose(float(res.params["ground"]["relative_permittivity"]), 3.0, rtol=0.25)
    with pytest.raises(ValueError, match="serving_cell"):
        cell_mean_loss(scene, tx, rx, serving[:3], measured)
    with pytest.raises(ValueError, match="measured_db"):
        measurement_loss(scene, tx, rx, np.zeros((2, 2)))


@pytest.mark.slow
def test_calibrate_materials_experiment_writes_a_site_channel_closer_to_the_truth(tmp_path):
    """The main job's RT step: ``site_channel.json`` holds the twin (calibrated materials), field
    (true materials) and ITU-default channels; calibration moves the twin's pathloss offset
    towards the field's (the soundings with the true materials are the independent reference)."""
    from dtwin.site_channel import load_site_channels
    from experiments import calibrate_materials

    calibrate_materials.main(["--small", "--out", str(tmp_path)])
    ch = load_site_channels(tmp_path / "site_channel.json")
    assert set(ch) == {"twin", "field", "itu_default"}
    assert all(c.scenario == "UMa" and c.area == "urban" for c in ch.values())
    before = abs(ch["itu_default"].pathloss_offset_db - ch["field"].pathloss_offset_db)
    after = abs(ch["twin"].pathloss_offset_db - ch["field"].pathloss_offset_db)
    assert after < before, (before, after)
