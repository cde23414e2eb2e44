"""Gradient CM search: known optima, bounds under attack, vmap over areas, export."""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from opt import (
    Prediction,
    Reason,
    SafetyConfig,
    SearchConfig,
    mean_throughput,
    recommendation_to_rows,
    search,
    search_areas,
)

from ._predictors import QuadraticPredictor

CFG = SearchConfig(n_starts=4, n_steps=60, learning_rate=0.05)
PLAIN = SafetyConfig(guardrails=(), kappa=0.0, z=0.0, trust_steps=2)
LOW = np.array([p.low for p in SCHEMA.params])
HIGH = np.array([p.high for p in SCHEMA.params])
STEP = np.array([p.step for p in SCHEMA.params])


def _x(cm):
    return np.stack([np.asarray(cm[n], np.float64) for n in SCHEMA.names], -1)


def _assert_valid(rec, current, trust_steps):
    x, xc = _x(rec.cm), _x(current)
    assert np.all(np.isfinite(x))
    assert np.all(x >= LOW - 1e-5) and np.all(x <= HIGH + 1e-5)
    k = (x - LOW) / STEP
    changed = np.asarray(rec.changed)
    on_grid = np.abs(k - np.round(k)) < 1e-4
    assert np.all(on_grid[changed])
    assert np.all(np.abs(x - xc) <= float(trust_steps) * STEP + 1e-4)
    np.testing.assert_array_equal(x[~changed], xc[~changed])


@pytest.mark.parametrize("seed", [0, 1])
def test_search_reaches_brute_force_grid_optimum(seed):
    target = jax.random.uniform(jax.random.key(seed), (3, 3), minval=0.1, maxval=0.9)
    pred = QuadraticPredictor(target)
    current = SCHEMA.default(3)
    rec = search(jax.random.key(seed), pred, current, mean_throughput(), safety=PLAIN, config=CFG)
    _, best = pred.grid_optimum(current, PLAIN.trust_steps)
    _assert_valid(rec, current, PLAIN.trust_steps)
    assert float(rec.objective_after) == pytest.approx(best, abs=1e-4)
    assert float(rec.objective_after) >= float(rec.objective_before)
    chex.assert_shape(rec.changed, (3,))
    chex.assert_type(rec.reason, jnp.int32)
    chex.assert_type(rec.cm["tilt_deg"], jnp.float32)


def test_search_whole_box_near_continuous_optimum():
    target = jnp.asarray([[0.2, 0.9, 0.5], [0.4, 0.7, 0.6], [0.1, 0.8, 0.4]])
    pred = QuadraticPredictor(target)
    safety = SafetyConfig(guardrails=(), kappa=0.0, z=0.0, trust_steps=20)
    rec = search(jax.random.key(0), pred, SCHEMA.default(3), safety=safety, config=CFG)
    u_star = pred.continuous_optimum_u()
    x_star = LOW + u_star * (HIGH - LOW)
    # the grid optimum of a convex quadratic lies within one step of the continuous one
    assert np.all(np.abs(_x(rec.cm) - x_star) <= STEP + 1e-4)
    _, best = pred.grid_optimum(SCHEMA.default(3), 20)
    assert float(rec.objective_after) == pytest.approx(best, abs=1e-4)


class _Adversary(eqx.Module):
    """``m = scale Σ u + nan_amp sqrt(P − thr)``: gradients pointing outside, NaN regions."""

    scale: jnp.ndarray
    nan_thr_dbm: jnp.ndarray

    def __call__(self, cm):
        u = SCHEMA.to_vector(SCHEMA.to_unit(cm))
        m = self.scale * jnp.sum(u, -1) + jnp.sqrt(cm["tx_power_dbm"] - self.nan_thr_dbm)
        return Prediction.deterministic({"dl_throughput_mbps": m})


ADV_CFG = SearchConfig(n_starts=3, n_steps=20, learning_rate=1e4, refine_sweeps=1)


@pytest.mark.parametrize(
    "scale, nan_thr, current",
    [
        (1e6, -1e9, {"tilt_deg": [15.0, 14.0], "tx_power_dbm": [49.0, 48.0], "cio_db": [6.0, 5.0]}),
        (
            -1e6,
            -1e9,
            {"tilt_deg": [0.0, 1.0], "tx_power_dbm": [30.0, 31.0], "cio_db": [-6.0, -5.0]},
        ),
        (
            1e30,
            -1e9,
            {"tilt_deg": [15.0, 0.0], "tx_power_dbm": [49.0, 30.0], "cio_db": [6.0, -6.0]},
        ),
        (-1.0, 45.0, {"tilt_deg": [6.0, 6.0], "tx_power_dbm": [46.0, 45.0], "cio_db": [0.0, 0.0]}),
        (1.0, 47.0, {"tilt_deg": [6.0, 6.0], "tx_power_dbm": [46.0, 46.0], "cio_db": [0.0, 0.0]}),
    ],
)
def test_recommendation_never_leaves_bounds(scale, nan_thr, current):
    """Adversarial predictors (outward gradients, overflow, NaN) and a huge learning rate."""
    current = {k: jnp.asarray(v, jnp.float32) for k, v in current.items()}
    pred = _Adversary(jnp.float32(scale), jnp.float32(nan_thr))
    rec = search(jax.random.key(3), pred, current, safety=PLAIN, config=ADV_CFG)
    _assert_valid(rec, current, PLAIN.trust_steps)
    if nan_thr > 46:  # NaN already at the current CM: nothing can be trusted
        assert not np.any(np.asarray(rec.changed))
        assert np.all(np.asarray(rec.reason) == Reason.NON_FINITE)
    if scale < 0 and nan_thr == 45.0:  # pushes power down into the NaN region at P < 45
        assert np.all(_x(rec.cm)[:, 1] >= 45.0)


@pytest.mark.slow
def test_search_areas_vmaps_over_areas():
    targets = jax.random.uniform(jax.random.key(7), (4, 3, 3), minval=0.1, maxval=0.9)
    ones = jnp.ones((4,))
    pred = QuadraticPredictor(targets, 10.0 * ones, 2.0 * ones, 0.0 * ones, 0.0 * ones)
    current = {k: jnp.broadcast_to(v, (4, 3)) for k, v in SCHEMA.default(3).items()}
    rec = search_areas(jax.random.key(0), pred, current, safety=PLAIN, config=CFG)
    chex.assert_shape(rec.changed, (4, 3))
    chex.assert_shape(rec.objective_after, (4,))
    for a in range(4):
        single = QuadraticPredictor(targets[a])
        _, best = single.grid_optimum(SCHEMA.default(3), PLAIN.trust_steps)
        assert float(rec.objective_after[a]) == pytest.approx(best, abs=1e-4)


def test_recommendation_to_rows_and_input_errors():
    pred = QuadraticPredictor(jnp.full((3, 3), 0.5, jnp.float32))
    rec = search(jax.random.key(0), pred, SCHEMA.default(3), safety=PLAIN, config=CFG)
    rows = recommendation_to_rows(rec, [10, 11, 12])
    assert list(rows["cell_id"]) == [10, 11, 12]
    for n in SCHEMA.names:
        np.testing.assert_array_equal(rows[f"{n}_recommended"], np.asarray(rec.cm[n]))
        np.testing.assert_array_equal(rows[f"{n}_current"], np.asarray(SCHEMA.default(3)[n]))
    assert set(rows["reason"]) <= {"changed", "optimal_as_is", "within_uncertainty"}
    assert "dl_throughput_mbps_after" in rows and "coverage_std_after" in rows
    assert all(len(v) == 3 for v in rows.values())
    with pytest.raises(ValueError, match="cell_ids"):
        recommendation_to_rows(rec, [1, 2])
    bad = dict(SCHEMA.default(3), tilt_deg=jnp.asarray([6.0, 20.0, 6.0]))
    with pytest.raises(ValueError, match="tilt_deg.*cell 1"):
        search(jax.random.key(0), pred, bad, safety=PLAIN, config=CFG)
    with pytest.raises(ValueError, match="objective"):
        search(jax.random.key(0), pred, SCHEMA.default(3), "throughput", safety=PLAIN, config=CFG)
    with pytest.raises(ValueError, match="n_starts"):
        SearchConfig(n_starts=0)


@pytest.mark.slow
def test_search_with_digital_twin_oracle():
    """The twin (std = 0) as predictor: improves mean throughput, guardrails hold in the twin."""
    try:
        from dtwin.areas import area_type, network_for_area
        from dtwin.geometry import drop_ues
        from dtwin.network import UEPopulation, cell_kpis, draw_channel, simulate
    except ImportError as e:  # the twin is written in parallel
        pytest.skip(f"dtwin.network not available: {e}")
    area = area_type("urban")
    net = network_for_area(area, n_sites=1, wrap=False)
    ues = drop_ues(jax.random.key(0), net.topology, 8, area.min_distance_2d_m)
    pop = UEPopulation.with_demand(ues, 20.0)
    chan = draw_channel(jax.random.key(1), net, pop)

    def twin(cm):
        return Prediction.deterministic(cell_kpis(net, pop, simulate(net, pop, chan, cm)))

    safety = SafetyConfig(kappa=0.0, z=0.0)  # default guardrails: coverage, cell-edge
    cur = SCHEMA.default(3)
    rec = search(
        jax.random.key(0),
        twin,
        cur,
        safety=safety,
        config=SearchConfig(n_starts=2, n_steps=30, refine_sweeps=0),
    )
    _assert_valid(rec, cur, 2)
    after, before = twin(rec.cm).mean, twin(cur).mean
    np.testing.assert_allclose(
        float(rec.objective_after), float(jnp.mean(after["dl_throughput_mbps"])), rtol=1e-5
    )
    assert float(rec.objective_after) >= float(rec.objective_before)
    assert np.all(np.asarray(after["coverage"]) >= np.asarray(before["coverage"]) - 0.01 - 1e-6)
    edge_b = np.asarray(before["cell_edge_throughput_mbps"])
    assert np.all(np.asarray(after["cell_edge_throughput_mbps"]) >= 0.95 * edge_b - 1e-6)


def test_change_cost_prices_every_move():
    """Each kept change must pay for itself: objective gain >= change_cost |V0| mean|Δk|;
    a prohibitive price keeps the current CM; a price never makes the search move more."""
    target = jax.random.uniform(jax.random.key(3), (3, 3), minval=0.1, maxval=0.9)
    pred = QuadraticPredictor(target)
    current = SCHEMA.default(3)

    def run(cost):
        safety = SafetyConfig(guardrails=(), kappa=0.0, z=0.0, trust_steps=2, change_cost=cost)
        rec = search(jax.random.key(0), pred, current, mean_throughput(), safety=safety, config=CFG)
        _assert_valid(rec, current, 2)
        moved = float(np.mean(np.abs(_x(rec.cm) - _x(current)) / STEP))
        return rec, moved

    free, moved_free = run(0.0)
    assert moved_free > 0
    for cost in (0.02, 0.1):
        rec, moved = run(cost)
        gain = float(rec.objective_after - rec.objective_before)
        assert gain >= cost * abs(float(rec.objective_before)) * moved - 1e-5
        assert moved <= moved_free + 1e-6
    rec, moved = run(1e3)
    assert moved == 0.0 and not bool(np.any(rec.changed))
    with pytest.raises(ValueError, match="change_cost"):
        SafetyConfig(change_cost=-1.0)
