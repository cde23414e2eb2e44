"""Amortised CM selection: a policy network trained by gradients through a predictor.

Instead of solving each area's CM problem afresh (`opt.search`), a policy ``π_θ`` maps what is
known about a cell — its state features ``s_c`` (load, hour, UE density, ...) and the mean of its
neighbours' states ``s̄_c = Σ_c' A_cc' s_c' / Σ_c' A_cc'`` — to its CM in the unit box,

    u_c = sigmoid(MLP_θ([s_c, s̄_c])),      cm_c = low + u_c (high − low),

and is trained over many sampled scenarios ξ = (state, adjacency) to maximise the expected
objective through the (differentiable) predictor of that scenario (amortised optimisation; cf.
Amos, "Tutorial on amortized optimization", arXiv:2202.00665):

    max_θ  E_ξ [ V_κ(predict_ξ(cm_θ(ξ))) ].

One forward pass replaces a search; `policy_recommend` rounds the output onto the grid, clips it
into the trust region and applies the same safety check as the search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema

from .objectives import AbstractObjective, KPIObjective, Prediction
from .safety import SafetyConfig
from .search import Recommendation, _finalise, _problem

ScenarioPredictor = Callable[
    [Float[Array, "cells features"], Mapping[str, Float[Array, " cells"]]], Prediction
]
"""``predict(state, cm) -> Prediction`` for the scenario described by ``state``."""

ScenarioSampler = Callable[
    [PRNGKeyArray], tuple[Float[Array, "cells features"], Float[Array, "cells cells"]]
]
"""``sample(key) -> (state, adjacency)``: a random scenario."""


class CMPolicy(eqx.Module):
    """Per-cell MLP on ``[own state, neighbourhood mean state]`` -> CM in the unit box.

    Args:
        key: PRNG key for the initial weights.
        n_features: number of state features per cell.
        n_params: number of CM parameters (``len(schema)``).
        width, depth: MLP hidden width and number of hidden layers.
    """

    mlp: eqx.nn.MLP
    n_features: int = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, n_features: int, n_params: int, width=64, depth=2):
        if n_features < 1 or n_params < 1:
            raise ValueError(
                f"CMPolicy: need n_features >= 1 and n_params >= 1, got {n_features}, {n_params}"
            )
        self.n_features = int(n_features)
        self.mlp = eqx.nn.MLP(
            2 * n_features,
            n_params,
            width,
            depth,
            activation=jax.nn.gelu,
            final_activation=jax.nn.sigmoid,
            key=key,
        )

    def __call__(
        self, state: Float[Array, "cells features"], adjacency: Float[Array, "cells cells"]
    ) -> Float[Array, "cells params"]:
        """CM of every cell in the unit box (``[cells, params]``, schema order)."""
        deg = jnp.sum(adjacency, axis=-1, keepdims=True)
        neigh = (adjacency @ state) / jnp.maximum(deg, 1e-6)
        return jax.vmap(self.mlp)(jnp.concatenate([state, neigh], axis=-1))


def policy_cm(
    policy: CMPolicy,
    state: Float[Array, "cells features"],
    adjacency: Float[Array, "cells cells"],
    schema: CMSchema = DEFAULT_CM_SCHEMA,
) -> dict[str, Float[Array, " cells"]]:
    """The policy's (continuous, in-bounds) CM for a scenario."""
    return schema.from_unit(schema.from_vector(policy(state, adjacency)))


def train_policy(
    key: PRNGKeyArray,
    policy: CMPolicy,
    sample_scenario: ScenarioSampler,
    predictor: ScenarioPredictor,
    objective: AbstractObjective | None = None,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    n_steps: int = 500,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    kappa: float = 0.0,
) -> tuple[CMPolicy, Float[Array, " steps"]]:
    """Train ``policy`` by Adam on ``−E_ξ[V_κ]`` over fresh scenario batches.

    Args:
        key: PRNG key (scenario sampling).
        sample_scenario: ``key -> (state [cells, features], adjacency [cells, cells])``.
        predictor: ``(state, cm) -> Prediction``.
        objective: objective to maximise (default: mean DL throughput); constraints, if any,
            enter as an L1 penalty of weight 10 (normalised units).
        n_steps, batch_size, learning_rate: Adam settings.
        kappa: uncertainty penalty ``κ``.

    Returns:
        ``(trained policy, loss per step)``.
    """
    if n_steps < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(
            f"train_policy: need n_steps, batch_size >= 1 and learning_rate > 0; got "
            f"{n_steps}, {batch_size}, {learning_rate}"
        )
    objective = KPIObjective() if objective is None else objective
    params, static = eqx.partition(policy, eqx.is_inexact_array)
    opt = optax.adam(learning_rate)

    def scenario_loss(p, key_s):
        pol = eqx.combine(p, static)
        state, adj = sample_scenario(key_s)
        cm = policy_cm(pol, state, adj, schema)
        pred = predictor(state, cm)
        pen = jnp.sum(jnp.maximum(objective.constraints(pred, cm), 0.0))
        return -objective.value(pred, cm, kappa) + 10.0 * pen

    def loss(p, key_b):
        return jnp.mean(jax.vmap(scenario_loss, (None, 0))(p, jax.random.split(key_b, batch_size)))

    @jax.jit
    def run(params, key):
        def step(carry, key_b):
            p, st = carry
            val, g = jax.value_and_grad(loss)(p, key_b)
            g = jax.tree.map(lambda v: jnp.where(jnp.isfinite(v), v, 0.0), g)
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), val

        (p, _), losses = jax.lax.scan(
            step, (params, opt.init(params)), jax.random.split(key, n_steps)
        )
        return p, losses

    params, losses = run(params, key)
    return eqx.combine(params, static), losses


@eqx.filter_jit
def policy_recommend(
    policy: CMPolicy,
    predictor: ScenarioPredictor,
    state: Float[Array, "cells features"],
    adjacency: Float[Array, "cells cells"],
    current_cm: Mapping[str, Float[Array, " cells"]],
    objective: AbstractObjective | None = None,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    safety: SafetyConfig | None = None,
) -> Recommendation:
    """The policy's CM, rounded onto the grid inside the trust region, after the safety check.

    Pure and jit-compiled; vmap it over areas with ``eqx.filter_vmap``.
    """
    objective = KPIObjective() if objective is None else objective
    safety = SafetyConfig() if safety is None else safety
    prob = _problem(lambda cm: predictor(state, cm), current_cm, objective, schema, safety)
    x = schema.to_vector(policy_cm(policy, state, adjacency, schema))
    return _finalise(prob, prob.box.x_of(prob.box.k_of(x)))


__all__ = ["CMPolicy", "policy_cm", "policy_recommend", "train_policy"]
