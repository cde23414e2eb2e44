"""Derivative-free baselines for CM search, on the same evaluation budget as `opt.search`.

All three search the same space as the gradient search (the operator's grid inside the trust
region of `opt.safety`), maximise the same safe score (`opt.safety.safe_score`), count predictor
evaluations (``n_evals``, the final safety check excluded, as for the gradient search), and return
the same `opt.search.Recommendation` after the same safety check.

* `random_search`: the current CM plus ``n_evals − 1`` uniform grid points of the trust region.
* `coordinate_descent`: greedy ±1-step coordinate sweeps from the current CM
  (`opt.search.coordinate_refine`).
* `cma_es`: CMA-ES (Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772, with the
  default population size and weights of its Table 1) on the trust region scaled to ``[0, 1]^d``,
  each sample evaluated at its nearest grid point. A compact JAX implementation (jit/vmap-able);
  it eigendecomposes the ``d × d`` covariance every generation, so it is meant for areas of up to
  a few hundred parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema

from .objectives import AbstractObjective, KPIObjective, Predictor
from .safety import SafetyConfig
from .search import Recommendation, _check_inputs, _finalise, _problem, coordinate_refine


def _prepare(current_cm, objective, schema, safety, n_evals):
    objective = KPIObjective() if objective is None else objective
    safety = SafetyConfig() if safety is None else safety
    _check_inputs(current_cm, schema, objective, safety, None, batch=False)
    if int(n_evals) < 1:
        raise ValueError(f"n_evals must be >= 1, got {n_evals}")
    return objective, safety, {k: jnp.asarray(current_cm[k], jnp.float32) for k in schema.names}


@eqx.filter_jit
def _random_search(key, predictor, cm, objective, schema, safety, n_evals, eval_batch):
    prob = _problem(predictor, cm, objective, schema, safety)
    box = prob.box
    k_cur = box.k_of(box.x_cur)
    r = jax.random.uniform(key, (n_evals - 1, *k_cur.shape))
    k_rand = jnp.floor(box.k_lo + r * (box.k_hi - box.k_lo + 1.0))
    k_all = jnp.concatenate([k_cur[None], jnp.minimum(k_rand, box.k_hi)])
    # evaluated eval_batch candidates at a time: an expensive predictor (the twin simulation)
    # vmapped over every candidate at once can need tens of GiB
    scores = jax.lax.map(prob.score_k, k_all, batch_size=min(eval_batch, n_evals))
    best = jnp.argmax(scores)
    return _finalise(prob, box.x_of(k_all[best]), scores[best])


def random_search(
    key: PRNGKeyArray,
    predictor: Predictor,
    current_cm: Mapping[str, Float[Array, " cells"]],
    objective: AbstractObjective | None = None,
    *,
    n_evals: int = 256,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    safety: SafetyConfig | None = None,
    eval_batch: int = 64,
) -> Recommendation:
    """Best of the current CM and ``n_evals − 1`` uniform grid points of the trust region.

    Candidates are scored ``eval_batch`` at a time (vmapped within a batch), which bounds memory
    for expensive predictors.
    """
    objective, safety, cm = _prepare(current_cm, objective, schema, safety, n_evals)
    if int(eval_batch) < 1:
        raise ValueError(f"eval_batch must be >= 1, got {eval_batch}")
    return _random_search(
        key, predictor, cm, objective, schema, safety, int(n_evals), int(eval_batch)
    )


@eqx.filter_jit
def _coordinate_descent(predictor, cm, objective, schema, safety, n_evals):
    prob = _problem(predictor, cm, objective, schema, safety)
    box = prob.box
    k_cur = box.k_of(box.x_cur)
    n_sweeps = max(1, (n_evals - 1) // (2 * k_cur.size))
    k, s = coordinate_refine(prob.score_k, box, k_cur, n_sweeps)
    return _finalise(prob, box.x_of(k), s)


def coordinate_descent(
    predictor: Predictor,
    current_cm: Mapping[str, Float[Array, " cells"]],
    objective: AbstractObjective | None = None,
    *,
    n_evals: int = 256,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    safety: SafetyConfig | None = None,
) -> Recommendation:
    """Greedy ±1-step coordinate descent from the current CM (``2 cells params`` evals/sweep)."""
    objective, safety, cm = _prepare(current_cm, objective, schema, safety, n_evals)
    return _coordinate_descent(predictor, cm, objective, schema, safety, int(n_evals))


class CMAState(eqx.Module):
    """CMA-ES state (Hansen 2016, arXiv:1604.00772, Fig. 6 notation)."""

    mean: Float[Array, " d"]
    sigma: Float[Array, ""]
    cov: Float[Array, "d d"]
    p_sigma: Float[Array, " d"]
    p_c: Float[Array, " d"]
    generation: Float[Array, ""]


def cma_es_minimise(
    key: PRNGKeyArray,
    fn,
    x0: Float[Array, " d"],
    sigma0: float,
    n_generations: int,
    popsize: int | None = None,
) -> tuple[Float[Array, " d"], Float[Array, ""]]:
    """Minimise ``fn: [d] -> scalar`` by CMA-ES; returns the best sample seen and its value.

    Default strategy parameters of Hansen (2016), Table 1: ``λ = 4 + ⌊3 ln d⌋``, ``μ = ⌊λ/2⌋``,
    log-linear positive recombination weights, rank-one and rank-μ covariance updates and
    cumulative step-size adaptation. Non-finite values rank last.
    """
    d = x0.shape[0]
    lam = popsize or 4 + int(3 * math.log(d))
    mu = lam // 2
    w_np = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w_np = w_np / w_np.sum()
    mu_eff = float(1.0 / np.sum(w_np**2))
    w = jnp.asarray(w_np, jnp.float32)
    c_s = (mu_eff + 2) / (d + mu_eff + 5)
    d_s = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (d + 1)) - 1) + c_s
    c_c = (4 + mu_eff / d) / (d + 4 + 2 * mu_eff / d)
    c_1 = 2 / ((d + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((d + 2) ** 2 + mu_eff))
    chi_n = math.sqrt(d) * (1 - 1 / (4 * d) + 1 / (21 * d**2))

    def generation(carry, key_g):
        st, best_x, best_f = carry
        evals, evecs = jnp.linalg.eigh(st.cov)
        dvec = jnp.sqrt(jnp.maximum(evals, 1e-20))
        z = jax.random.normal(key_g, (lam, d))
        y = (z * dvec) @ evecs.T
        x = st.mean + st.sigma * y
        f = jax.vmap(fn)(x)
        f = jnp.where(jnp.isfinite(f), f, jnp.inf)
        order = jnp.argsort(f)
        i_best = order[0]
        better = f[i_best] < best_f
        best_x = jnp.where(better, x[i_best], best_x)
        best_f = jnp.where(better, f[i_best], best_f)
        y_sel = y[order[:mu]]
        y_w = w @ y_sel
        mean = st.mean + st.sigma * y_w
        c_inv_sqrt_yw = evecs @ ((evecs.T @ y_w) / dvec)
        p_s = (1 - c_s) * st.p_sigma + math.sqrt(c_s * (2 - c_s) * mu_eff) * c_inv_sqrt_yw
        g1 = st.generation + 1
        norm_ps = jnp.linalg.norm(p_s)
        h_s = norm_ps / jnp.sqrt(1 - (1 - c_s) ** (2 * g1)) < (1.4 + 2 / (d + 1)) * chi_n
        h_s = h_s.astype(jnp.float32)
        p_c = (1 - c_c) * st.p_c + h_s * math.sqrt(c_c * (2 - c_c) * mu_eff) * y_w
        rank_mu = (y_sel * w[:, None]).T @ y_sel
        cov = (
            (1 - c_1 - c_mu) * st.cov
            + c_1 * (jnp.outer(p_c, p_c) + (1 - h_s) * c_c * (2 - c_c) * st.cov)
            + c_mu * rank_mu
        )
        cov = 0.5 * (cov + cov.T)
        sigma = st.sigma * jnp.exp(jnp.clip((c_s / d_s) * (norm_ps / chi_n - 1), -1.0, 1.0))
        st = CMAState(mean, sigma, cov, p_s, p_c, g1)
        return (st, best_x, best_f), None

    st0 = CMAState(
        x0.astype(jnp.float32),
        jnp.asarray(sigma0, jnp.float32),
        jnp.eye(d, dtype=jnp.float32),
        jnp.zeros((d,), jnp.float32),
        jnp.zeros((d,), jnp.float32),
        jnp.asarray(0.0, jnp.float32),
    )
    f0 = fn(x0)
    f0 = jnp.where(jnp.isfinite(f0), f0, jnp.inf)
    (_, best_x, best_f), _ = jax.lax.scan(
        generation, (st0, x0, f0), jax.random.split(key, n_generations)
    )
    return best_x, best_f


@eqx.filter_jit
def _cma_es(key, predictor, cm, objective, schema, safety, n_evals, sigma0):
    prob = _problem(predictor, cm, objective, schema, safety)
    box = prob.box
    lo, hi = box.low + box.k_lo * box.step, jnp.minimum(box.low + box.k_hi * box.step, box.high)
    width = jnp.maximum(hi - lo, 1e-6)
    shape = lo.shape

    def to_x(y):
        return lo + jnp.clip(y.reshape(shape), 0.0, 1.0) * width

    def fn(y):
        return -prob.score_k(box.k_of(to_x(y)))

    d = lo.size
    lam = 4 + int(3 * math.log(d))
    y0 = ((box.x_cur - lo) / width).reshape(-1)
    y_best, _ = cma_es_minimise(key, fn, y0, sigma0, max(1, (n_evals - 1) // lam), lam)
    return _finalise(prob, box.x_of(box.k_of(to_x(y_best))))


def cma_es(
    key: PRNGKeyArray,
    predictor: Predictor,
    current_cm: Mapping[str, Float[Array, " cells"]],
    objective: AbstractObjective | None = None,
    *,
    n_evals: int = 256,
    sigma0: float = 0.3,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    safety: SafetyConfig | None = None,
) -> Recommendation:
    """CMA-ES over the trust region (scaled to ``[0, 1]^d``), started at the current CM.

    Args:
        sigma0: initial step size in trust-region-widths (0.3: a third of the region).
        n_evals: budget; ``(n_evals − 1) // λ`` generations of ``λ = 4 + ⌊3 ln d⌋`` samples.
    """
    objective, safety, cm = _prepare(current_cm, objective, schema, safety, n_evals)
    if not sigma0 > 0:
        raise ValueError(f"cma_es: sigma0 must be > 0, got {sigma0}")
    return _cma_es(key, predictor, cm, objective, schema, safety, int(n_evals), float(sigma0))


__all__ = [
    "CMAState",
    "cma_es",
    "cma_es_minimise",
    "coordinate_descent",
    "random_search",
]
