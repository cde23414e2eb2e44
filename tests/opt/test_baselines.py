"""Baselines on the same budget: validity, known optima, CMA-ES on closed-form functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from opt import (
    SafetyConfig,
    SearchConfig,
    cma_es,
    cma_es_minimise,
    coordinate_descent,
    random_search,
    search,
)

from ._predictors import QuadraticPredictor
from .test_search import _assert_valid

PLAIN = SafetyConfig(guardrails=(), kappa=0.0, z=0.0, trust_steps=2)
BUDGET = 240


@pytest.mark.parametrize(
    "fn, x_star",
    [
        (lambda x: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2, np.ones(2)),  # Rosenbrock
        # ill-conditioned ellipsoid (condition 1e4): needs the covariance adaptation
        (lambda x: jnp.sum(jnp.asarray([1.0, 1e4]) * (x - 0.5) ** 2), np.full(2, 0.5)),
    ],
)
def test_cma_es_minimise_closed_form(fn, x_star):
    x0 = jnp.zeros(x_star.shape[0])
    x, f = jax.jit(lambda k: cma_es_minimise(k, fn, x0, 0.5, 150))(jax.random.key(0))
    np.testing.assert_allclose(np.asarray(x), x_star, atol=2e-2)
    assert float(f) < 1e-2


@pytest.fixture(scope="module")
def problem():
    target = jax.random.uniform(jax.random.key(11), (3, 3), minval=0.1, maxval=0.9)
    pred = QuadraticPredictor(target)
    current = SCHEMA.default(3)
    return pred, current, pred.grid_optimum(current, 2)[1]


@pytest.mark.slow
def test_baselines_valid_and_reach_optimum(problem):
    pred, current, best = problem
    recs = {
        "random": random_search(jax.random.key(0), pred, current, n_evals=BUDGET, safety=PLAIN),
        "coordinate": coordinate_descent(pred, current, n_evals=BUDGET, safety=PLAIN),
        "cma": cma_es(jax.random.key(0), pred, current, n_evals=BUDGET, safety=PLAIN),
    }
    for name, rec in recs.items():
        _assert_valid(rec, current, 2)
        assert float(rec.objective_after) >= float(rec.objective_before), name
        assert float(rec.objective_after) <= best + 1e-4, name
    # separable-by-parameter convex quadratic: coordinate descent and CMA-ES find the optimum
    assert float(recs["coordinate"].objective_after) == pytest.approx(best, abs=1e-4)
    # CMA-ES (23 generations of 10 on a 9-d grid) gets most of the way, not always all of it
    gain = lambda r: float(r.objective_after) - float(r.objective_before)  # noqa: E731
    assert gain(recs["cma"]) >= 0.8 * (best - float(recs["cma"].objective_before))
    # the gradient search on a similar budget (4 starts x 60 steps) is at least as good
    rec = search(
        jax.random.key(0), pred, current, safety=PLAIN, config=SearchConfig(n_starts=4, n_steps=60)
    )
    for name, r in recs.items():
        assert float(rec.objective_after) >= float(r.objective_after) - 1e-4, name


def test_baselines_reject_bad_budget(problem):
    pred, current, _ = problem
    with pytest.raises(ValueError, match="n_evals"):
        random_search(jax.random.key(0), pred, current, n_evals=0, safety=PLAIN)
    with pytest.raises(ValueError, match="sigma0"):
        cma_es(jax.random.key(0), pred, current, n_evals=10, sigma0=-1.0, safety=PLAIN)


def test_random_search_batches_do_not_change_the_result(problem):
    """Scoring the candidates in batches (memory bound) picks the same CM as all at once."""
    pred, current, _ = problem
    a = random_search(jax.random.key(3), pred, current, n_evals=50, safety=PLAIN, eval_batch=50)
    b = random_search(jax.random.key(3), pred, current, n_evals=50, safety=PLAIN, eval_batch=7)
    for k in a.cm:
        np.testing.assert_array_equal(np.asarray(a.cm[k]), np.asarray(b.cm[k]))
    with pytest.raises(ValueError, match="eval_batch"):
        random_search(jax.random.key(3), pred, current, n_evals=5, safety=PLAIN, eval_batch=0)
