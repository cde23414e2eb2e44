"""Calibration of the twin's per-cell power offsets to observed UE shares (`opt.calibration`).

References: a hand-computed share table (closed form), and ground-truth offsets: the observed
shares are those the same simulation serves with known offsets, which the fit must recover (up
to the common level the share cannot see).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA


def _table(active, cm_rows):
    """Columnar rows for ``active[period, cell]`` with per-row CM dicts (period-major)."""
    p, n = active.shape
    cols = {
        "snapshot_id": np.repeat(np.arange(p), n),
        "cell_id": np.tile(np.arange(n), p),
        "active_ues": active.reshape(-1).astype(np.float32),
    }
    for name in SCHEMA.names:
        cols[name] = np.array([r[name] for r in cm_rows], np.float32)
    return cols


def _row(cm, c):
    return {k: float(np.asarray(v)[c]) for k, v in cm.items()}


def test_ue_share_closed_form_skips_trial_periods():
    cur = SCHEMA.default(3)
    active = np.array([[2.0, 1.0, 1.0], [1.0, 1.0, 2.0], [3.0, 3.0, 2.0]])
    rows = [
        {k: float(np.asarray(v)[c]) for k, v in cur.items()} for _ in range(3) for c in range(3)
    ]
    rows[2 * 3 + 1] = dict(rows[2 * 3 + 1], tilt_deg=rows[7]["tilt_deg"] + 1.0)  # a trial
    got = opt.cell_ue_share(_table(active, rows), cur)
    want = np.log(
        [
            (2 / 4 + 1 / 4 + 3 / 8) / 3,
            (1 / 4 + 1 / 4) / 2,  # period 2 excluded for cell 1 (its trial)
            (1 / 4 + 2 / 4 + 2 / 8) / 3,
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_ue_share_names_bad_input():
    cur = SCHEMA.default(2)
    rows = [
        {k: float(np.asarray(v)[c]) for k, v in cur.items()} for _ in range(2) for c in range(2)
    ]
    good = _table(np.ones((2, 2)), rows)
    with pytest.raises(ValueError, match="active_ues"):
        opt.cell_ue_share({k: v for k, v in good.items() if k != "active_ues"}, cur)
    with pytest.raises(ValueError, match="non-finite"):
        opt.cell_ue_share(dict(good, active_ues=np.array([1.0, np.nan, 1.0, 1.0])), cur)
    with pytest.raises(ValueError, match=r"current_cm lacks \['cio_db'\]"):
        opt.cell_ue_share(good, {k: v for k, v in cur.items() if k != "cio_db"})
    with pytest.raises(ValueError, match="every cell exactly once"):
        opt.cell_ue_share({k: v[:3] for k, v in good.items()}, cur)
    moved = dict(good, tilt_deg=good["tilt_deg"] + np.array([0.0, 1.0, 0.0, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"cell\(s\) \[1\] never ran"):
        opt.cell_ue_share(moved, cur)


@pytest.fixture(scope="module")
def twin():
    at = area_type("urban")
    return opt.twin_predictor(jax.random.PRNGKey(11), network_for_area(at, 1), at, 8)


def _share(pred, cm):
    _, _, mass = jax.jit(lambda p: p._outputs(cm))(pred)
    m = np.asarray(mass).mean(0)
    return np.log(m / m.sum())


def test_recovers_known_offsets_up_to_their_common_level(twin):
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in SCHEMA.default(3).items()}
    truth = np.array([2.5, -2.0, 0.5], np.float32)
    shifted = jax.tree.map(lambda x: x, twin)
    shifted = type(twin)(
        twin.network,
        twin.population,
        twin.links,
        twin.tilt_offset_deg,
        twin.power_offset_db + truth,
        twin.kpis,
        twin.candidates,
    )
    observed = _share(shifted, cm)
    assert np.ptp(observed) > 0.1  # the offsets move UEs between cells
    res = opt.calibrate_power_offsets(twin, observed, cm, steps=120)
    chex.assert_shape(res.offset_db, (3,))
    np.testing.assert_allclose(res.offset_db - res.offset_db.mean(), truth - truth.mean(), atol=0.3)
    assert res.rmse_after < 0.25 * res.rmse_before
    np.testing.assert_allclose(
        np.asarray(res.predictor.power_offset_db),
        np.asarray(twin.power_offset_db) + res.offset_db,
        rtol=1e-6,
    )
    np.testing.assert_allclose(_share(res.predictor, cm), observed, atol=0.02)
    np.testing.assert_allclose(res.offset_db.mean(), 0.0, atol=1e-5)


def test_calibration_refuses_bad_input(twin):
    cm = SCHEMA.default(3)
    with pytest.raises(ValueError, match=r"\[cells\]=3"):
        opt.calibrate_power_offsets(twin, np.zeros(4), cm)
    with pytest.raises(ValueError, match="non-finite"):
        opt.calibrate_power_offsets(twin, np.array([0.0, np.nan, 0.0]), cm)
    with pytest.raises(ValueError, match="steps"):
        opt.calibrate_power_offsets(twin, np.zeros(3), cm, steps=0)
    with pytest.raises(TypeError, match="SimulatorPredictor"):
        opt.calibrate_power_offsets(object(), np.zeros(3), cm)
