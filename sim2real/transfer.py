"""Sim2Real transfer: every method behind one interface, ``fit(method, key, twin, commercial)``.

All methods train a deep ensemble (`sim2real.ensemble`) of factorised surrogates
(`sim2real.surrogate`) with optax Adam under a cosine learning-rate schedule, on random
minibatches of snapshots, with early stopping on a held-out split of snapshots (the best
parameters per member are kept). The loss (`pointwise_loss`) is the masked squared error in the
model domain (log for rates), or, with ``TransferConfig.log_loss = "gamma"``, twice the Gamma
deviance with log link for log-domain targets (minimised by the conditional *arithmetic* mean
instead of the geometric one); each target is normalised by its variance in the training data.

Methods (`METHODS`):

* ``commercial_only`` -- train on commercial data only.
* ``twin_only`` -- train on twin data only.
* ``fine_tune`` -- train on the twin, then every parameter on commercial data.
* ``l2sp`` -- fine-tune with ``(alpha/2) ||theta - theta_twin||^2`` (L2-SP, Li et al. 2018,
  arXiv:1802.01483).
* ``ewc`` -- fine-tune with ``(lambda/2) sum_i F_i (theta_i - theta_twin,i)^2``, ``F`` the
  diagonal empirical Fisher on the twin (EWC, Kirkpatrick et al. 2017, arXiv:1612.00796),
  normalised to mean 1 per member so ``ewc_weight`` is on the scale of ``l2sp_weight``.
* ``dann`` -- from the twin model, train jointly on twin and commercial targets plus a domain
  classifier on the environment embedding behind a gradient-reversal layer (Ganin et al. 2016,
  arXiv:1505.07818).
* ``sim2real`` -- the framework's method: train on the twin, then adapt ONLY the environment
  part (embedding, base level, output calibration) on commercial data; the response part is
  frozen (``anchor_weight == 0``, bit-identical) or tied to the twin by
  ``anchor_weight ||theta_resp - theta_resp,twin||^2``.
* ``sim2real_gain`` -- ``sim2real``, then the response's per-target amplitude (``log_gain``,
  one scalar per target) fitted in closed form to the commercial CM trials
  (`fit_response_gain`); the response's shape (direction, ranking, neighbour pattern) stays
  the twin's.

A physics prior (a baseline column the network corrects) enters through the data
(`ColumnRoles.priors` -> `GraphBatch.prior`); every method uses it alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from .checkpoint import latest_step, restore_checkpoint, save_checkpoint
from .dataset import GraphBatch, split_snapshots, to_model_domain
from .ensemble import make_ensemble, stack
from .surrogate import (
    Surrogate,
    all_filter,
    apply,
    apply_parts,
    embed,
    env_filter,
    key_seed,
    materialise,
    response_filter,
)


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Hyper-parameters shared by all methods (configuration is data).

    Attributes:
        n_models: ensemble size.
        embed, hidden, depth, n_message: surrogate sizes (`init_surrogate`).
        twin_steps: optimisation steps on twin data (pre-training).
        commercial_steps: optimisation steps on commercial data (or joint, for ``dann``).
        batch_snapshots: snapshots per minibatch.
        learning_rate: peak Adam learning rate (twin / from-scratch training).
        adapt_learning_rate: peak learning rate when adapting a twin-trained model.
        final_lr_fraction: cosine schedule's final learning rate as a fraction of the peak.
        val_fraction: share of snapshots held out for early stopping.
        eval_every: steps between validation evaluations.
        patience: evaluations without improvement of any member before stopping.
        l2sp_weight: ``alpha`` of L2-SP.
        ewc_weight: ``lambda`` of EWC.
        fisher_batches: minibatches used to estimate the Fisher diagonal.
        dann_weight: weight of the (reversed) domain-classification loss.
        anchor_weight: ``sim2real`` response anchor; 0 freezes the response part.
        log_loss: loss on log-domain targets (`pointwise_loss`): ``squared`` (squared error of
            log KPI: fits the geometric mean, robust to the heavy tail of few-UE periods) or
            ``gamma`` (Gamma deviance: fits the arithmetic mean, as the KPI counter).
        progress: show tqdm progress bars.
    """

    n_models: int = 4
    embed: int = 16
    hidden: int = 32
    depth: int = 2
    n_message: int = 8
    twin_steps: int = 1500
    commercial_steps: int = 600
    batch_snapshots: int = 16
    learning_rate: float = 3e-3
    adapt_learning_rate: float = 1e-3
    final_lr_fraction: float = 0.05
    val_fraction: float = 0.2
    eval_every: int = 25
    patience: int = 10
    l2sp_weight: float = 1e-2
    ewc_weight: float = 1e-2
    fisher_batches: int = 8
    dann_weight: float = 0.1
    anchor_weight: float = 0.0
    log_loss: str = "squared"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("n_models", "batch_snapshots", "eval_every", "patience", "fisher_batches"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TransferConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("twin_steps", "commercial_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"TransferConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("l2sp_weight", "ewc_weight", "dann_weight", "anchor_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"TransferConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.log_loss not in ("squared", "gamma"):
            raise ValueError(
                f"TransferConfig.log_loss must be 'squared' or 'gamma', got {self.log_loss!r}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"TransferConfig.val_fraction must be in (0, 1), got {self.val_fraction}"
            )


@dataclasses.dataclass(frozen=True)
class History:
    """Training trace: evaluation steps, mean train loss and per-member validation loss."""

    steps: list[int]
    train_loss: list[float]
    val_loss: list[list[float]]
    stopped_at: int


# --------------------------------------------------------------------------- losses
def supervised_loss(
    model: Surrogate,
    batch: GraphBatch,
    weight: Float[Array, " n_targets"] | None = None,
    *,
    gamma: bool | Array = False,
) -> Float[Array, ""]:
    """Masked `pointwise_loss` of the model-domain prediction, averaged over targets (each
    scaled by ``weight``)."""
    z = apply(model, batch)
    err = pointwise_loss(z, batch.targets, batch.log_targets, gamma=gamma)
    m = batch.mask.astype(err.dtype)[..., None]
    per_target = (err * m).sum(axis=(0, 1)) / jnp.maximum(m.sum(), 1.0)
    if weight is not None:
        per_target = per_target * weight
    return per_target.mean()


def pointwise_loss(
    z: Float[Array, "... n_targets"],
    targets: Float[Array, "... n_targets"],
    log_targets,
    *,
    gamma: bool | Array = False,
) -> Float[Array, "... n_targets"]:
    """Per-element loss: squared error in the model domain; with ``gamma``, a scaled Gamma
    deviance for log targets instead.

    For a log target the model predicts ``z = log mu``; the ``gamma`` loss is twice the Gamma
    deviance with log link, ``2 (y / mu - log(y / mu) - 1)``, which is ``(z - log y)^2`` to
    second order but is minimised by ``mu = E[y | x]`` -- the *arithmetic* mean, as a period's
    KPI counter averages over UEs -- whereas the squared error of ``log y`` is minimised by the
    geometric mean (``exp E[log y]``, biased low by about ``var(log y) / 2`` for noisy KPIs).
    """
    is_log = jnp.asarray(log_targets, bool)
    ly = to_model_domain(targets, log_targets)
    u = jnp.clip(ly - z, -30.0, 30.0)
    dev = 2.0 * (jnp.exp(u) - u - 1.0)
    return jnp.where(is_log & gamma, dev, (z - ly) ** 2)


def _target_weight(batch: GraphBatch) -> Float[Array, " n_targets"]:
    z = np.asarray(to_model_domain(batch.targets, batch.log_targets))
    m = np.asarray(batch.mask)
    var = z[m].var(axis=0) if m.any() else np.ones(z.shape[-1])
    return jnp.asarray(1.0 / np.maximum(var, 1e-4), jnp.float32)


def _sq_dist(
    a: PyTree, b: PyTree, spec: PyTree | None = None, weight: PyTree | None = None
) -> Array:
    """``sum_i w_i (a_i - b_i)^2`` over the arrays of ``a`` (optionally only where ``spec``)."""
    if spec is not None:
        a = eqx.filter(a, spec)
        b = eqx.filter(b, spec)
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    lw = (
        jax.tree.leaves(eqx.filter(weight, eqx.is_array))
        if weight is not None
        else [None] * len(la)
    )
    total = jnp.zeros((), jnp.float32)
    for x, y, w in zip(la, lb, lw, strict=True):
        d = (x - y) ** 2
        total = total + (d * w).sum() if w is not None else total + d.sum()
    return total


@jax.custom_vjp
def reverse_gradient(x: Array) -> Array:
    """Identity forward, negated gradient backward (the gradient-reversal layer of DANN)."""
    return x


def _rg_fwd(x):
    return x, None


def _rg_bwd(_, g):
    return (-g,)


reverse_gradient.defvjp(_rg_fwd, _rg_bwd)


class DomainClassifier(eqx.Module):
    """MLP on the environment embedding -> logit of "commercial" (vs twin)."""

    mlp: eqx.nn.MLP

    def __init__(self, key: PRNGKeyArray, embed: int, hidden: int = 32):
        self.mlp = eqx.nn.MLP(embed, "scalar", hidden, 1, activation=jax.nn.silu, key=key)

    def __call__(self, e: Float[Array, "... embed"]) -> Float[Array, "..."]:
        flat = e.reshape(-1, e.shape[-1])
        return jax.vmap(self.mlp)(flat).reshape(e.shape[:-1])


class _DannModel(eqx.Module):
    surrogate: Surrogate
    classifier: DomainClassifier


# --------------------------------------------------------------------------- the training loop
LossFn = Callable[[PyTree, PyTree, tuple[GraphBatch, ...], PyTree], Array]
ValFn = Callable[[PyTree, GraphBatch, PyTree], Array]


def _select(mask: Array, new: PyTree, old: PyTree) -> PyTree:
    def pick(n, o):
        if not eqx.is_array(n):
            return n
        return jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


def cosine_learning_rate(
    step: Array, peak: Array, total_steps: Array, final_fraction: Array
) -> Array:
    """Cosine decay (Loshchilov & Hutter 2017): ``peak (a + (1 - a)(1 + cos(pi t / T)) / 2)``."""
    frac = jnp.minimum(step, total_steps) / jnp.maximum(total_steps, 1)
    return peak * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac)))


_ADAM = optax.scale_by_adam()


def _one_step(carry, t, static, anchor, aux, data, key, hyper, loss_fn, sizes):
    diff, opt_state = carry
    steps, peak, final_fraction = hyper
    ks = jax.random.split(jax.random.fold_in(key, t), len(data))
    batches = tuple(
        d.take(jax.random.permutation(kk, d.n_snapshots)[:b])
        for d, kk, b in zip(data, ks, sizes, strict=True)
    )

    def total(d):
        per_member = eqx.filter_vmap(
            lambda di, si, ai: loss_fn(eqx.combine(di, si), ai, batches, aux),
            in_axes=(eqx.if_array(0), eqx.if_array(0), eqx.if_array(0)),
        )(d, static, anchor)
        return per_member.sum()

    loss, grads = eqx.filter_value_and_grad(total)(diff)
    direction, new_state = _ADAM.update(grads, opt_state, diff)
    lr = cosine_learning_rate(t, peak, steps, final_fraction)
    new_diff = eqx.apply_updates(diff, jax.tree.map(lambda u: -lr * u, direction))
    active = t < steps  # the last chunk may run past `steps`: those updates are discarded
    keep = lambda n, o: jnp.where(active, n, o) if eqx.is_array(n) else n
    carry = (jax.tree.map(keep, new_diff, diff), jax.tree.map(keep, new_state, opt_state))
    return carry, jnp.where(active, loss, jnp.nan)


@eqx.filter_jit
def _run_chunk(
    diff,
    opt_state,
    best,
    best_loss,
    static,
    anchor,
    aux,
    data,
    val_data,
    t0,
    key,
    hyper,
    loss_fn,
    val_fn,
    sizes,
    chunk,
):
    # Module level and every array an argument: calls with the same loss/val functions, filter
    # structure and data shapes reuse one compilation, and XLA does not constant-fold the data.
    (diff, opt_state), losses = jax.lax.scan(
        lambda c, t: _one_step(c, t, static, anchor, aux, data, key, hyper, loss_fn, sizes),
        (diff, opt_state),
        t0 + jnp.arange(chunk),
    )
    val = eqx.filter_vmap(
        lambda di, si: val_fn(eqx.combine(di, si), val_data, aux),
        in_axes=(eqx.if_array(0), eqx.if_array(0)),
    )(diff, static)
    improved = val < best_loss
    best = _select(improved, diff, best)
    best_loss = jnp.where(improved, val, best_loss)
    return diff, opt_state, best, best_loss, jnp.nanmean(losses), val, improved.any()


def train_ensemble(
    key: PRNGKeyArray,
    params: PyTree,
    loss_fn: LossFn,
    val_fn: ValFn,
    data: tuple[GraphBatch, ...],
    val_data: GraphBatch,
    *,
    steps: int,
    learning_rate: float,
    config: TransferConfig,
    filter_spec: PyTree | None = None,
    anchor: PyTree = None,
    aux: PyTree = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    desc: str = "train",
) -> tuple[PyTree, History]:
    """Train a stacked ensemble (vmapped over members) on minibatches of ``data``.

    Adam (Kingma & Ba 2015) with the `cosine_learning_rate` schedule; each member keeps its
    parameters of lowest validation loss; training stops after ``config.patience`` evaluations
    in which no member improved.

    Args:
        key: PRNG key; the minibatch of step ``t`` uses ``fold_in(key, t)``, so a run resumed
            from a checkpoint is identical to an uninterrupted one.
        params: stacked pytree (ensemble, or ensemble + domain classifiers).
        loss_fn: ``loss_fn(member, anchor_member, minibatches, aux) -> scalar`` for one member.
            Use a module-level function (not a fresh closure) to share compilations.
        val_fn: ``val_fn(member, val_data, aux) -> scalar`` validation loss of one member.
        data: the training sets; each step draws ``config.batch_snapshots`` snapshots of each.
        val_data: the validation set (passed to ``val_fn``).
        steps: optimisation steps (0 returns ``params`` unchanged).
        learning_rate: peak learning rate of the cosine schedule.
        config: batch size, evaluation cadence, patience, progress.
        filter_spec: which arrays train (default all); the rest stay bit-identical.
        anchor: per-member pytree (leading ``members`` axis) passed to ``loss_fn``, or None.
        aux: shared pytree of arrays passed to ``loss_fn``/``val_fn`` (weights, ...).
        checkpoint_dir: when given, resume from its latest checkpoint and save every
            ``checkpoint_every`` steps (and at the end). Steps run in jitted chunks of
            ``config.eval_every`` (``lax.scan``), so checkpoints fall on chunk boundaries.
        checkpoint_every: checkpoint cadence in steps, a multiple of ``config.eval_every``
            (0: only at the end).
        desc: progress-bar label.

    Returns:
        ``(best params per member by validation loss, History)``.
    """
    if checkpoint_every and checkpoint_every % config.eval_every:
        raise ValueError(
            f"train_ensemble: checkpoint_every ({checkpoint_every}) must be a multiple of "
            f"config.eval_every ({config.eval_every})"
        )
    if steps <= 0:
        return params, History([], [], [], 0)
    spec = all_filter(params) if filter_spec is None else filter_spec
    diff, static = eqx.partition(params, spec)
    opt_state = _ADAM.init(diff)
    sizes = tuple(min(config.batch_snapshots, d.n_snapshots) for d in data)
    chunk = config.eval_every
    hyper = (
        jnp.asarray(steps, jnp.float32),
        jnp.asarray(learning_rate, jnp.float32),
        jnp.asarray(config.final_lr_fraction, jnp.float32),
    )
    n_members = jax.tree.leaves(eqx.filter(params, eqx.is_array))[0].shape[0]
    best = diff
    best_loss = np.full((n_members,), np.inf, np.float32)
    bad_evals = np.int32(0)
    start = 0
    if checkpoint_dir is not None and latest_step(checkpoint_dir) is not None:
        ck = restore_checkpoint(
            checkpoint_dir, diff, opt_state, extra_like=(best, best_loss, bad_evals)
        )
        start, diff, opt_state = ck.step, ck.ensemble, ck.opt_state
        best, best_loss, bad_evals = ck.extra
    hist_steps, hist_train, hist_val = [], [], []
    stopped = steps
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not config.progress, leave=False)
    for t0 in range(start, steps, chunk):
        diff, opt_state, best, best_loss, loss, vl, improved = _run_chunk(
            diff,
            opt_state,
            best,
            best_loss,
            static,
            anchor,
            aux,
            data,
            val_data,
            jnp.asarray(t0, jnp.int32),
            key,
            hyper,
            loss_fn,
            val_fn,
            sizes,
            chunk,
        )
        done = min(t0 + chunk, steps)
        bad_evals = np.int32(0) if bool(improved) else np.int32(int(bad_evals) + 1)
        hist_steps.append(done)
        hist_train.append(float(loss) / n_members)
        hist_val.append([float(v) for v in vl])
        bar.update(done - t0)
        bar.set_postfix(val=f"{float(vl.mean()):.4f}")
        if int(bad_evals) >= config.patience:
            stopped = done
        if checkpoint_dir is not None and (
            (checkpoint_every and done % checkpoint_every == 0) or done == steps or stopped == done
        ):
            save_checkpoint(
                checkpoint_dir,
                done,
                diff,
                opt_state,
                extra=(best, best_loss, bad_evals),
                metadata={"desc": desc, "steps": steps},
            )
        if stopped == done:
            break
    bar.close()
    return eqx.combine(best, static), History(hist_steps, hist_train, hist_val, stopped)


# --------------------------------------------------------------------------- building blocks
def _check_compatible(twin: GraphBatch | None, commercial: GraphBatch | None) -> None:
    if twin is None or commercial is None:
        return
    for name in ("state_names", "cm_names", "target_names"):
        a, b = getattr(twin, name), getattr(commercial, name)
        if a != b:
            raise ValueError(
                f"fit: twin and commercial data differ in {name}: twin {a}, commercial {b}; "
                "load both with the same ColumnRoles"
            )
    if twin.static.shape[-1] != commercial.static.shape[-1]:
        raise ValueError("fit: twin and commercial static features differ in size")


def _split(
    key: PRNGKeyArray, data: GraphBatch, config: TransferConfig
) -> tuple[GraphBatch, GraphBatch]:
    return split_snapshots(key, data, config.val_fraction)


def _init(key: PRNGKeyArray, data: GraphBatch, config: TransferConfig) -> Surrogate:
    return make_ensemble(
        key,
        config.n_models,
        data,
        embed=config.embed,
        hidden=config.hidden,
        depth=config.depth,
        n_message=config.n_message,
    )


def _sup_loss(model, anchor, batches, aux):
    return supervised_loss(model, batches[0], aux["w"], gamma=aux.get("gamma", False))


def _sup_val(model, val, aux):
    return supervised_loss(model, val, aux["w"], gamma=aux.get("gamma", False))


def _l2sp_loss(model, anchor, batches, aux):
    return _sup_loss(model, anchor, batches, aux) + 0.5 * aux["alpha"] * _sq_dist(model, anchor)


def _ewc_loss(model, anchor, batches, aux):
    theta_twin, fisher = anchor
    pen = _sq_dist(eqx.filter(model, eqx.is_array), theta_twin, weight=fisher)
    return _sup_loss(model, anchor, batches, aux) + 0.5 * aux["lam"] * pen


def _anchor_loss(model, anchor, batches, aux):
    pen = _sq_dist(model, anchor, spec=response_filter(model))
    return _sup_loss(model, anchor, batches, aux) + aux["beta"] * pen


def _fit_supervised(
    key: PRNGKeyArray,
    ensemble: Surrogate,
    data: GraphBatch,
    config: TransferConfig,
    *,
    steps: int,
    learning_rate: float,
    filter_spec: PyTree | None = None,
    loss_fn: LossFn = _sup_loss,
    anchor: PyTree = None,
    aux: dict | None = None,
    desc: str,
) -> Surrogate:
    k_split, k_train = jax.random.split(key)
    train, val = _split(k_split, data, config)
    aux = {
        "w": _target_weight(train),
        "gamma": jnp.asarray(config.log_loss == "gamma"),
        **{k: jnp.asarray(v, jnp.float32) for k, v in (aux or {}).items()},
    }
    out, _ = train_ensemble(
        k_train,
        ensemble,
        loss_fn,
        _sup_val,
        (train,),
        val,
        steps=steps,
        learning_rate=learning_rate,
        config=config,
        filter_spec=filter_spec,
        anchor=anchor,
        aux=aux,
        desc=desc,
    )
    return out


def pretrain_twin(key: PRNGKeyArray, twin_data: GraphBatch, config: TransferConfig) -> Surrogate:
    """Train an ensemble from scratch on twin data (``twin_only``; the start of the others)."""
    k_init, k_fit = jax.random.split(key)
    ens = _init(k_init, twin_data, config)
    return _fit_supervised(
        k_fit,
        ens,
        twin_data,
        config,
        steps=config.twin_steps,
        learning_rate=config.learning_rate,
        desc="twin",
    )


def _frozen_copy(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


@eqx.filter_jit
def _squared_grads(ensemble, batch, w):
    g = eqx.filter_vmap(lambda m: eqx.filter_grad(lambda mm: supervised_loss(mm, batch, w))(m))(
        ensemble
    )
    return jax.tree.map(lambda x: x**2, eqx.filter(g, eqx.is_array))


def fisher_diagonal(
    key: PRNGKeyArray, ensemble: Surrogate, data: GraphBatch, config: TransferConfig
) -> PyTree:
    """Diagonal empirical Fisher per member: mean squared minibatch gradient of the loss.

    Normalised to mean 1 over each member's parameters.
    """
    w = _target_weight(data)
    b = min(config.batch_snapshots, data.n_snapshots)
    rng = np.random.default_rng(key_seed(key))
    acc = None
    for _ in range(config.fisher_batches):
        sq = _squared_grads(ensemble, data.take(rng.permutation(data.n_snapshots)[:b]), w)
        acc = sq if acc is None else jax.tree.map(jnp.add, acc, sq)
    leaves = jax.tree.leaves(acc)
    total = sum(x.reshape(x.shape[0], -1).sum(axis=1) for x in leaves)
    count = sum(x[0].size for x in leaves)
    mean = jnp.maximum(total / count, 1e-12)
    return jax.tree.map(lambda x: x / mean.reshape((-1,) + (1,) * (x.ndim - 1)), acc)


# --------------------------------------------------------------------------- methods
def _require(name: str, method: str, data: GraphBatch | None) -> GraphBatch:
    if data is None:
        raise ValueError(f"fit: method {method!r} needs {name} data, got None")
    return data


def _pretrained(key, twin, config, pretrained):
    return pretrain_twin(key, twin, config) if pretrained is None else pretrained


def commercial_only(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Train from scratch on commercial data only (``config.twin_steps`` steps)."""
    commercial = _require("commercial", "commercial_only", commercial)
    k_init, k_fit = jax.random.split(key)
    ens = _init(k_init, commercial, config)
    return _fit_supervised(
        k_fit,
        ens,
        commercial,
        config,
        steps=config.twin_steps,
        learning_rate=config.learning_rate,
        desc="commercial_only",
    )


def twin_only(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Train on twin data only (no adaptation)."""
    twin = _require("twin", "twin_only", twin)
    return _pretrained(key, twin, config, pretrained)


def fine_tune(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Twin pre-training, then every parameter on commercial data."""
    twin = _require("twin", "fine_tune", twin)
    commercial = _require("commercial", "fine_tune", commercial)
    k1, k2 = jax.random.split(key)
    ens = _pretrained(k1, twin, config, pretrained)
    return _fit_supervised(
        k2,
        ens,
        commercial,
        config,
        steps=config.commercial_steps,
        learning_rate=config.adapt_learning_rate,
        desc="fine_tune",
    )


def l2sp(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Fine-tuning with the L2-SP penalty ``(alpha/2) ||theta - theta_twin||^2``."""
    twin = _require("twin", "l2sp", twin)
    commercial = _require("commercial", "l2sp", commercial)
    k1, k2 = jax.random.split(key)
    ens = _pretrained(k1, twin, config, pretrained)
    return _fit_supervised(
        k2,
        ens,
        commercial,
        config,
        steps=config.commercial_steps,
        learning_rate=config.adapt_learning_rate,
        loss_fn=_l2sp_loss,
        anchor=_frozen_copy(ens),
        aux={"alpha": config.l2sp_weight},
        desc="l2sp",
    )


def ewc(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Fine-tuning with the EWC penalty (diagonal Fisher estimated on the twin)."""
    twin = _require("twin", "ewc", twin)
    commercial = _require("commercial", "ewc", commercial)
    k1, k2, k3 = jax.random.split(key, 3)
    ens = _pretrained(k1, twin, config, pretrained)
    fisher = fisher_diagonal(k3, ens, twin, config)
    anchor = (eqx.filter(_frozen_copy(ens), eqx.is_array), fisher)
    return _fit_supervised(
        k2,
        ens,
        commercial,
        config,
        steps=config.commercial_steps,
        learning_rate=config.adapt_learning_rate,
        loss_fn=_ewc_loss,
        anchor=anchor,
        aux={"lam": config.ewc_weight},
        desc="ewc",
    )


def _domain_loss(model: _DannModel, batch: GraphBatch, label: float) -> Array:
    e = reverse_gradient(embed(model.surrogate, batch))
    logit = model.classifier(e)
    m = batch.mask.astype(logit.dtype)
    bce = optax.sigmoid_binary_cross_entropy(logit, jnp.full_like(logit, label))
    return (bce * m).sum() / jnp.maximum(m.sum(), 1.0)


def _dann_loss(model, anchor, batches, aux):
    tb, cb = batches
    task = supervised_loss(
        model.surrogate, tb, aux["wt"], gamma=aux.get("gamma", False)
    ) + supervised_loss(model.surrogate, cb, aux["wc"], gamma=aux.get("gamma", False))
    dom = 0.5 * (_domain_loss(model, tb, 0.0) + _domain_loss(model, cb, 1.0))
    return task + aux["lam"] * dom


def _dann_val(model, val, aux):
    return supervised_loss(model.surrogate, val, aux["wc"], gamma=aux.get("gamma", False))


def dann(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Domain-adversarial training from the twin model (gradient reversal on the embedding)."""
    twin = _require("twin", "dann", twin)
    commercial = _require("commercial", "dann", commercial)
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    ens = _pretrained(k1, twin, config, pretrained)
    rng = np.random.default_rng(key_seed(k2))
    abstract = eqx.filter_eval_shape(DomainClassifier, k2, config.embed, config.hidden)
    clf = stack([materialise(abstract, rng) for _ in range(config.n_models)])
    t_train, _ = _split(k3, twin, config)
    c_train, c_val = _split(k4, commercial, config)
    aux = {
        "wt": _target_weight(t_train),
        "wc": _target_weight(c_train),
        "lam": jnp.asarray(config.dann_weight, jnp.float32),
        "gamma": jnp.asarray(config.log_loss == "gamma"),
    }
    out, _ = train_ensemble(
        k5,
        _DannModel(ens, clf),
        _dann_loss,
        _dann_val,
        (t_train, c_train),
        c_val,
        steps=config.commercial_steps,
        learning_rate=config.adapt_learning_rate,
        config=config,
        aux=aux,
        desc="dann",
    )
    return out.surrogate


def sim2real(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """Twin pre-training, then adapt only the environment part on commercial data.

    With ``config.anchor_weight == 0`` the response part is excluded from training (its arrays
    stay bit-identical); otherwise everything trains with
    ``anchor_weight ||theta_response - theta_response,twin||^2``.
    """
    twin = _require("twin", "sim2real", twin)
    commercial = _require("commercial", "sim2real", commercial)
    k1, k2 = jax.random.split(key)
    ens = _pretrained(k1, twin, config, pretrained)
    if config.anchor_weight == 0.0:
        return _fit_supervised(
            k2,
            ens,
            commercial,
            config,
            steps=config.commercial_steps,
            learning_rate=config.adapt_learning_rate,
            filter_spec=env_filter(ens),
            desc="sim2real",
        )
    return _fit_supervised(
        k2,
        ens,
        commercial,
        config,
        steps=config.commercial_steps,
        learning_rate=config.adapt_learning_rate,
        loss_fn=_anchor_loss,
        anchor=_frozen_copy(ens),
        aux={"beta": config.anchor_weight},
        desc="sim2real",
    )


RESPONSE_GAIN_BOUNDS: tuple[float, float] = (0.25, 4.0)
"""Range of the response amplitude factor `fit_response_gain` may apply."""


def fit_response_gain(
    ensemble: Surrogate,
    data: GraphBatch,
    *,
    bounds: tuple[float, float] = RESPONSE_GAIN_BOUNDS,
    chunk: int = 256,
) -> tuple[Surrogate, Float[Array, "members n_targets"]]:
    """Rescale each member's CM response per target to fit ``data``, in closed form.

    With the prediction split into level and response, ``z = L + R`` (model domain; ``R`` is
    the response part's term, zero at the reference CM), the factor ``g`` minimising
    ``sum_rows (z_true - L - g R)^2`` is ``g = sum R (z_true - L) / sum R^2``; ``log_gain``
    moves by ``log g``. Only rows whose CM differs from the reference carry information
    (elsewhere ``R = 0``). ``g`` is clipped to ``bounds`` (so a response the data contradict
    is damped, never reversed) and is 1 where the data hold no CM variation.

    Args:
        ensemble: a stacked ensemble (`sim2real.make_ensemble`).
        data: rows to fit (e.g. the commercial data).
        bounds: smallest and largest factor, ``0 < low <= 1 <= high``.
        chunk: snapshots per evaluation.

    Returns:
        ``(ensemble with rescaled log_gain, factors [members, n_targets])``.
    """
    low, high = bounds
    if not 0.0 < low <= 1.0 <= high:
        raise ValueError(f"fit_response_gain: need 0 < low <= 1 <= high, got {bounds}")
    if int(chunk) < 1:
        raise ValueError(f"fit_response_gain: chunk must be >= 1, got {chunk}")
    n_targets = ensemble.response.log_gain.shape[-1]
    if len(data.target_names) != n_targets:
        raise ValueError(
            f"fit_response_gain: the ensemble predicts {n_targets} target(s), the data hold "
            f"{list(data.target_names)}"
        )
    parts = eqx.filter_vmap(apply_parts, in_axes=(eqx.if_array(0), None))  # over members
    num = den = 0.0
    for i in range(0, data.n_snapshots, chunk):
        b = data.take(jnp.arange(i, min(i + chunk, data.n_snapshots)))
        level, r = parts(ensemble, b)
        w = b.mask[None, ..., None].astype(r.dtype)
        resid = to_model_domain(b.targets, b.log_targets)[None] - level
        num = num + jnp.sum(w * r * resid, axis=(1, 2))
        den = den + jnp.sum(w * r * r, axis=(1, 2))
    g = jnp.where(den > 1e-12, num / jnp.maximum(den, 1e-12), 1.0)
    g = jnp.clip(g, low, high)
    out = eqx.tree_at(
        lambda m: m.response.log_gain, ensemble, replace=ensemble.response.log_gain + jnp.log(g)
    )
    return out, g


def sim2real_gain(key, twin, commercial, config, pretrained=None) -> Surrogate:
    """``sim2real``, then the response's per-target amplitude read from the commercial data.

    The model adapts exactly as ``sim2real`` (with the default ``anchor_weight == 0`` only the
    environment part, the response frozen); then `fit_response_gain` rescales each member's
    response per target by the least-squares factor on the commercial rows (their CM trials
    around the default). With a frozen response the response network stays bit-identical, so
    the direction and relative pattern of the twin's CM response (signs, ranking of candidates,
    the neighbours' share) are kept exactly; only how strongly the KPI moves -- one scalar per
    target -- comes from the commercial network.
    """
    twin = _require("twin", "sim2real_gain", twin)
    commercial = _require("commercial", "sim2real_gain", commercial)
    ens = sim2real(key, twin, commercial, config, pretrained)
    return fit_response_gain(ens, commercial)[0]


Method = Callable[..., Surrogate]

METHODS: dict[str, Method] = {
    "commercial_only": commercial_only,
    "twin_only": twin_only,
    "fine_tune": fine_tune,
    "l2sp": l2sp,
    "ewc": ewc,
    "dann": dann,
    "sim2real": sim2real,
    "sim2real_gain": sim2real_gain,
}
"""Registry of transfer methods: name -> ``method(key, twin, commercial, config, pretrained)``."""


def fit(
    method: str,
    key: PRNGKeyArray,
    twin_data: GraphBatch | None,
    commercial_data: GraphBatch | None,
    config: TransferConfig | None = None,
    *,
    pretrained: Surrogate | None = None,
) -> Surrogate:
    """Train a surrogate ensemble with a transfer method.

    Args:
        method: a key of `METHODS`.
        key: PRNG key.
        twin_data: twin `GraphBatch` (None for ``commercial_only``).
        commercial_data: commercial `GraphBatch` (None for ``twin_only``).
        config: hyper-parameters (default `TransferConfig()`).
        pretrained: an ensemble already trained on the twin (`pretrain_twin`) to start from,
            so several methods can share one pre-training; ignored by ``commercial_only``.

    Returns:
        The trained ensemble (stacked `Surrogate`); predict with `sim2real.ensemble.predict`.
    """
    if method not in METHODS:
        raise ValueError(f"fit: unknown method {method!r}; choose one of {sorted(METHODS)}")
    config = TransferConfig() if config is None else config
    for name, d in (("twin_data", twin_data), ("commercial_data", commercial_data)):
        if d is not None and not isinstance(d, GraphBatch):
            raise TypeError(
                f"fit: {name} must be a GraphBatch (sim2real.dataset), got {type(d).__name__}"
            )
    _check_compatible(twin_data, commercial_data)
    return METHODS[method](key, twin_data, commercial_data, config, pretrained)
