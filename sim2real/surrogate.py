"""The KPI surrogate: a factorised per-cell graph network (Equinox).

For every cell ``c`` in a snapshot the model predicts the targets in the model domain (log for
positive rates/volumes, see `sim2real.dataset.is_log_target`):

    z_c = prior_c + offset + exp(log_scale) * base(e_c)
          + exp(log_gain) * (r(h_c, x_c, m_c) - r(h_c, x_ref, m_ref))

* ``e_c = encoder(state_c, static_c)`` is the **environment embedding** (traffic, area, height);
  ``base`` maps it to the KPI level at the reference (default) CM, and ``offset``/``log_scale``
  are the per-target output calibration of that level. Together: `EnvironmentPart`.
* ``r`` is the **response** to configuration: own CM ``x_c`` (in [0, 1]) and the aggregated
  neighbour messages ``phi(x_c, x_j, edge_cj)`` over the neighbour graph (one message-passing
  layer, Gilmer et al. 2017, arXiv:1704.01212): their mean and their sum weighted by each
  neighbour's linear relative coupling at the cell's sector centre (`sim2real.graph`; the sum
  reads like an interference total), conditioned on the
  response part's *own* state embedding ``h_c`` and scaled by its own ``log_gain``. Subtracting
  the same network at the reference CM makes it a pure KPI *change* (zero at the default CM), so
  the two parts are identifiable: the environment fixes the level, the response the CM
  sensitivity. `ResponsePart`.

The response shares no array with the environment part: adapting the environment part on
commercial data (which barely varies the CM) can move the predicted level but can neither scale
nor reshape the CM response learned on the twin. (An earlier version let the response read the
environment embedding and share the output scale; adapting the environment then distorted the
response far from the default CM.)

The partition is explicit: `env_filter` / `response_filter` return Equinox filter specs, so
``eqx.partition(model, env_filter(model))`` trains only the environment part (the Sim2Real
adaptation step) while the response learned on the twin stays bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from .dataset import GraphBatch, from_model_domain, to_model_domain
from .graph import EDGE_COUPLING, N_EDGE_FEATURES


class EnvironmentPart(eqx.Module):
    """State (+ static cell features) -> embedding, base KPI level, output calibration.

    Attributes:
        encoder: MLP ``[n_state + n_static] -> [embed]`` applied per cell.
        base_head: linear ``[embed] -> [n_targets]``, KPI at the reference CM (normalised).
        log_scale: ``[n_targets]`` log of the per-target output scale.
        offset: ``[n_targets]`` per-target output offset (model domain).
    """

    encoder: eqx.nn.MLP
    base_head: eqx.nn.Linear
    log_scale: Float[Array, " n_targets"]
    offset: Float[Array, " n_targets"]

    def __init__(
        self,
        key: PRNGKeyArray,
        n_in: int,
        n_targets: int,
        *,
        embed: int = 16,
        hidden: int = 32,
        depth: int = 2,
        offset: Float[Array, " n_targets"] | None = None,
        log_scale: Float[Array, " n_targets"] | None = None,
    ):
        k1, k2 = jax.random.split(key)
        self.encoder = eqx.nn.MLP(n_in, embed, hidden, depth, activation=jax.nn.silu, key=k1)
        self.base_head = eqx.nn.Linear(embed, n_targets, key=k2)
        self.offset = (
            jnp.zeros(n_targets, jnp.float32)
            if offset is None
            else jnp.asarray(offset, jnp.float32)
        )
        self.log_scale = (
            jnp.zeros(n_targets, jnp.float32)
            if log_scale is None
            else jnp.asarray(log_scale, jnp.float32)
        )

    def embed(
        self, state: Float[Array, "cells n_state"], static: Float[Array, "cells n_static"]
    ) -> Float[Array, "cells embed"]:
        """Environment embedding per cell."""
        return jax.vmap(self.encoder)(jnp.concatenate([state, static], axis=-1))

    def base(self, embedding: Float[Array, "cells embed"]) -> Float[Array, "cells n_targets"]:
        """Normalised KPI level at the reference CM."""
        return jax.vmap(self.base_head)(embedding)

    def calibrate(self, y: Float[Array, "cells n_targets"]) -> Float[Array, "cells n_targets"]:
        """Output calibration ``offset + exp(log_scale) * y``."""
        return self.offset + jnp.exp(self.log_scale) * y


class ResponsePart(eqx.Module):
    """(environment embedding, own CM, neighbours' CM) -> normalised KPI change.

    Attributes:
        encoder: MLP ``[n_state + n_static] -> [embed]``, the response's own state embedding.
        message: MLP ``[2 n_cm + 5] -> [n_message]``, one message per (cell, neighbour) edge.
        head: MLP ``[embed + n_cm + 2 n_message] -> [n_targets]`` (mean and coupling-weighted
            sum of the messages).
        log_gain: ``[n_targets]`` log of the per-target response scale.
    """

    encoder: eqx.nn.MLP
    message: eqx.nn.MLP
    head: eqx.nn.MLP
    log_gain: Float[Array, " n_targets"]

    def __init__(
        self,
        key: PRNGKeyArray,
        n_in: int,
        n_cm: int,
        n_targets: int,
        *,
        embed: int = 16,
        hidden: int = 32,
        depth: int = 2,
        n_message: int = 8,
        log_gain: Float[Array, " n_targets"] | None = None,
    ):
        k0, k1, k2 = jax.random.split(key, 3)
        self.encoder = eqx.nn.MLP(n_in, embed, hidden, depth, activation=jax.nn.silu, key=k0)
        self.log_gain = (
            jnp.zeros(n_targets, jnp.float32)
            if log_gain is None
            else jnp.asarray(log_gain, jnp.float32)
        )
        self.message = eqx.nn.MLP(
            2 * n_cm + N_EDGE_FEATURES, n_message, hidden, depth, activation=jax.nn.silu, key=k1
        )
        self.head = eqx.nn.MLP(
            embed + n_cm + 2 * n_message, n_targets, hidden, depth, activation=jax.nn.silu, key=k2
        )

    def embed(
        self, state: Float[Array, "cells n_state"], static: Float[Array, "cells n_static"]
    ) -> Float[Array, "cells embed"]:
        """The response part's own state embedding per cell."""
        return jax.vmap(self.encoder)(jnp.concatenate([state, static], axis=-1))

    def _raw(
        self,
        embedding: Float[Array, "cells embed"],
        cm_unit: Float[Array, "cells n_cm"],
        neighbours: Int[Array, "cells k"],
        edge_features: Float[Array, "cells k n_edge"],
        neighbour_mask: Bool[Array, "cells k"],
    ) -> Float[Array, "cells n_targets"]:
        own = jnp.broadcast_to(cm_unit[:, None, :], (*neighbours.shape, cm_unit.shape[-1]))
        edges = jnp.concatenate([own, cm_unit[neighbours], edge_features], axis=-1)
        msg = jax.vmap(jax.vmap(self.message))(edges)
        w = neighbour_mask.astype(msg.dtype)[..., None]
        agg = (msg * w).sum(axis=1) / jnp.maximum(w.sum(axis=1), 1.0)
        strength = w * 10.0 ** edge_features[..., EDGE_COUPLING, None]
        total = (msg * strength).sum(axis=1)
        return jax.vmap(self.head)(jnp.concatenate([embedding, cm_unit, agg, total], axis=-1))

    def __call__(
        self,
        state: Float[Array, "cells n_state"],
        static: Float[Array, "cells n_static"],
        cm_unit: Float[Array, "cells n_cm"],
        cm_ref_unit: Float[Array, " n_cm"],
        neighbours: Int[Array, "cells k"],
        edge_features: Float[Array, "cells k n_edge"],
        neighbour_mask: Bool[Array, "cells k"],
    ) -> Float[Array, "cells n_targets"]:
        """Scaled KPI change relative to every cell at the reference CM (zero there)."""
        h = self.embed(state, static)
        ref = jnp.broadcast_to(cm_ref_unit, cm_unit.shape)
        # Two calls, not a vmap over ``stack([cm_unit, ref])``: that size-2 axis, under two more
        # vmaps of which one has size 1 and the other not (a 1-member ensemble over several
        # candidates, or an ensemble over one candidate) with the data as traced inputs, was
        # miscompiled on the CPU (jax/jaxlib 0.10.2: inf, NaN or other cells' values; the
        # same jaxpr evaluated op by op was exact). `tests/sim2real/test_surrogate.py` checks it.
        raw = self._raw(h, cm_unit, neighbours, edge_features, neighbour_mask)
        raw_ref = self._raw(h, ref, neighbours, edge_features, neighbour_mask)
        return jnp.exp(self.log_gain) * (raw - raw_ref)


class Surrogate(eqx.Module):
    """Per-cell KPI surrogate ``Surrogate(env, response)``; see the module docstring.

    Attributes:
        env: the environment part (embedding, base level, calibration).
        response: the CM-response part.
        log_targets: per target, model domain is log (static).
    """

    env: EnvironmentPart
    response: ResponsePart
    log_targets: tuple[bool, ...] = eqx.field(static=True)

    def snapshot(
        self,
        state: Float[Array, "cells n_state"],
        static: Float[Array, "cells n_static"],
        cm_unit: Float[Array, "cells n_cm"],
        cm_ref_unit: Float[Array, " n_cm"],
        neighbours: Int[Array, "cells k"],
        edge_features: Float[Array, "cells k n_edge"],
        neighbour_mask: Bool[Array, "cells k"],
        prior: Float[Array, "cells n_targets"],
    ) -> tuple[Float[Array, "cells n_targets"], Float[Array, "cells embed"]]:
        """One snapshot: (model-domain prediction, environment embedding)."""
        level, r, e = self.snapshot_parts(
            state, static, cm_unit, cm_ref_unit, neighbours, edge_features, neighbour_mask, prior
        )
        return level + r, e

    def snapshot_parts(
        self,
        state: Float[Array, "cells n_state"],
        static: Float[Array, "cells n_static"],
        cm_unit: Float[Array, "cells n_cm"],
        cm_ref_unit: Float[Array, " n_cm"],
        neighbours: Int[Array, "cells k"],
        edge_features: Float[Array, "cells k n_edge"],
        neighbour_mask: Bool[Array, "cells k"],
        prior: Float[Array, "cells n_targets"],
    ) -> tuple[Float[Array, "cells n_targets"], Float[Array, "cells n_targets"], Array]:
        """One snapshot split: (level at the reference CM, response term, environment embedding);
        the prediction is ``level + response`` (model domain)."""
        e = self.env.embed(state, static)
        r = self.response(
            state, static, cm_unit, cm_ref_unit, neighbours, edge_features, neighbour_mask
        )
        return prior + self.env.calibrate(self.env.base(e)), r, e


def _snapshot_parts(model: Surrogate, batch: GraphBatch) -> tuple[Array, Array, Array]:
    g = batch.graph
    ef = g.edge_features()

    def one(state, cm_unit, prior):
        return model.snapshot_parts(
            state, batch.static, cm_unit, batch.cm_ref_unit, g.index, ef, g.mask, prior
        )

    return jax.vmap(one)(batch.state, batch.cm_unit, batch.prior)


def _snapshots(model: Surrogate, batch: GraphBatch) -> tuple[Array, Array]:
    level, r, e = _snapshot_parts(model, batch)
    return level + r, e


@eqx.filter_jit
def apply(model: Surrogate, batch: GraphBatch) -> Float[Array, "snapshots cells n_targets"]:
    """Model-domain predictions for every snapshot of ``batch`` (log for log targets)."""
    return _snapshots(model, batch)[0]


@eqx.filter_jit
def apply_parts(
    model: Surrogate, batch: GraphBatch
) -> tuple[Float[Array, "snapshots cells n_targets"], Float[Array, "snapshots cells n_targets"]]:
    """Model-domain ``(level, response)`` for every snapshot; `apply` is their sum. The level is
    the prediction at the reference CM, the response the CM's change from it."""
    level, r, _ = _snapshot_parts(model, batch)
    return level, r


@eqx.filter_jit
def embed(model: Surrogate, batch: GraphBatch) -> Float[Array, "snapshots cells embed"]:
    """Environment embeddings for every snapshot of ``batch``."""
    return _snapshots(model, batch)[1]


@eqx.filter_jit
def predict_kpis(model: Surrogate, batch: GraphBatch) -> Float[Array, "snapshots cells n_targets"]:
    """Predicted targets in physical units (Mbps, ...), ``[snapshots, cells, n_targets]``."""
    return from_model_domain(apply(model, batch), model.log_targets)


def _calibration_init(batch: GraphBatch) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(to_model_domain(batch.targets, batch.log_targets) - batch.prior)
    m = np.asarray(batch.mask)
    rows = z[m] if m.any() else np.zeros((1, z.shape[-1]))
    return rows.mean(axis=0), np.log(np.maximum(rows.std(axis=0), 1e-3))


def _build(
    key: PRNGKeyArray,
    sizes: tuple[int, int, int, int],
    offset: Array,
    log_scale: Array,
    log_targets: tuple[bool, ...],
    embed: int,
    hidden: int,
    depth: int,
    n_message: int,
) -> Surrogate:
    n_state, n_static, n_cm, n_t = sizes
    k1, k2 = jax.random.split(key)
    env = EnvironmentPart(
        k1,
        n_state + n_static,
        n_t,
        embed=embed,
        hidden=hidden,
        depth=depth,
        offset=offset,
        log_scale=log_scale,
    )
    resp = ResponsePart(
        k2,
        n_state + n_static,
        n_cm,
        n_t,
        embed=embed,
        hidden=hidden,
        depth=depth,
        n_message=n_message,
        log_gain=log_scale,
    )
    return Surrogate(env, resp, log_targets)


def key_seed(key: PRNGKeyArray) -> np.ndarray:
    """The raw bits of a PRNG key (typed or legacy uint32), to seed a host-side numpy RNG."""
    raw = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.asarray(raw, np.uint32).ravel()


def materialise(abstract: PyTree, rng: np.random.Generator) -> PyTree:
    """Fill every `eqx.nn.Linear` of an abstract module (from ``eqx.filter_eval_shape``).

    Same distribution as Equinox's default: weights and biases ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))``. Drawn on the host with numpy, so initialisation compiles nothing (XLA
    compilation of the random number generator dominates start-up on small CPUs).
    """

    def fill(x):
        if not isinstance(x, eqx.nn.Linear):
            return x
        fan_in = 1 if x.in_features == "scalar" else int(x.in_features)
        lim = 1.0 / np.sqrt(fan_in)
        w = jnp.asarray(rng.uniform(-lim, lim, x.weight.shape), jnp.float32)
        if x.bias is None:
            return eqx.tree_at(lambda m: m.weight, x, w)
        b = jnp.asarray(rng.uniform(-lim, lim, x.bias.shape), jnp.float32)
        return eqx.tree_at(lambda m: (m.weight, m.bias), x, (w, b))

    return jax.tree.map(fill, abstract, is_leaf=lambda x: isinstance(x, eqx.nn.Linear))


def _host_build(
    rng: np.random.Generator,
    sizes: tuple[int, int, int, int],
    offset: np.ndarray,
    log_scale: np.ndarray,
    log_targets: tuple[bool, ...],
    **kw,
) -> Surrogate:
    n_t = sizes[3]
    abstract = eqx.filter_eval_shape(
        lambda k: _build(k, sizes, jnp.zeros(n_t), jnp.zeros(n_t), log_targets, **kw),
        jax.random.key(0),
    )
    model = materialise(abstract, rng)
    ls = jnp.asarray(log_scale, jnp.float32)
    return eqx.tree_at(
        lambda m: (m.env.offset, m.env.log_scale, m.response.log_gain),
        model,
        (jnp.asarray(offset, jnp.float32), ls, ls),
    )


def init_surrogate(
    key: PRNGKeyArray,
    batch: GraphBatch,
    *,
    embed: int = 16,
    hidden: int = 32,
    depth: int = 2,
    n_message: int = 8,
) -> Surrogate:
    """A fresh surrogate sized for ``batch``, calibration initialised to its target statistics.

    ``offset`` starts at the masked mean and ``log_scale`` (level) and ``log_gain`` (response)
    at the log-std of ``targets - prior`` in the model domain, so the networks' own outputs are
    O(1). Weights are drawn on the host
    (`materialise`) from a numpy RNG seeded by ``key``. ``batch`` must be concrete.
    """
    offset, log_scale = _calibration_init(batch)
    return _host_build(
        np.random.default_rng(key_seed(key)),
        _sizes(batch),
        offset,
        log_scale,
        tuple(batch.log_targets),
        embed=embed,
        hidden=hidden,
        depth=depth,
        n_message=n_message,
    )


def _sizes(batch: GraphBatch) -> tuple[int, int, int, int]:
    return (
        int(batch.state.shape[-1]),
        int(batch.static.shape[-1]),
        int(batch.cm_unit.shape[-1]),
        int(batch.targets.shape[-1]),
    )


def _part_filter(model: PyTree, part: str) -> PyTree:
    spec = jax.tree.map(lambda _: False, model)
    sub = getattr(model, part)
    return eqx.tree_at(lambda m: getattr(m, part), spec, replace=jax.tree.map(eqx.is_array, sub))


def env_filter(model: Surrogate) -> PyTree[bool]:
    """Filter spec selecting the arrays of the environment part (incl. calibration).

    Use as ``diff, frozen = eqx.partition(model, env_filter(model))``. Works on single
    surrogates and on stacked ensembles alike.
    """
    return _part_filter(model, "env")


def response_filter(model: Surrogate) -> PyTree[bool]:
    """Filter spec selecting the arrays of the response part."""
    return _part_filter(model, "response")


def all_filter(model: PyTree) -> PyTree[bool]:
    """Filter spec selecting every array (plain training / fine-tuning)."""
    return jax.tree.map(eqx.is_array, model)


__all__: Sequence[str] = (
    "EnvironmentPart",
    "ResponsePart",
    "Surrogate",
    "apply",
    "embed",
    "predict_kpis",
    "init_surrogate",
    "env_filter",
    "response_filter",
    "all_filter",
)
