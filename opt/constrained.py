"""Augmented Lagrangian for inequality-constrained minimisation with projected optax steps.

Problem: ``min_x f(x)`` s.t. ``g(x) ≤ 0`` (``g: X -> R^m``) and ``x ∈ C`` (a box handled by
projection). The augmented Lagrangian for inequalities (Nocedal & Wright, *Numerical
Optimization*, 2nd ed., eq. 17.65; Rockafellar 1973) is

    L_μ(x, λ) = f(x) + (1 / (2μ)) Σ_i [ max(0, λ_i + μ g_i(x))² − λ_i² ],

minimised approximately in ``x`` by ``n_inner`` projected optimiser steps (the inner loop); then
the multipliers are updated ``λ_i ← max(0, λ_i + μ g_i(x))`` and the penalty grows
``μ ← min(μ_growth μ, μ_max)`` (the outer loop). With no constraints (``m = 0``) it is plain
projected gradient descent.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree


class ALResult(eqx.Module):
    """Outcome of `augmented_lagrangian`.

    Attributes:
        x: the final iterate (projected, finite).
        multipliers: final Lagrange multipliers ``λ ≥ 0``, shape ``[m]``.
        objective: ``f(x)``.
        max_violation: ``max(0, max_i g_i(x))`` (0 when feasible or ``m = 0``).
    """

    x: PyTree
    multipliers: Float[Array, " m"]
    objective: Float[Array, ""]
    max_violation: Float[Array, ""]


def _finite_tree(new, old):
    """Keep ``old`` wherever ``new`` is not finite (guards against NaN/inf gradients)."""
    return jax.tree.map(lambda a, b: jnp.where(jnp.isfinite(a), a, b), new, old)


def projected_steps(
    loss_fn: Callable[[PyTree], Float[Array, ""]],
    x0: PyTree,
    project: Callable[[PyTree], PyTree],
    optimizer: optax.GradientTransformation,
    n_steps: int,
) -> PyTree:
    """``n_steps`` of ``x ← project(x + optimizer_update(∇loss(x)))`` under `jax.lax.scan`.

    Non-finite gradient entries are zeroed and non-finite iterates are rejected entry-wise, so
    the result is always finite and inside the projection's set when ``x0`` is.
    """
    grad_fn = jax.grad(loss_fn)

    def step(carry, _):
        x, state = carry
        g = grad_fn(x)
        g = jax.tree.map(lambda v: jnp.where(jnp.isfinite(v), v, 0.0), g)
        updates, state = optimizer.update(g, state, x)
        x_new = project(_finite_tree(optax.apply_updates(x, updates), x))
        return (_finite_tree(x_new, x), state), None

    (x, _), _ = jax.lax.scan(step, (x0, optimizer.init(x0)), None, length=n_steps)
    return x


def augmented_lagrangian(
    fun: Callable[[PyTree], tuple[Float[Array, ""], Float[Array, " m"]]],
    x0: PyTree,
    project: Callable[[PyTree], PyTree],
    optimizer: optax.GradientTransformation,
    *,
    n_outer: int = 8,
    n_inner: int = 50,
    mu: float = 10.0,
    mu_growth: float = 2.0,
    mu_max: float = 1e4,
) -> ALResult:
    """Minimise ``f`` s.t. ``g(x) ≤ 0`` and ``x = project(x)``, where ``fun(x) = (f(x), g(x))``.

    Args:
        fun: ``x -> (f, g)``: ``f`` scalar to minimise, ``g`` shape ``[m]`` feasible where
            ``g ≤ 0`` (one call, so a shared prediction is computed once). Normalise the
            constraints to comparable scales (dimensionless) for good conditioning.
        x0: starting point (a pytree, inside the projection's set).
        project: projection onto the simple set (e.g. a box clip).
        optimizer: inner optax optimiser (re-initialised each outer iteration).
        n_outer: outer (multiplier) iterations; 1 is used when ``m = 0``.
        n_inner: inner projected steps per outer iteration.
        mu: initial penalty parameter ``μ > 0``.
        mu_growth: factor on ``μ`` after each outer iteration (>= 1).
        mu_max: cap on ``μ``.

    Returns:
        An `ALResult`.
    """
    if mu <= 0 or mu_growth < 1 or n_outer < 1 or n_inner < 1:
        raise ValueError(
            f"augmented_lagrangian: need mu > 0, mu_growth >= 1, n_outer >= 1, n_inner >= 1; "
            f"got mu={mu}, mu_growth={mu_growth}, n_outer={n_outer}, n_inner={n_inner}"
        )
    m = jax.eval_shape(fun, x0)[1].shape[0]
    if m == 0:
        n_outer, n_inner = 1, n_outer * n_inner

    def outer(carry, _):
        x, lam, mu_k = carry

        def lagrangian(x_):
            f, g = fun(x_)
            return f + jnp.sum(jnp.maximum(0.0, lam + mu_k * g) ** 2 - lam**2) / (2.0 * mu_k)

        x = projected_steps(lagrangian, x, project, optimizer, n_inner)
        g = fun(x)[1]
        lam = jnp.where(jnp.isfinite(g), jnp.maximum(0.0, lam + mu_k * g), lam)
        return (x, lam, jnp.minimum(mu_k * mu_growth, mu_max)), None

    lam0 = jnp.zeros((m,), jnp.float32)
    (x, lam, _), _ = jax.lax.scan(
        outer, (x0, lam0, jnp.asarray(mu, jnp.float32)), None, length=n_outer
    )
    f, g = fun(x)
    viol = jnp.max(jnp.maximum(g, 0.0), initial=0.0) if m else jnp.zeros((), jnp.float32)
    return ALResult(x, lam, f, viol)


__all__ = ["ALResult", "augmented_lagrangian", "projected_steps"]
