"""Amortised CM policy vs per-instance search on a family whose optimum depends on the state."""

from __future__ import annotations

import time

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from opt import CMPolicy, SafetyConfig, SearchConfig, policy_cm, policy_recommend, search_areas
from opt import train_policy as train

from ._predictors import QuadraticPredictor

N_CELLS = 3
ADJ = jnp.ones((N_CELLS, N_CELLS)) - jnp.eye(N_CELLS)
WIDE = SafetyConfig(guardrails=(), kappa=0.0, z=0.0, trust_steps=20)


def _target(state):
    """Optimal unit CM per cell: depends on own state and on the neighbours' mean state."""
    neigh = (ADJ @ state) / jnp.sum(ADJ, -1, keepdims=True)
    return 0.15 + 0.7 * jnp.stack([state[:, 0], state[:, 1], 0.5 * (state[:, 0] + neigh[:, 1])], -1)


def _predict(state, cm):
    return QuadraticPredictor(_target(state), beta=0.0)(cm)


def _sample(key):
    return jax.random.uniform(key, (N_CELLS, 2)), ADJ


def test_policy_shapes_and_bounds():
    pol = CMPolicy(jax.random.key(0), 2, len(SCHEMA), width=8, depth=1)
    state = jax.random.uniform(jax.random.key(1), (5, 2))
    u = pol(state, jnp.ones((5, 5)) - jnp.eye(5))
    chex.assert_shape(u, (5, 3))
    assert np.all((np.asarray(u) > 0) & (np.asarray(u) < 1))
    cm = policy_cm(pol, state, jnp.ones((5, 5)), SCHEMA)
    SCHEMA.validate(cm, n_cells=5)
    g = eqx.filter_grad(lambda p: jnp.sum(policy_cm(p, state, jnp.ones((5, 5)))["tilt_deg"]))(pol)
    assert all(
        np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(eqx.filter(g, eqx.is_array))
    )
    with pytest.raises(ValueError, match="n_features"):
        CMPolicy(jax.random.key(0), 0, 3)


@pytest.mark.slow
def test_policy_matches_search_quality_and_is_faster():
    pol0 = CMPolicy(jax.random.key(0), 2, len(SCHEMA), width=32, depth=2)
    pol, losses = train(
        jax.random.key(1), pol0, _sample, _predict, n_steps=400, batch_size=32, learning_rate=3e-3
    )
    assert float(jnp.mean(losses[-20:])) < float(jnp.mean(losses[:20]))

    n_areas = 64
    states = jax.random.uniform(jax.random.key(2), (n_areas, N_CELLS, 2))
    current = {
        k: jnp.broadcast_to(v, (n_areas, N_CELLS)) for k, v in SCHEMA.default(N_CELLS).items()
    }

    def best_time(fn, *args, repeats=20):
        jax.block_until_ready(fn(*args))  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t0)
        return out, min(times) / n_areas

    # amortised: one forward pass per area; then rounding + the same safety check as the search
    forward = eqx.filter_jit(eqx.filter_vmap(lambda s: policy_cm(pol, s, ADJ)))
    _, t_forward = best_time(forward, states)
    run_policy = eqx.filter_jit(
        eqx.filter_vmap(lambda s, c: policy_recommend(pol, _predict, s, ADJ, c, safety=WIDE))
    )
    rec_p, t_policy = best_time(run_policy, states, current)

    # per-instance: gradient search on each area
    ones = jnp.ones((n_areas,))
    pred = QuadraticPredictor(jax.vmap(_target)(states), 10 * ones, 0 * ones, 0 * ones, 0 * ones)
    cfg = SearchConfig(n_starts=4, n_steps=60)
    rec_s, t_search = best_time(
        lambda k: search_areas(k, pred, current, safety=WIDE, config=cfg), jax.random.key(3)
    )

    v_policy = float(jnp.mean(rec_p.objective_after))
    v_search = float(jnp.mean(rec_s.objective_after))
    v_before = float(jnp.mean(rec_s.objective_before))
    print(
        f"\npolicy: objective {v_policy:.4f}, forward {1e3 * t_forward:.4f} ms/area, "
        f"with safety check {1e3 * t_policy:.4f} ms/area; "
        f"search: objective {v_search:.4f}, {1e3 * t_search:.3f} ms/area; before {v_before:.4f}; "
        f"optimum 10"
    )
    # quality: the policy closes >= 95 % of the gap the search closes
    assert v_policy - v_before >= 0.95 * (v_search - v_before)
    assert v_search >= 9.9  # the search reaches the (grid-rounded) optimum
    # speed: one forward pass is faster than a search
    assert t_forward < t_search
