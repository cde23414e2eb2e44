"""Conditional VAE of UE behaviour: position in the sector, indoor state, mobility and demand.

Each UE of a cell is described by a feature vector ``x`` (`N_UE_FEATURES` = 7 entries, in an
unconstrained space so that a Gaussian decoder is sensible):

=====  ===========================================================================================
index  feature
=====  ===========================================================================================
0      logit of the normalised distance ``r = (d_2D - d_min) / (R - d_min)`` in (0, 1), ``R`` the
       cell range (TR 38.901 drop: UEs uniform in the cell area, so ``p(r)`` grows with ``r``)
1      logit of ``(angle + 60 deg) / 120 deg``: angle relative to the cell boresight, inside a
       120-degree sector (three sectors per site, TR 38.901 Table 7.8-1)
2      log(1 + speed in km/h)
3, 4   cos, sin of the heading (direction of motion, degrees counter-clockwise from east)
5      log of the demand in Mbps (log-normal demand)
6      indoor state, 0/1 (Bernoulli)
=====  ===========================================================================================

Model (Kingma & Welling 2014; conditional form Sohn et al. 2015): prior ``p(z) = N(0, I)``,
encoder ``q(z | x, c) = N(mu(x, c), diag sigma^2(x, c))``, decoder ``p(x | z, c)`` Gaussian on
entries 0-5 and Bernoulli on entry 6. UEs of a cell are i.i.d. given the context ``c``
(`dtwin.ue.context`). The ELBO is

    log p(x | c) >= E_q[log p(x | z, c)] - KL(q(z | x, c) || N(0, I)).

Sampling uses the reparameterisation trick (``z = eps``, ``u = mu + sigma * eps'``) and a relaxed
Bernoulli (Gumbel-sigmoid, Maddison et al. 2017 / Jang et al. 2017) for the indoor state, so
every sampled quantity is differentiable w.r.t. the decoder parameters.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .context import AREA_TYPES, N_CONTEXT_FEATURES, Context

N_UE_FEATURES = 7
N_GAUSSIAN = 6
SECTOR_HALF_WIDTH_DEG = 60.0
# Inter-site distances of the TR 38.901 scenarios used per area type (Table 7.2-1: UMi 200 m,
# UMa 500 m, RMa 1732 m); suburban is taken between UMa and RMa.
DEFAULT_ISD_M: dict[str, float] = {
    "metro": 200.0,
    "urban": 500.0,
    "suburban": 1000.0,
    "rural": 1732.0,
}
_EPS = 1e-4
_LOG_2PI = math.log(2.0 * math.pi)


def default_cell_range_m(area_type: str) -> float:
    """Hexagon radius ``ISD / sqrt(3)`` of the area type's default scenario, in m."""
    if area_type not in DEFAULT_ISD_M:
        raise ValueError(f"area_type: unknown {area_type!r}; expected one of {AREA_TYPES}")
    return DEFAULT_ISD_M[area_type] / math.sqrt(3.0)


class UEBehaviour(eqx.Module):
    """Sampled behaviour of a UE population of one cell (all arrays ``[ues]``, float32).

    Attributes:
        distance_2d_m: horizontal distance to the site, m.
        angle_deg: angle relative to the cell boresight, in (-60, 60) degrees.
        indoor_prob: relaxed indoor state in [0, 1] (Gumbel-sigmoid; near 0/1 at low temperature).
        speed_kmh: speed, km/h (>= 0).
        heading_deg: direction of motion, degrees counter-clockwise from east, (-180, 180].
        demand_mbps: offered traffic demand, Mbps (> 0).
    """

    distance_2d_m: Float[Array, " ues"]
    angle_deg: Float[Array, " ues"]
    indoor_prob: Float[Array, " ues"]
    speed_kmh: Float[Array, " ues"]
    heading_deg: Float[Array, " ues"]
    demand_mbps: Float[Array, " ues"]

    @property
    def indoor(self):
        """Hard indoor state, ``indoor_prob > 0.5`` (not differentiable)."""
        return self.indoor_prob > 0.5


def encode_ues(
    distance_frac: Float[Array, " ues"],
    angle_deg: Float[Array, " ues"],
    indoor: Float[Array, " ues"],
    speed_kmh: Float[Array, " ues"],
    heading_deg: Float[Array, " ues"],
    demand_mbps: Float[Array, " ues"],
) -> Float[Array, "ues 7"]:
    """Map physical UE attributes to the model's feature vector (see the module docstring).

    Args:
        distance_frac: normalised distance ``(d - d_min) / (R - d_min)``, in [0, 1].
        angle_deg: angle to the boresight, degrees, in [-60, 60].
        indoor: 0/1 indoor state.
        speed_kmh: speed in km/h, >= 0.
        heading_deg: heading, degrees.
        demand_mbps: demand in Mbps, > 0.
    """
    r = jnp.clip(distance_frac, _EPS, 1.0 - _EPS)
    a = jnp.clip((angle_deg + SECTOR_HALF_WIDTH_DEG) / (2 * SECTOR_HALF_WIDTH_DEG), _EPS, 1 - _EPS)
    h = jnp.deg2rad(heading_deg)
    return jnp.stack(
        [
            jnp.log(r) - jnp.log1p(-r),
            jnp.log(a) - jnp.log1p(-a),
            jnp.log1p(jnp.maximum(speed_kmh, 0.0)),
            jnp.cos(h),
            jnp.sin(h),
            jnp.log(demand_mbps),
            indoor.astype(jnp.float32),
        ],
        axis=-1,
    ).astype(jnp.float32)


def decode_features(
    u: Float[Array, "ues 6"],
    indoor_prob: Float[Array, " ues"],
    cell_range_m: float,
    min_distance_m: float = 10.0,
) -> UEBehaviour:
    """Inverse of `encode_ues` for the Gaussian entries; differentiable (softplus speed floor)."""
    r = jax.nn.sigmoid(u[:, 0])
    return UEBehaviour(
        distance_2d_m=min_distance_m + r * (cell_range_m - min_distance_m),
        angle_deg=(2.0 * jax.nn.sigmoid(u[:, 1]) - 1.0) * SECTOR_HALF_WIDTH_DEG,
        indoor_prob=indoor_prob,
        speed_kmh=jax.nn.relu(jnp.expm1(u[:, 2])),
        heading_deg=jnp.rad2deg(jnp.arctan2(u[:, 4], u[:, 3])),
        demand_mbps=jnp.exp(u[:, 5]),
    )


class CVAE(eqx.Module):
    """Conditional VAE ``q(z | x, c)``, ``p(x | z, c)`` with MLP encoder and decoder.

    Attributes:
        encoder: MLP ``[x, c] -> [mu_z, log_sigma_z]``.
        decoder: MLP ``[z, c] -> [mu_x (6), log_sigma_x (6), indoor logit (1)]``.
        latent_size: dimension of ``z`` (static).
    """

    encoder: eqx.nn.MLP
    decoder: eqx.nn.MLP
    latent_size: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        latent_size: int = 4,
        width: int = 64,
        depth: int = 2,
        context_size: int = N_CONTEXT_FEATURES,
    ):
        ke, kd = jr.split(key)
        self.latent_size = latent_size
        self.encoder = eqx.nn.MLP(
            N_UE_FEATURES + context_size, 2 * latent_size, width, depth, jax.nn.gelu, key=ke
        )
        self.decoder = eqx.nn.MLP(
            latent_size + context_size, 2 * N_GAUSSIAN + 1, width, depth, jax.nn.gelu, key=kd
        )

    def encode(self, x: Float[Array, " 7"], c: Float[Array, " features"]):
        """Mean and log-std of ``q(z | x, c)`` for one UE."""
        out = self.encoder(jnp.concatenate([x, c]))
        return out[: self.latent_size], jnp.clip(out[self.latent_size :], -6.0, 3.0)

    def decode(self, z: Float[Array, " latent"], c: Float[Array, " features"]):
        """Mean and log-std of the Gaussian entries and the indoor logit of ``p(x | z, c)``."""
        out = self.decoder(jnp.concatenate([z, c]))
        return out[:N_GAUSSIAN], jnp.clip(out[N_GAUSSIAN : 2 * N_GAUSSIAN], -5.0, 3.0), out[-1]


def _log_px_given_z(model: CVAE, x, z, c) -> Float[Array, ""]:
    mu, log_sigma, logit = model.decode(z, c)
    u = x[:N_GAUSSIAN]
    gauss = -0.5 * jnp.sum(((u - mu) * jnp.exp(-log_sigma)) ** 2 + 2 * log_sigma + _LOG_2PI)
    bern = x[-1] * jax.nn.log_sigmoid(logit) + (1.0 - x[-1]) * jax.nn.log_sigmoid(-logit)
    return gauss + bern


def elbo(
    key: PRNGKeyArray, model: CVAE, x: Float[Array, " 7"], c: Float[Array, " features"]
) -> Float[Array, ""]:
    """Single-sample ELBO (nats) of one UE ``x`` given context ``c`` (reparameterised)."""
    mu, log_sigma = model.encode(x, c)
    z = mu + jnp.exp(log_sigma) * jr.normal(key, mu.shape)
    kl = 0.5 * jnp.sum(jnp.exp(2 * log_sigma) + mu**2 - 1.0 - 2 * log_sigma)
    return _log_px_given_z(model, x, z, c) - kl


def mean_negative_elbo(
    key: PRNGKeyArray, model: CVAE, x: Float[Array, "batch 7"], c: Float[Array, "batch features"]
) -> Float[Array, ""]:
    """Mean negative ELBO (nats per UE) over a batch; the training loss."""
    keys = jr.split(key, x.shape[0])
    return -jnp.mean(jax.vmap(elbo, in_axes=(0, None, 0, 0))(keys, model, x, c))


def log_likelihood_iw(
    key: PRNGKeyArray,
    model: CVAE,
    x: Float[Array, " 7"],
    c: Float[Array, " features"],
    n_samples: int = 64,
) -> Float[Array, ""]:
    """Importance-weighted estimate of ``log p(x | c)`` (Burda et al. 2016), nats.

    ``log (1/K) sum_k p(x | z_k, c) p(z_k) / q(z_k | x, c)`` with ``z_k ~ q``; tighter than the
    ELBO and a lower bound of the log-likelihood in expectation.
    """
    mu, log_sigma = model.encode(x, c)
    eps = jr.normal(key, (n_samples, mu.shape[0]))
    z = mu + jnp.exp(log_sigma) * eps
    log_q = -0.5 * jnp.sum(eps**2 + 2 * log_sigma + _LOG_2PI, axis=-1)
    log_p_z = -0.5 * jnp.sum(z**2 + _LOG_2PI, axis=-1)
    log_px = jax.vmap(lambda zz: _log_px_given_z(model, x, zz, c))(z)
    return jax.nn.logsumexp(log_px + log_p_z - log_q) - jnp.log(n_samples)


def sample_features(
    key: PRNGKeyArray,
    model: CVAE,
    context: Float[Array, " features"],
    n_ues: int,
    temperature: float = 0.5,
) -> tuple[Float[Array, "ues 6"], Float[Array, " ues"]]:
    """Reparameterised draw of ``n_ues`` feature vectors: Gaussian part and relaxed indoor state.

    Returns:
        ``(u, indoor_prob)``; ``indoor_prob = sigmoid((logit + L) / temperature)`` with ``L`` a
        standard logistic variable (Gumbel-sigmoid).
    """
    kz, ke, kb = jr.split(key, 3)
    z = jr.normal(kz, (n_ues, model.latent_size))
    mu, log_sigma, logit = jax.vmap(model.decode, in_axes=(0, None))(z, context)
    u = mu + jnp.exp(log_sigma) * jr.normal(ke, mu.shape)
    unif = jr.uniform(kb, (n_ues,), minval=_EPS, maxval=1.0 - _EPS)
    indoor_prob = jax.nn.sigmoid((logit + jnp.log(unif) - jnp.log1p(-unif)) / temperature)
    return u, indoor_prob


def sample(
    key: PRNGKeyArray,
    model: CVAE,
    context: Context | Float[Array, " features"],
    n_ues: int,
    *,
    cell_range_m: float | None = None,
    min_distance_m: float = 10.0,
    temperature: float = 0.5,
) -> UEBehaviour:
    """Generate the UE population of one cell from the context.

    Args:
        key: PRNG key.
        model: trained `CVAE`.
        context: a `Context` or its feature vector.
        n_ues: number of UEs (static).
        cell_range_m: cell range ``R`` in m; default ``ISD / sqrt(3)`` of the context's area type
            (required when ``context`` is a feature vector).
        min_distance_m: minimum BS-UE distance (TR 38.901 Table 7.8-1: 35 m UMa, 10 m UMi).
        temperature: Gumbel-sigmoid temperature of the indoor state.

    Returns:
        `UEBehaviour` with ``[n_ues]`` arrays, differentiable w.r.t. the decoder parameters.
    """
    if isinstance(context, Context):
        if cell_range_m is None:
            cell_range_m = default_cell_range_m(context.area_type)
        context = context.to_features()
    elif cell_range_m is None:
        raise ValueError("sample: cell_range_m is required when context is a feature vector")
    if isinstance(cell_range_m, (int, float)) and cell_range_m <= min_distance_m:
        raise ValueError(
            f"sample: cell_range_m={cell_range_m} must exceed min_distance_m={min_distance_m}"
        )
    if not isinstance(n_ues, int) or n_ues < 1:
        raise ValueError(f"sample: n_ues must be a positive int, got {n_ues!r}")
    u, indoor_prob = sample_features(key, model, context, n_ues, temperature)
    return decode_features(u, indoor_prob, cell_range_m, min_distance_m)


def fit_cvae(
    key: PRNGKeyArray,
    model: CVAE,
    x: Float[Array, "n 7"],
    c: Float[Array, "n features"],
    *,
    steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 3e-3,
    progress: bool = False,
) -> tuple[CVAE, Float[Array, " steps"]]:
    """Maximise the ELBO with Adam on minibatches (``lax.scan`` over steps).

    Returns:
        The trained model and the per-step loss (mean negative ELBO, nats per UE).
    """
    if x.ndim != 2 or x.shape[1] != N_UE_FEATURES:
        raise ValueError(f"fit_cvae: x must have shape [n, {N_UE_FEATURES}], got {x.shape}")
    if c.ndim != 2 or c.shape[0] != x.shape[0]:
        raise ValueError(
            f"fit_cvae: c must have shape [n, features] with n={x.shape[0]}, got {c.shape}"
        )
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.1))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    n = x.shape[0]

    def step(carry, k):
        params, opt_state = carry
        kb, ke = jr.split(k)
        idx = jr.randint(kb, (min(batch_size, n),), 0, n)
        loss, grads = jax.value_and_grad(
            lambda p: mean_negative_elbo(ke, eqx.combine(p, static), x[idx], c[idx])
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, opt_state), jr.split(key, steps))
    del progress  # a single scan; kept for API symmetry with the experiment
    return eqx.combine(params, static), losses
