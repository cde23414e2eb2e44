"""The differentiable Digital Twin as an `opt` predictor, and a surrogate anchored to it.

A surrogate trained on twin data learns the CM response statistically; a gradient search over
all cells of an area then drives it where it errs (optimisers exploit model error). The twin
itself is differentiable (`dtwin.network.simulate`), so its *physics* response can be searched
directly:

* `SimulatorPredictor`: a network simulation over a fixed set of snapshots (UE populations and
  channels, which do not depend on the CM) as ``cm -> Prediction`` (std = 0). Values are the exact
  hard-association KPIs of the snapshots aggregated as one reporting period
  (`dtwin.kpi.period_kpis`); gradients are those of the soft simulation (soft association, smooth
  spectral-efficiency curve), passed straight through: ``soft + stop_gradient(hard − soft)``,
  written as a `jax.custom_jvp` so that calls nobody differentiates (a search's scoring,
  refinement and safety passes) compute, and compile, only the hard simulation.
  `twin_predictor` draws the snapshots from the twin's own sampler (`dtwin.sweep`); the field
  trial's oracle is the same class on the field stand-in's snapshots.
* `AnchoredPredictor`: the Sim2Real surrogate's *level* (adapted to commercial data) plus a
  blend of the surrogate's and the twin's CM response, as changes from the CM in force:

      μ(cm) = μ_S(cm₀) + w [μ_S(cm) − μ_S(cm₀)] + (1 − w) [μ_T(cm) − μ_T(cm₀)]

  per cell and KPI, with ``cm₀`` the CM in force, ``μ_S`` the surrogate, ``μ_T`` the twin
  simulation and ``w`` the surrogate's share of the response (``w = 1``: the surrogate alone;
  ``w = 0``: the twin's response on the surrogate's level). The std is by default the
  surrogate's (its ensemble spread at ``cm``: how far the candidate is from what the data
  support); ``std_mode="response"`` makes it the uncertainty of what the blend predicts: the
  level's spread at ``cm₀`` plus the blended change's (the members' spread of the surrogate's
  change, the sampling error of the twin's change over its snapshots). This is
  Sim2Real's split taken one step further: the *environment* (level) comes from commercial data,
  the *response rule* partly from the twin's physics rather than only from a network trained to
  imitate it. ``mode="relative"`` blends changes of log KPI instead (ratios). The two differ
  where the twin's level is far from the field's (on the stand-in 30-40 % below): a ratio
  carries the twin's large *relative* gains onto the higher real level, so as an optimiser's
  guide it over-promises (field trial: the additive form gained more, metro +21.9 % vs +12.0 %,
  urban +25.1 % vs +21.6 % in one comparison), while as a predictor of the KPI at a far CM it is
  the more accurate (Table 1 out of range: MAPE 27.0 % vs 54.7 %: an additive drop in Mbps
  cannot follow a collapse to a few Mbps from a higher level).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from dtwin.areas import AreaType
from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema
from dtwin.kpi import period_influence, period_kpis
from dtwin.network import (
    LinkChannel,
    LinkTerms,
    Network,
    UEPopulation,
    cell_kpis,
    check_candidates,
    link_terms,
    simulate_from_links,
)

from .objectives import CM, Prediction, Predictor

ANCHOR_MODES: tuple[str, ...] = ("additive", "relative")
"""How `AnchoredPredictor` blends responses: changes in the KPI's unit, or of its log."""

STD_MODES: tuple[str, ...] = ("surrogate", "blend", "response")
"""Where `AnchoredPredictor`'s std comes from: the surrogate's ensemble spread at the candidate;
the two predictors' stds blended as their means are; or the level's spread at the CM in force
plus the uncertainty of the blended response."""

DEFAULT_KPIS: tuple[str, ...] = (
    "dl_throughput_mbps",
    "cell_edge_throughput_mbps",
    "coverage",
)
"""KPIs a `SimulatorPredictor` returns by default: the throughput objective and the guardrails."""

DEFAULT_CANDIDATES: int = 6
"""Candidate serving cells per UE in a `SimulatorPredictor`'s soft (gradient) simulation."""


class SimulatorPredictor(eqx.Module):
    """A differentiable network simulation over fixed snapshots as an `opt` predictor (std = 0).

    The CM-independent part of every link (geometry, pathloss, shadowing, O2I:
    `dtwin.network.LinkTerms`) is computed once, when the predictor is built from the
    snapshots' channels, so each evaluation computes only the antenna gain at the candidate
    tilts onwards, and a compiled search holds a third less program per call site. The
    network's pathloss model enters through ``links`` only, so the predictor keeps the network
    without its ``scenario``: twins of areas with different TR 38.901 scenarios (metro UMi,
    urban UMa) then have the same tree structure and share one compiled search. Build a new
    predictor from the channels to change the pathloss model.

    Attributes:
        network: the network (topology, carrier, efficiency...), ``scenario`` set to None.
        population: UE populations, leaves with a leading ``[snapshots]`` axis.
        links: `dtwin.network.LinkTerms` of those populations, leading ``[snapshots]`` axis.
            The constructor also takes the snapshots' `dtwin.network.LinkChannel` here and
            computes them (`dtwin.network.link_terms`).
        tilt_offset_deg: added to the CM's tilt before simulating (degrees; e.g. the field's
            installation errors; zeros for the twin).
        power_offset_db: added to the CM's transmit power (dB; e.g. antenna-gain and pathloss
            offsets; zeros for the twin).
        kpis: KPIs returned (static; keys of `dtwin.network.cell_kpis`).
        candidates: candidate serving cells per UE in the soft simulation that gives the
            gradients (static; `dtwin.network.simulate`'s ``candidates``; None = every cell).
            The default 6 halves the cost of a gradient on the built-in 21-cell areas and
            changes it by about 0.1 % (relative norm, urban twin at the default CM); the values
            (hard simulation) do not depend on it.
        snapshot_weight: ``[snapshots]`` how much each snapshot counts in the pooled KPIs
            (`dtwin.kpi.period_kpis`; e.g. `dtwin.sweep.stratified_hours`' weights); the
            constructor's default None means 1 each.
    """

    network: Network
    population: UEPopulation
    links: LinkTerms
    tilt_offset_deg: Float[Array, " cells"]
    power_offset_db: Float[Array, " cells"]
    kpis: tuple[str, ...] = eqx.field(static=True, default=DEFAULT_KPIS)
    candidates: int | None = eqx.field(static=True, default=DEFAULT_CANDIDATES)
    snapshot_weight: Float[Array, " snapshots"] | None = None

    def __init__(
        self,
        network: Network,
        population: UEPopulation,
        links: LinkTerms | LinkChannel,
        tilt_offset_deg: Float[Array, " cells"],
        power_offset_db: Float[Array, " cells"],
        kpis: Sequence[str] = DEFAULT_KPIS,
        candidates: int | None = DEFAULT_CANDIDATES,
        snapshot_weight: Float[Array, " snapshots"] | None = None,
    ):
        check_candidates("SimulatorPredictor", candidates)
        if isinstance(links, LinkChannel):
            links = _snapshot_link_terms(network, population, links)
        elif not isinstance(links, LinkTerms):
            raise TypeError(
                f"SimulatorPredictor: links must be LinkTerms or LinkChannel, got {type(links)}"
            )
        if network.scenario is not None:  # its pathloss is in the links from here on
            network = eqx.tree_at(lambda n: n.scenario, network, None)
        self.network = network
        self.population = population
        self.links = links
        self.tilt_offset_deg = tilt_offset_deg
        self.power_offset_db = power_offset_db
        self.kpis = tuple(kpis)
        self.candidates = candidates
        n = jax.tree_util.tree_leaves(population)[0].shape[0]
        if snapshot_weight is None:
            snapshot_weight = jnp.ones((n,), jnp.float32)
        snapshot_weight = jnp.asarray(snapshot_weight, jnp.float32)
        if snapshot_weight.shape != (n,):
            raise ValueError(
                f"SimulatorPredictor: snapshot_weight must be [snapshots] = [{n}], "
                f"got {list(snapshot_weight.shape)}"
            )
        self.snapshot_weight = snapshot_weight

    def _snapshots(self, cm, hard: bool):
        """Per-snapshot KPIs and served UE mass ``(k, w)``, hard or soft."""
        real_cm = dict(cm)
        real_cm["tilt_deg"] = cm["tilt_deg"] + self.tilt_offset_deg
        real_cm["tx_power_dbm"] = cm["tx_power_dbm"] + self.power_offset_db

        def one(pop, links):
            res = simulate_from_links(
                self.network, pop, links, real_cm, hard=hard, candidates=self.candidates
            )
            k = {n: v for n, v in cell_kpis(self.network, pop, res).items() if n in self.kpis}
            return k, jnp.sum(res.serving_prob * pop.weight[:, None], axis=0)

        return jax.vmap(one)(self.population, self.links)

    def _outputs(self, cm) -> tuple[dict, dict, Array]:
        """``(period KPIs, snapshot KPIs, snapshot masses)``: hard values, soft derivatives.

        The straight-through estimator as a `jax.custom_jvp`: the value is the hard simulation
        only, so a call that is not differentiated (a search's scoring, refinement and safety
        passes) neither computes nor compiles the soft one; a derivative is the soft
        simulation's, exactly as ``soft + stop_gradient(hard − soft)``.
        """
        dyn, static = eqx.partition(self, eqx.is_array)

        def outputs(dyn_, cm_, hard):
            p = eqx.combine(dyn_, static)
            k, w = p._snapshots(cm_, hard)
            return period_kpis(k, w, p.snapshot_weight), k, w

        return _straight_through(outputs, dyn, dict(cm))

    def __call__(self, cm: Mapping[str, Float[Array, " cells"]]) -> Prediction:
        period, _, _ = self._outputs(cm)
        return Prediction.deterministic({n: period[n] for n in self.kpis})

    def evaluate(
        self, cm: Mapping[str, Float[Array, " cells"]]
    ) -> tuple[Prediction, dict[str, Float[Array, "snapshots cells"]]]:
        """The prediction and each snapshot's influence on it, from one simulation.

        The influence (`dtwin.kpi.period_influence`, of the hard values with the soft
        simulation's gradients passed straight through) gives the sampling error of a KPI
        *change* between two CMs on these snapshots: ``sqrt(n/(n−1) Σ_i (a_i(x) − a_i(x₀))²)``
        (`AnchoredPredictor`'s ``std_mode="response"``).
        """
        period, k, w = self._outputs(cm)
        pred = Prediction.deterministic({n: period[n] for n in self.kpis})
        return pred, period_influence({n: k[n] for n in self.kpis}, w, self.snapshot_weight)


@eqx.filter_jit
def _snapshot_link_terms(network: Network, population, channel) -> LinkTerms:
    """`dtwin.network.link_terms` of every snapshot (leading axis), as one compiled call."""
    return jax.vmap(lambda p, c: link_terms(network, p, c))(population, channel)


def _straight_through(fn, *args):
    """``fn(*args, hard=True)`` with the derivatives of ``fn(*args, hard=False)``.

    Equal in value and derivative to ``soft + stop_gradient(hard − soft)`` leaf by leaf, but a
    `jax.custom_jvp`: the soft branch is traced only where a derivative is taken.
    """

    @jax.custom_jvp
    def st(*a):
        return fn(*a, True)

    @st.defjvp
    def st_jvp(primals, tangents):
        _, t_soft = jax.jvp(lambda *a: fn(*a, False), primals, tangents)
        return fn(*primals, True), t_soft

    return st(*args)


def twin_predictor(
    key: PRNGKeyArray,
    network: Network,
    area: AreaType,
    n_snapshots: int = 32,
    *,
    ues_per_cell: int = 10,
    kpis: Sequence[str] = DEFAULT_KPIS,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    candidates: int | None = DEFAULT_CANDIDATES,
    stratify_hours: bool = True,
) -> SimulatorPredictor:
    """The Digital Twin of an area as an `opt` predictor, on ``n_snapshots`` snapshots of its own.

    Snapshots come from the twin's sampler (`dtwin.sweep.sample_snapshot`: UE drop and
    clustering, diurnal activity, channel), one reporting period's worth each, keyed
    ``fold_in(key, i)``; they do not depend on the CM. Use the network and area type the twin
    data were generated with (`dtwin.areas.network_for_area`). ``candidates``: as
    `SimulatorPredictor`. ``stratify_hours`` (default): the snapshots' hours spread evenly over
    the day, weighted so every hour counts 1/24 (`dtwin.sweep.stratified_hours`; the hour moves a
    cell's load several-fold, so random hours skew which load the response is read at);
    False: drawn at random (before 2026-12-03).

    Raises:
        ValueError: if ``n_snapshots < 1`` or a KPI is unknown.
    """
    from dtwin.schema import TARGET_COLUMNS
    from dtwin.sweep import sample_snapshot, stratified_hours

    if int(n_snapshots) < 1:
        raise ValueError(f"twin_predictor: n_snapshots must be >= 1, got {n_snapshots}")
    bad = [k for k in kpis if k not in TARGET_COLUMNS]
    if bad:
        raise ValueError(f"twin_predictor: unknown KPI(s) {bad}; choose from {TARGET_COLUMNS}")
    n_cells = network.n_cells
    cm0 = schema.default(n_cells)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(int(n_snapshots)))
    if stratify_hours:
        hours, weight = stratified_hours(int(n_snapshots))
        snaps = jax.vmap(lambda k, h: sample_snapshot(k, network, area, ues_per_cell, cm0, hour=h))(
            keys, hours
        )
    else:
        weight = None
        snaps = jax.vmap(lambda k: sample_snapshot(k, network, area, ues_per_cell, cm0))(keys)
    zero = jnp.zeros((n_cells,), jnp.float32)
    return SimulatorPredictor(
        network, snaps.population, snaps.channel, zero, zero, tuple(kpis), candidates, weight
    )


class AnchoredPredictor(eqx.Module):
    """The surrogate's level plus a blend of its and the twin's CM response (changes from ``cm₀``).

    See the module docstring for the formula. KPIs are the surrogate's; a KPI the twin lacks, or
    a cell whose twin value is undefined (serves nobody in the twin's snapshots), keeps the
    surrogate's own response.

    Attributes:
        surrogate: the adapted surrogate (e.g. `opt.EnsemblePredictor` of a Sim2Real ensemble).
        twin: the twin simulation (`SimulatorPredictor`, `twin_predictor`).
        current_cm: the CM in force ``cm₀`` (the anchor).
        weight: ``w``, the surrogate's share of the CM response (0..1).
        mode: ``"additive"`` (changes in the KPI's unit, the formula above; the default, and the
            better guide for an optimiser) or ``"relative"`` (changes of log KPI:
            ``μ = μ_S(cm₀) exp(w Δlog μ_S + (1 − w) Δlog μ_T)``; the better *predictor* of the
            KPI where throughput collapses, see the module docstring).
        floor: smallest value used in the logs of ``"relative"`` (KPI units).
        anchor_means: ``(μ_S(cm₀), μ_T(cm₀))``, the surrogate's and the twin's mean KPIs at the
            CM in force. Computed once at construction when not given (they do not depend on
            the candidate), so a search's program holds each predictor once per call site, not
            twice. Build a new predictor for another ``cm₀``: `dataclasses.replace` and
            `equinox.tree_at` keep the old values.
        std_mode: where the std comes from (static).

            * ``"surrogate"`` (default): the surrogate's ensemble spread at the candidate,
              ``s_S(cm)`` -- the uncertainty of a model whose response the blend may hardly use.
            * ``"blend"``: each part's std as that part reports it, blended exactly as the
              mean is: ``s(cm) = s_S(cm₀) + w [s_S(cm) − s_S(cm₀)] + (1 − w) [s_T(cm) −
              s_T(cm₀)]`` (floored at 0; the twin simulation reports ``s_T = 0``). The level's
              uncertainty stays; the surrogate's growth away from its data counts with the
              surrogate's share of the response (``w = 0``: a constant, so the penalty no longer
              steers the search; ``w = 1``: ``"surrogate"``). ``"relative"`` mode blends
              ``log`` stds the same way.
            * ``"response"``: the uncertainty of what the blend actually predicts, the level
              (fixed at ``cm₀``) plus the blended change, as independent errors::

                  std² = s_S(cm₀)² + w² Var_m[ΔS_m] + (1 − w)² Var_T[ΔT]

              with ``ΔS_m = μ_S,m(cm) − μ_S,m(cm₀)`` member ``m``'s change (spread over the
              ensemble's members, `EnsemblePredictor.members`) and ``Var_T[ΔT]`` the sampling
              variance of the twin's change over its snapshots (paired, delta method,
              `SimulatorPredictor.evaluate`). At ``cm₀`` it equals the surrogate's std; it grows
              only where the response is uncertain. ``"relative"`` mode uses the variances of
              the log changes, times ``μ(cm)²``. It does not include the twin's *model* error
              (the twin's physics against the field's), which no spread over the twin's own
              snapshots can show.
        anchor_stds: ``(s_S(cm₀), s_T(cm₀))`` for ``std_mode="blend"`` and ``"response"``
            (computed at construction when not given, with ``anchor_means``).
        anchor_spread: ``(μ_S,m(cm₀), a_i(cm₀))`` for ``std_mode="response"``: member means
            and the twin's per-snapshot influences at the CM in force (likewise).
    """

    surrogate: Predictor
    twin: Predictor
    current_cm: CM
    weight: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.float32))
    mode: str = eqx.field(static=True, default="additive")
    floor: float = eqx.field(static=True, default=1e-3)
    anchor_means: tuple[dict[str, Array], dict[str, Array]] | None = None
    std_mode: str = eqx.field(static=True, default="surrogate")
    anchor_stds: tuple[dict[str, Array], dict[str, Array]] | None = None
    anchor_spread: tuple[dict[str, Array], dict[str, Array]] | None = None

    def __post_init__(self):
        self._check()  # bad input fails before the (compiled) anchor evaluation
        need_stds = self.std_mode != "surrogate" and self.anchor_stds is None
        need_spread = self.std_mode == "response" and self.anchor_spread is None
        if self.anchor_means is None or need_stds or need_spread:
            # one compiled evaluation of both predictors at cm₀ gives every anchor value
            means, stds, spread = _anchors(
                self.surrogate, self.twin, self.current_cm, self.std_mode == "response"
            )
            if self.anchor_means is None:
                self.anchor_means = means
            if need_stds:
                self.anchor_stds = stds
            if need_spread:
                self.anchor_spread = spread

    def _check(self):
        if self.mode not in ANCHOR_MODES:
            raise ValueError(
                f"AnchoredPredictor: mode must be one of {ANCHOR_MODES}, got {self.mode!r}"
            )
        if self.std_mode not in STD_MODES:
            raise ValueError(
                f"AnchoredPredictor: std_mode must be one of {STD_MODES}, got {self.std_mode!r}"
            )
        if self.std_mode == "response":
            if not callable(getattr(self.surrogate, "members", None)):
                raise ValueError(
                    "AnchoredPredictor: std_mode='response' needs a surrogate with per-member "
                    f"predictions (.members(cm), e.g. opt.EnsemblePredictor); got "
                    f"{type(self.surrogate).__name__}"
                )
            if not callable(getattr(self.twin, "evaluate", None)):
                raise ValueError(
                    "AnchoredPredictor: std_mode='response' needs a twin with per-snapshot "
                    f"influences (.evaluate(cm), e.g. opt.SimulatorPredictor); got "
                    f"{type(self.twin).__name__}"
                )
        if isinstance(self.weight, jax.core.Tracer):
            return
        w = float(self.weight)
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"AnchoredPredictor: weight must be in [0, 1], got {w}")

    def __call__(self, cm: Mapping[str, Float[Array, " cells"]]) -> Prediction:
        response_std = self.std_mode == "response"
        if response_std:
            members = self.surrogate.members(cm)
            s = Prediction({k: jnp.mean(v, axis=0) for k, v in members.items()}, {})
            t, influence = self.twin.evaluate(cm)
        else:
            s, t = self.surrogate(cm), self.twin(cm)
        rel = self.mode == "relative"
        mean, defined = self._blend(s.mean, t.mean, self.anchor_means)
        if self.std_mode == "surrogate":
            return Prediction(mean, dict(s.std))
        if self.std_mode == "blend":
            std, _ = self._blend(s.std, t.std, self.anchor_stds, defined, nonneg=True)
            return Prediction(mean, std)
        level_std = self.anchor_stds[0]
        std = {}
        for k in mean:
            v = self._response_var(k, members, influence, s.mean, t.mean, defined[k])
            v = v * mean[k] ** 2 if rel else v  # relative: var of Δlog -> KPI units
            std[k] = _safe_sqrt(level_std[k] ** 2 + v)
        return Prediction(mean, std)

    def _blend(self, s_now, t_now, anchors, defined=None, nonneg=False):
        """``x₀ + w Δx_S + (1 − w) Δx_T`` per KPI of ``s_now`` (changes of log x in "relative"
        mode, ratios then), with ``(x_S(cm₀), x_T(cm₀)) = anchors``; where the twin's value is
        missing or undefined (or ``defined`` is False) the surrogate's change stands in.
        Returns the blend and, per KPI, where the twin's change was used."""
        s0, t0 = anchors
        rel = self.mode == "relative"
        f = (lambda v: jnp.log(jnp.maximum(v, self.floor))) if rel else (lambda v: v)
        out, used = {}, {}
        for k in s_now:
            d_s = f(s_now[k]) - f(s0[k])
            ok = jnp.zeros_like(d_s, bool)
            d_t = d_s
            if k in t_now:
                ok = jnp.isfinite(t_now[k]) & jnp.isfinite(t0[k])
                if defined is not None:
                    ok = ok & defined[k]
                d_t = f(jnp.where(ok, t_now[k], 1.0)) - f(jnp.where(ok, t0[k], 1.0))
                d_t = jnp.where(ok, d_t, d_s)
            d = self.weight * d_s + (1.0 - self.weight) * d_t
            if rel:
                out[k] = s0[k] * jnp.exp(d)
            else:
                out[k] = jnp.maximum(s0[k] + d, 0.0) if nonneg else s0[k] + d
            used[k] = ok
        return out, used

    def _response_var(self, k, members, influence, s_mean, t_mean, ok):
        """Variance of the blended response of KPI ``k`` (std_mode="response")."""
        mem0, infl0 = self.anchor_spread
        w = self.weight
        d_m = members[k] - mem0[k]  # each member's change [members, cells]
        var_s = jnp.mean((d_m - jnp.mean(d_m, axis=0)) ** 2, axis=0)
        if k in influence:
            e = influence[k] - infl0[k]
            n = e.shape[0]
            var_t = jnp.sum(e**2, axis=0) * n / max(n - 1, 1)
        else:
            var_t = jnp.zeros_like(var_s)
        if self.mode == "relative":  # variances of changes of log KPI
            var_s = var_s / jnp.maximum(s_mean[k], self.floor) ** 2
            t_k = jnp.where(ok, t_mean.get(k, 1.0), 1.0)
            var_t = var_t / jnp.maximum(t_k, self.floor) ** 2
        return jnp.where(ok, w**2 * var_s + (1.0 - w) ** 2 * var_t, var_s)


@eqx.filter_jit
def _anchors(surrogate, twin, current_cm, spread: bool):
    """``(means, stds, spread)`` of `AnchoredPredictor` at ``cm₀``, from one evaluation of each
    predictor (``spread`` None unless asked: member means and the twin's influences)."""
    s = surrogate(current_cm)
    if spread:
        t, influence = twin.evaluate(current_cm)
        sp = (dict(surrogate.members(current_cm)), dict(influence))
    else:
        t, sp = twin(current_cm), None
    return (dict(s.mean), dict(t.mean)), (dict(s.std), dict(t.std)), sp


def _safe_sqrt(x):
    """``sqrt(max(x, 0))`` with a zero (not NaN) gradient at 0."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


__all__: Sequence[str] = (
    "ANCHOR_MODES",
    "STD_MODES",
    "DEFAULT_KPIS",
    "AnchoredPredictor",
    "SimulatorPredictor",
    "twin_predictor",
)
