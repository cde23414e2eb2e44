import math
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin.ue.traffic import (
    DemandPredictor,
    fit_demand_predictor,
    mae_log,
    make_windows,
    predict,
    seasonal_naive,
    smape,
)

SIGMA = 0.3


def _synthetic(seed, cells=24, days=30):
    """log demand = daily profile + cell level + i.i.d. N(0, SIGMA^2) noise."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    h = np.arange(hours) % 24
    profile = 0.8 * np.sin(2 * np.pi * (h - 9) / 24) + 0.3 * np.cos(4 * np.pi * h / 24)
    level = rng.normal(0.0, 1.5, (cells, 1))
    log_d = profile[None, :] + level + SIGMA * rng.normal(size=(cells, hours))
    dow = (np.arange(hours) // 24) % 7
    return np.exp(log_d), dow, rng.integers(0, 4, cells)


def test_beats_seasonal_naive_and_reaches_closed_form_optimum():
    demand, dow, area = _synthetic(0)
    hours = demand.shape[1]
    held = np.arange(hours) >= hours - 5 * 24
    train = make_windows(demand, dow, area, ~held, stride_h=3)
    test = make_windows(demand, dow, area, held, stride_h=24)
    model, losses = fit_demand_predictor(
        jr.key(0), DemandPredictor(jr.key(1), width=32), train, steps=800
    )
    pred = predict(model, test)
    y = jnp.asarray(test.target)
    chex.assert_shape(pred, y.shape)
    # Closed forms for Gaussian log-errors: E|N(0, s^2)| = s sqrt(2/pi).
    # Seasonal naive: error = e_t - e_{t-24}, variance 2 SIGMA^2.
    # Optimum from one day of history: profile + level estimated by the 24-h mean,
    # error variance SIGMA^2 (1 + 1/24).
    naive_theory = SIGMA * math.sqrt(2 / math.pi) * math.sqrt(2.0)
    best_theory = SIGMA * math.sqrt(2 / math.pi) * math.sqrt(1 + 1 / 24)
    mae_naive = float(mae_log(seasonal_naive(jnp.asarray(test.history)), y))
    mae_model = float(mae_log(pred, y))
    np.testing.assert_allclose(mae_naive, naive_theory, rtol=0.1)
    assert mae_model < 1.12 * best_theory
    assert mae_model < 0.8 * mae_naive
    assert float(smape(pred, y)) < float(smape(jnp.asarray(test.history), y))


def test_metrics_closed_form():
    np.testing.assert_allclose(smape(jnp.array([1.0, 3.0]), jnp.array([1.0, 1.0])), 0.5, rtol=1e-6)
    np.testing.assert_allclose(mae_log(jnp.array([math.e]), jnp.array([1.0])), 1.0, rtol=1e-6)


def test_windows_skip_gaps_and_validate():
    demand, dow, area = _synthetic(1, cells=2, days=4)
    demand[0, 30] = np.nan
    w = make_windows(demand, dow, area, stride_h=24)
    # Starts 24, 48, 72: cell 0 has a gap at hour 30 -> loses the windows at 24 and 48.
    pairs = sorted(zip(w.cell.tolist(), w.start.tolist(), strict=True))
    assert pairs == [(0, 72), (1, 24), (1, 48), (1, 72)]
    with pytest.raises(ValueError, match="day_of_week"):
        make_windows(demand, dow[:-1], area)
    with pytest.raises(ValueError, match="area_index"):
        make_windows(demand, dow, area[:1])
    with pytest.raises(ValueError, match="no complete"):
        make_windows(demand, dow, area, np.zeros(demand.shape[1], bool))


def test_model_jit_vmap_grad():
    model = DemandPredictor(jr.key(0), width=8, depth=1)
    h = jnp.exp(jr.normal(jr.key(1), (5, 24)))
    e = jnp.zeros((5, 6))
    out = jax.jit(jax.vmap(model))(h, e)
    chex.assert_shape(out, (5, 24))
    assert bool(jnp.all(out > 0))
    check_grads(
        lambda x: model(x, e[0]), (h[0],), order=1, modes=["rev"], eps=1e-3, atol=5e-2, rtol=5e-2
    )


DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.mark.skipif(not (DATA / "c2tm-city-traffic").exists(), reason="needs ../shared/data")
@pytest.mark.data
@pytest.mark.slow
def test_beats_seasonal_naive_on_held_out_c2tm_days():
    from dtwin.ue.data import cluster_area_types, load_c2tm

    t = load_c2tm()
    demand = t.per_user_demand_mbps() * t.users  # total demand per cluster, Mbps
    held = t.hours >= np.datetime64("2012-10-04T00")  # the last days are held out
    area = cluster_area_types(t)
    train = make_windows(demand, t.day_of_week, area, ~held, stride_h=2)
    test = make_windows(demand, t.day_of_week, area, held, stride_h=24)
    model, _ = fit_demand_predictor(
        jr.key(0), DemandPredictor(jr.key(1), width=32), train, steps=1000
    )
    y = jnp.asarray(test.target)
    pred = predict(model, test)
    assert float(mae_log(pred, y)) < 0.95 * float(
        mae_log(seasonal_naive(jnp.asarray(test.history)), y)
    )
    assert float(smape(pred, y)) < float(smape(jnp.asarray(test.history), y))
