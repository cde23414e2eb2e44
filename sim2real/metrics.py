"""Accuracy, response-fidelity and twin/commercial similarity metrics.

* `mape`, `mae`: pointwise accuracy (optionally masked).
* `spearman`, `response_fidelity`: does the surrogate *rank* CM candidates like the truth, per
  cell, and get the sign of the KPI change w.r.t. the default CM right?
* `auc`, `domain_similarity_pct`: a classifier two-sample test (Lopez-Paz & Oquab 2017,
  arXiv:1610.06545) between twin and commercial (state, KPI) feature rows.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray


def _masked_mean(x: Array, mask: Array | None) -> Array:
    if mask is None:
        return x.mean()
    m = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
    return (x * m).sum() / jnp.maximum(m.sum(), 1.0)


def mape(
    pred: Float[Array, "..."],
    true: Float[Array, "..."],
    mask: Bool[Array, "..."] | None = None,
    eps: float = 1e-6,
) -> Float[Array, ""]:
    """Mean absolute percentage error ``100 mean(|pred - true| / max(|true|, eps))`` in %."""
    pred, true = jnp.asarray(pred), jnp.asarray(true)
    return 100.0 * _masked_mean(jnp.abs(pred - true) / jnp.maximum(jnp.abs(true), eps), mask)


def mae(
    pred: Float[Array, "..."], true: Float[Array, "..."], mask: Bool[Array, "..."] | None = None
) -> Float[Array, ""]:
    """Mean absolute error ``mean(|pred - true|)`` (unit of the inputs)."""
    return _masked_mean(jnp.abs(jnp.asarray(pred) - jnp.asarray(true)), mask)


def rankdata(x: Float[Array, " n"]) -> Float[Array, " n"]:
    """Ranks 1..n along the last axis, ties get their average rank (scipy's ``"average"``).

    ``O(n log n)`` time and ``O(n)`` memory (sort + binary search): a value with ``l`` smaller
    and ``r - l`` equal values (itself included) gets rank ``(l + r + 1) / 2``.
    """
    x = jnp.asarray(x)

    def one(v):
        xs = jnp.sort(v)
        left = jnp.searchsorted(xs, v, side="left")
        right = jnp.searchsorted(xs, v, side="right")
        return ((left + right + 1) / 2.0).astype(jnp.float32)

    if x.ndim == 0:
        raise ValueError("rankdata: need at least one axis")
    flat = x.reshape(-1, x.shape[-1])
    return jax.vmap(one)(flat).reshape(x.shape)


def spearman(x: Float[Array, "... n"], y: Float[Array, "... n"]) -> Float[Array, "..."]:
    """Spearman rank correlation along the last axis (Pearson of average ranks).

    NaN where either input is constant along the axis (as ``scipy.stats.spearmanr``).
    """
    rx, ry = rankdata(x), rankdata(y)
    rx = rx - rx.mean(-1, keepdims=True)
    ry = ry - ry.mean(-1, keepdims=True)
    den = jnp.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))
    return jnp.where(den > 0, (rx * ry).sum(-1) / jnp.where(den > 0, den, 1.0), jnp.nan)


@dataclasses.dataclass(frozen=True)
class ResponseFidelity:
    """Per-cell response fidelity.

    Attributes:
        spearman: ``[cells]`` rank correlation between predicted and true KPI over candidates.
        sign_accuracy: ``[cells]`` share of candidates where the predicted KPI change vs. the
            default CM has the true sign (candidates whose true change is below ``tol`` are
            excluded; NaN if none remains).
    """

    spearman: Float[Array, " cells"]
    sign_accuracy: Float[Array, " cells"]


def response_fidelity(
    pred: Float[Array, "candidates cells"],
    true: Float[Array, "candidates cells"],
    default_index: int = 0,
    tol: float = 0.0,
) -> ResponseFidelity:
    """Response fidelity of KPI predictions across CM candidates, per cell.

    Args:
        pred, true: KPI for each CM candidate (rows) and cell (columns), same units.
        default_index: row of the default-CM candidate (reference of the changes).
        tol: true changes with ``|delta| <= tol`` are ignored by the sign accuracy.
    """
    pred, true = jnp.asarray(pred), jnp.asarray(true)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(
            f"response_fidelity: pred and true must both be [candidates, cells], got "
            f"{pred.shape} and {true.shape}"
        )
    if not -pred.shape[0] <= default_index < pred.shape[0]:
        raise ValueError(f"response_fidelity: default_index {default_index} out of range")
    rho, acc = _fidelity(pred, true, default_index % pred.shape[0], tol)
    return ResponseFidelity(rho, acc)


@functools.partial(jax.jit, static_argnums=(2,))
def _fidelity(pred, true, default_index, tol):
    rho = spearman(pred.T, true.T)
    dp = pred - pred[default_index]
    dt = true - true[default_index]
    valid = jnp.abs(dt) > tol
    agree = (jnp.sign(dp) == jnp.sign(dt)) & valid
    n = valid.sum(0)
    return rho, jnp.where(n > 0, agree.sum(0) / jnp.maximum(n, 1), jnp.nan)


def auc(scores: Float[Array, " n"], labels: Bool[Array, " n"]) -> Float[Array, ""]:
    """Area under the ROC curve = Mann-Whitney ``U / (n_pos n_neg)`` (ties count 1/2)."""
    scores, labels = jnp.asarray(scores), jnp.asarray(labels, bool)
    r = rankdata(scores)
    n_pos = labels.sum().astype(jnp.float32)  # float: n_pos * n_neg overflows int32 at 1e5 rows
    n_neg = labels.size - n_pos
    u = jnp.where(labels, r, 0.0).sum() - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def _quadratic(x: Array) -> Array:
    return jnp.concatenate([x, x**2], axis=-1)


@functools.partial(jax.jit, static_argnums=(3,))
def _c2st_auc(key, a, b, steps, learning_rate):
    pooled = jnp.concatenate([a, b])
    mu, sd = pooled.mean(0), pooled.std(0)
    sd = jnp.where(sd > 0, sd, 1.0)
    a, b = (a - mu) / sd, (b - mu) / sd
    ka, kb = jax.random.split(key)
    pa, pb = jax.random.permutation(ka, a.shape[0]), jax.random.permutation(kb, b.shape[0])
    ha, hb = a.shape[0] // 2, b.shape[0] // 2
    x_tr = _quadratic(jnp.concatenate([a[pa[:ha]], b[pb[:hb]]]))
    y_tr = jnp.concatenate([jnp.zeros(ha), jnp.ones(hb)])
    x_te = _quadratic(jnp.concatenate([a[pa[ha:]], b[pb[hb:]]]))
    y_te = jnp.concatenate([jnp.zeros(a.shape[0] - ha), jnp.ones(b.shape[0] - hb)]).astype(bool)
    w_bal = jnp.where(y_tr > 0, 0.5 / hb, 0.5 / ha)

    def loss(p):
        logit = x_tr @ p["w"] + p["b"]
        bce = optax.sigmoid_binary_cross_entropy(logit, y_tr)
        return (bce * w_bal).sum() + 1e-3 * (p["w"] ** 2).sum()

    opt = optax.adam(learning_rate)
    p0 = {"w": jnp.zeros(x_tr.shape[1]), "b": jnp.zeros(())}

    def body(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (p0, opt.init(p0)), None, length=steps)
    return auc(x_te @ p["w"] + p["b"], y_te)


def domain_similarity_pct(
    key: PRNGKeyArray,
    features_a: Float[Array, "n_a d"],
    features_b: Float[Array, "n_b d"],
    *,
    steps: int = 300,
    learning_rate: float = 0.05,
) -> Float[Array, ""]:
    """Twin/commercial similarity in %, from a classifier two-sample test.

    Definition: pool the rows (e.g. per-cell ``(state, log KPI)`` features of both domains),
    standardise with the pooled mean/std, split each domain at random in halves, fit a
    logistic regression on quadratic features (``[x, x^2]``, L2 1e-3) to tell the domains apart
    on the first halves, and compute its ROC AUC on the held-out halves. Then

        similarity = 100 (1 - 2 |AUC - 0.5|) %

    100 % means the classifier cannot tell the domains apart (AUC 0.5, same distribution up to
    second moments per feature); 0 % means perfectly separable. (Lopez-Paz & Oquab 2017.)

    Args:
        key: PRNG key (split, initialisation is zero so only the split is random).
        features_a, features_b: feature rows of the two domains (>= 4 rows each).
        steps, learning_rate: Adam steps / rate of the logistic regression.
    """
    a = jnp.asarray(features_a, jnp.float32)
    b = jnp.asarray(features_b, jnp.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            "domain_similarity_pct: features must be [rows, d] with equal d, got "
            f"{a.shape}, {b.shape}"
        )
    if a.shape[0] < 4 or b.shape[0] < 4:
        raise ValueError("domain_similarity_pct: need at least 4 rows per domain")
    a_uc = _c2st_auc(key, a, b, steps, jnp.asarray(learning_rate, jnp.float32))
    return 100.0 * (1.0 - 2.0 * jnp.abs(a_uc - 0.5))
