"""The twin as an `opt` predictor (`opt.simulator`).

References: the network simulation itself called directly (values: hard association, period
aggregation), central finite differences of the *soft* simulation (gradients: straight-through
of the soft path), and closed forms of the anchored blend on analytic toy predictors.
"""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from dtwin.kpi import period_kpis
from dtwin.network import (
    cell_kpis,
    coupling_gain_db,
    coupling_gain_from_links,
    simulate,
)
from dtwin.sweep import sample_snapshot

KPIS = opt.simulator.DEFAULT_KPIS


class _Twin(tuple):
    """``(predictor, network)``, and the snapshots' channels for the direct reference."""

    channel = None


@pytest.fixture(scope="module")
def twin():
    at = area_type("urban")
    net = network_for_area(at, 1)
    key = jax.random.PRNGKey(3)
    pred = opt.twin_predictor(key, net, at, 4)
    # the snapshots twin_predictor draws (fold_in(key, i), dtwin.sweep.sample_snapshot, hours
    # stratified over the day: 4 snapshots at 0, 6, 12 and 18 h)
    cm0 = SCHEMA.default(net.n_cells)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(4))
    hours = jnp.array([0.0, 6.0, 12.0, 18.0])
    snaps = jax.vmap(lambda k, h: sample_snapshot(k, net, at, 10, cm0, hour=h))(keys, hours)
    np.testing.assert_array_equal(snaps.hour, hours)
    t = _Twin((pred, net))
    t.channel, pop = snaps.channel, snaps.population
    np.testing.assert_array_equal(pop.ues.xy_m, pred.population.ues.xy_m)
    return t


def test_links_are_computed_once_from_the_channels(twin):
    """The predictor's precomputed link terms are the snapshots' coupling gains at any tilt
    (`dtwin.network.coupling_gain_db`, which recomputes geometry and pathloss); a predictor
    built from those terms equals one built from the channels; anything else is refused."""
    pred, net = twin
    tilt = jnp.array([3.0, 8.0, 12.0], jnp.float32)
    want = jax.jit(jax.vmap(lambda p, c: coupling_gain_db(net, p, c, tilt)))(
        pred.population, twin.channel
    )
    got = jax.jit(jax.vmap(lambda lk: coupling_gain_from_links(lk, tilt)))(pred.links)
    chex.assert_shape(got, (4, pred.population.weight.shape[1], net.n_cells))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)  # XLA may fuse differently
    z = jnp.zeros((net.n_cells,), jnp.float32)
    again = opt.SimulatorPredictor(net, pred.population, pred.links, z, z)
    cm = _cm(net, d_tilt=1.0)
    np.testing.assert_array_equal(again(cm).mean["coverage"], pred(cm).mean["coverage"])
    with pytest.raises(TypeError, match="LinkTerms or LinkChannel"):
        opt.SimulatorPredictor(net, pred.population, {"sf_db": 0.0}, z, z)


def _cm(net, d_tilt=0.0, d_power=0.0):
    cm = SCHEMA.default(net.n_cells)
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in cm.items()}
    cm["tilt_deg"] = cm["tilt_deg"] + jnp.asarray(d_tilt, jnp.float32)
    cm["tx_power_dbm"] = cm["tx_power_dbm"] + jnp.asarray(d_power, jnp.float32)
    return cm


def _per_snapshot(twin, cm, hard):
    """Per-snapshot KPIs and served UE mass, calling the simulation directly snapshot by
    snapshot: ``({kpi: [snapshots, cells]}, [snapshots, cells])``."""
    pred, net = twin
    per, mass = [], []
    for s in range(pred.population.weight.shape[0]):
        pop = jax.tree.map(lambda x, s=s: x[s], pred.population)
        ch = jax.tree.map(lambda x, s=s: x[s], twin.channel)
        res = simulate(net, pop, ch, cm, hard=hard)
        per.append({k: v for k, v in cell_kpis(net, pop, res).items() if k in KPIS})
        mass.append(jnp.sum(res.serving_prob * pop.weight[:, None], axis=0))
    return {k: jnp.stack([p[k] for p in per]) for k in KPIS}, jnp.stack(mass)


def _direct(twin, cm, hard):
    """The period KPIs by calling the simulation directly, snapshot by snapshot."""
    return period_kpis(*_per_snapshot(twin, cm, hard))


def test_areas_of_different_scenarios_share_one_compiled_search():
    """The twins of a metro (UMi) and an urban (UMa) area differ only in array values: same
    tree structure and static parts, which is what `equinox.filter_jit` keys its cache on."""
    a, b = (
        opt.twin_predictor(
            jax.random.PRNGKey(0), network_for_area(area_type(x), 1), area_type(x), 2
        )
        for x in ("metro", "urban")
    )
    assert a.network.scenario is None
    (da, sa), (db, sb) = eqx.partition(a, eqx.is_array), eqx.partition(b, eqx.is_array)
    assert sa == sb and jax.tree.structure(da) == jax.tree.structure(db)
    assert not np.allclose(a.links.pathloss_db, b.links.pathloss_db)


def test_values_are_the_hard_simulation(twin):
    pred, net = twin
    cm = _cm(net, d_tilt=jnp.array([1.0, -2.0, 0.0]))
    out = pred(cm)
    ref = _direct(twin, cm, hard=True)
    for k in KPIS:
        chex.assert_shape(out.mean[k], (net.n_cells,))
        np.testing.assert_allclose(out.mean[k], ref[k], rtol=2e-5, atol=1e-5)
        np.testing.assert_array_equal(out.std[k], 0.0)


def test_gradient_is_the_soft_simulation_by_finite_differences(twin):
    pred, net = twin
    f = lambda d: jnp.mean(pred(_cm(net, d_power=d)).mean["dl_throughput_mbps"])
    soft = lambda d: jnp.mean(_direct(twin, _cm(net, d_power=d), hard=False)["dl_throughput_mbps"])
    d0 = jnp.array([0.5, -1.0, 0.25], jnp.float32)
    g = np.asarray(jax.grad(f)(d0))
    h = 0.05
    for c in range(net.n_cells):
        e = np.zeros(3, np.float32)
        e[c] = h
        fd = (float(soft(d0 + e)) - float(soft(d0 - e))) / (2 * h)
        np.testing.assert_allclose(g[c], fd, rtol=0.05, atol=2e-3 * max(1.0, abs(fd)))
    assert np.all(np.isfinite(g)) and np.any(np.abs(g) > 0)


def test_offsets_shift_the_cm(twin):
    pred, net = twin
    off = jnp.array([1.0, 0.0, -1.0], jnp.float32)
    shifted = eqx.tree_at(lambda p: (p.tilt_offset_deg, p.power_offset_db), pred, (off, -off))
    a = shifted(_cm(net))
    b = pred(_cm(net, d_tilt=off, d_power=-off))
    for k in KPIS:
        np.testing.assert_allclose(a.mean[k], b.mean[k], rtol=1e-6)


def test_twin_predictor_rejects_bad_input():
    at = area_type("urban")
    net = network_for_area(at, 1)
    with pytest.raises(ValueError, match="n_snapshots"):
        opt.twin_predictor(jax.random.PRNGKey(0), net, at, 0)
    with pytest.raises(ValueError, match="unknown KPI"):
        opt.twin_predictor(jax.random.PRNGKey(0), net, at, 2, kpis=("dl_tput",))


class _Exp(eqx.Module):
    """``mean_k = a_k exp(b_k · cm)`` per cell (closed-form log response), ``std = s · mean``."""

    a: jnp.ndarray
    b: jnp.ndarray
    s: float = 0.0

    def __call__(self, cm):
        x = cm["tilt_deg"]
        m = {k: self.a[i] * jnp.exp(self.b[i] * x) for i, k in enumerate(KPIS)}
        return opt.Prediction(m, {k: self.s * v for k, v in m.items()})


def test_anchored_blend_closed_form():
    sur = _Exp(jnp.array([100.0, 20.0, 0.9]), jnp.array([0.10, -0.05, 0.01]), s=0.1)
    tw = _Exp(jnp.array([60.0, 5.0, 0.5]), jnp.array([-0.20, 0.08, 0.02]))
    cm0 = {"tilt_deg": jnp.array([4.0, 6.0]), "tx_power_dbm": jnp.zeros(2), "cio_db": jnp.zeros(2)}
    cm = dict(cm0, tilt_deg=jnp.array([7.0, 2.0]))
    x0, x = cm0["tilt_deg"], cm["tilt_deg"]
    for w in (0.0, 0.3, 1.0):
        out = opt.AnchoredPredictor(sur, tw, cm0, w)(cm)
        for i, k in enumerate(KPIS):
            s0, s1 = sur.a[i] * jnp.exp(sur.b[i] * x0), sur.a[i] * jnp.exp(sur.b[i] * x)
            t0, t1 = tw.a[i] * jnp.exp(tw.b[i] * x0), tw.a[i] * jnp.exp(tw.b[i] * x)
            ref = s0 + w * (s1 - s0) + (1 - w) * (t1 - t0)
            np.testing.assert_allclose(out.mean[k], ref, rtol=1e-5)
            np.testing.assert_allclose(out.std[k], 0.1 * s1, rtol=1e-5)  # the surrogate's std
        at0 = opt.AnchoredPredictor(sur, tw, cm0, w)(cm0)  # at the anchor: the surrogate
        for k in KPIS:
            np.testing.assert_allclose(at0.mean[k], sur(cm0).mean[k], rtol=1e-6)
    # gradient: d μ / d tilt = w b_S μ_S + (1 − w) b_T μ_T
    ap = opt.AnchoredPredictor(sur, tw, cm0, 0.25)
    g = jax.grad(lambda t: ap(dict(cm0, tilt_deg=t)).mean[KPIS[0]][0])(x)
    ref = 0.25 * 0.10 * 100.0 * np.exp(0.10 * 7.0) + 0.75 * -0.20 * 60.0 * np.exp(-0.20 * 7.0)
    np.testing.assert_allclose(g[0], ref, rtol=1e-5)
    with pytest.raises(ValueError, match="weight"):
        opt.AnchoredPredictor(sur, tw, cm0, 1.5)
    with pytest.raises(ValueError, match="mode"):
        opt.AnchoredPredictor(sur, tw, cm0, 0.5, mode="ratio")


def test_anchored_relative_closed_form():
    """``mode="relative"``: log μ = log μ_S(cm₀) + w Δlog μ_S + (1 − w) Δlog μ_T; for the toy
    predictors Δlog μ = b Δx exactly."""
    sur = _Exp(jnp.array([100.0, 20.0, 0.9]), jnp.array([0.10, -0.05, 0.01]), s=0.1)
    tw = _Exp(jnp.array([60.0, 5.0, 0.5]), jnp.array([-0.20, 0.08, 0.02]))
    cm0 = {"tilt_deg": jnp.array([4.0, 6.0]), "tx_power_dbm": jnp.zeros(2), "cio_db": jnp.zeros(2)}
    cm = dict(cm0, tilt_deg=jnp.array([7.0, 2.0]))
    dx = cm["tilt_deg"] - cm0["tilt_deg"]
    for w in (0.0, 0.3, 1.0):
        out = opt.AnchoredPredictor(sur, tw, cm0, w, mode="relative")(cm)
        for i, k in enumerate(KPIS):
            level = sur.a[i] * jnp.exp(sur.b[i] * cm0["tilt_deg"])
            ref = level * jnp.exp((w * sur.b[i] + (1 - w) * tw.b[i]) * dx)
            np.testing.assert_allclose(out.mean[k], ref, rtol=1e-5)


def test_anchored_keeps_surrogate_response_where_twin_undefined():
    sur = _Exp(jnp.array([100.0, 20.0, 0.9]), jnp.array([0.10, -0.05, 0.01]))

    class _NanTwin(eqx.Module):
        def __call__(self, cm):
            v = jnp.where(jnp.arange(2) == 0, jnp.nan, cm["tilt_deg"])
            return opt.Prediction.deterministic({k: v for k in KPIS})

    cm0 = {"tilt_deg": jnp.array([4.0, 6.0]), "tx_power_dbm": jnp.zeros(2), "cio_db": jnp.zeros(2)}
    cm = dict(cm0, tilt_deg=jnp.array([7.0, 2.0]))
    out = opt.AnchoredPredictor(sur, _NanTwin(), cm0, 0.5)(cm)
    k = KPIS[0]
    np.testing.assert_allclose(out.mean[k][0], sur(cm).mean[k][0], rtol=1e-6)  # NaN twin cell
    s0 = sur(cm0).mean[k][1]
    np.testing.assert_allclose(out.mean[k][1], s0 + 0.5 * (sur(cm).mean[k][1] - s0) + 0.5 * -4.0)
    g = jax.grad(
        lambda t: jnp.sum(
            opt.AnchoredPredictor(sur, _NanTwin(), cm0, 0.5)(dict(cm0, tilt_deg=t)).mean[k]
        )
    )(cm["tilt_deg"])
    assert np.all(np.isfinite(g))


# --------------------------------------------------------------------------- response uncertainty
def _jackknife_var(values, weights, weighted):
    """Jackknife variance of the period value (numpy, from the aggregation's definition)."""
    n = values.shape[0]
    ok = np.isfinite(values) & (weights > 0 if weighted else True)
    w = np.where(ok, weights if weighted else 1.0, 0.0)
    v = np.where(ok, values, 0.0)
    loo = (np.sum(w * v, 0) - w * v) / (np.sum(w, 0) - w)  # leave snapshot i out
    return (n - 1) / n * np.sum((loo - loo.mean(0)) ** 2, 0)


def test_period_influence_variance_matches_the_jackknife():
    """``n/(n−1) Σ a_i²`` (delta method) against the jackknife variance of the period KPI
    (ratio estimator of a UE-weighted KPI, with snapshots serving nobody), also for a paired
    change; a plain-mean KPI gives exactly the sample variance of the mean."""
    from dtwin.kpi import period_influence

    rng = np.random.default_rng(0)
    n, cells = 400, 3
    name = "dl_throughput_mbps"
    w0 = rng.gamma(2.0, 1.0, (n, cells)).astype(np.float32)
    w0[rng.random((n, cells)) < 0.1] = 0.0  # snapshots in which the cell serves nobody
    v0 = rng.lognormal(3.0, 0.5, (n, cells)).astype(np.float32)
    v0[w0 == 0] = np.nan
    v1 = (v0 * rng.lognormal(0.1, 0.2, (n, cells))).astype(np.float32)  # the same snapshots
    w1 = (w0 * rng.uniform(0.5, 1.5, (n, cells))).astype(np.float32)
    a0 = np.asarray(period_influence({name: v0}, w0)[name])
    a1 = np.asarray(period_influence({name: v1}, w1)[name])
    chex.assert_shape(a0, (n, cells))

    def loo(v, w):  # the period value with snapshot i left out, from its definition
        ok = np.isfinite(v) & (w > 0)
        w, v = np.where(ok, w, 0.0).astype(np.float64), np.where(ok, v, 0.0).astype(np.float64)
        return (np.sum(w * v, 0) - w * v) / (np.sum(w, 0) - w)

    def jackknife(t):
        return (n - 1) / n * np.sum((t - t.mean(0)) ** 2, 0)

    lin = n / (n - 1) * np.sum(a0**2, 0)
    np.testing.assert_allclose(lin, jackknife(loo(v0, w0)), rtol=0.03)
    lin_change = n / (n - 1) * np.sum((a1 - a0) ** 2, 0)
    np.testing.assert_allclose(lin_change, jackknife(loo(v1, w1) - loo(v0, w0)), rtol=0.03)
    assert np.all(lin_change < 0.5 * (lin + n / (n - 1) * np.sum(a1**2, 0)))  # pairing helps
    # plain mean: exactly the sample variance of the mean; undefined (NaN) -> influences 0
    full = rng.lognormal(3.0, 0.5, (n, cells)).astype(np.float32)
    a = np.asarray(period_influence({"traffic_volume_mb": full}, w1)["traffic_volume_mb"])
    np.testing.assert_allclose(
        n / (n - 1) * np.sum(a**2, 0), np.var(full, 0, ddof=1) / n, rtol=1e-4
    )
    a = np.asarray(period_influence({"traffic_volume_mb": v0}, w0)["traffic_volume_mb"])
    np.testing.assert_array_equal(a, 0.0)


def test_simulator_evaluate_is_the_prediction_and_its_influences(twin):
    from dtwin.kpi import period_influence

    pred, net = twin
    cm = _cm(net, d_tilt=jnp.array([1.0, -2.0, 0.0]))
    out, infl = pred.evaluate(cm)
    plain = pred(cm)
    ref = period_influence(*_per_snapshot(twin, cm, hard=True))
    for k in KPIS:
        np.testing.assert_allclose(out.mean[k], plain.mean[k], rtol=1e-6)
        chex.assert_shape(infl[k], (4, net.n_cells))
        np.testing.assert_allclose(infl[k], ref[k], rtol=2e-4, atol=1e-5)


class _Members(eqx.Module):
    """Members ``m``: ``mean_k,m = a_k exp(b_k,m · tilt)``; std = population std over members."""

    a: jnp.ndarray  # [kpis]
    b: jnp.ndarray  # [members, kpis]

    def members(self, cm):
        x = cm["tilt_deg"]
        return {k: self.a[i] * jnp.exp(self.b[:, i, None] * x[None]) for i, k in enumerate(KPIS)}

    def __call__(self, cm):
        m = self.members(cm)
        return opt.Prediction(
            {k: v.mean(0) for k, v in m.items()}, {k: v.std(0) for k, v in m.items()}
        )


class _Snapshots(eqx.Module):
    """A twin with ``mean = t_k tilt`` and snapshot influences ``a_i = c_i,k tilt``."""

    t: jnp.ndarray  # [kpis]
    c: jnp.ndarray  # [snapshots, kpis]

    def evaluate(self, cm):
        x = cm["tilt_deg"]
        mean = {k: self.t[i] * x for i, k in enumerate(KPIS)}
        return opt.Prediction.deterministic(mean), {
            k: self.c[:, i, None] * x[None] for i, k in enumerate(KPIS)
        }

    def __call__(self, cm):
        return self.evaluate(cm)[0]


def test_anchored_response_std_closed_form():
    sur = _Members(
        jnp.array([100.0, 20.0, 0.9]),
        jnp.array([[0.10, -0.05, 0.01], [0.12, -0.02, 0.0], [0.07, -0.06, 0.02]]),
    )
    c = jnp.asarray(np.random.default_rng(0).normal(0.0, 0.5, (8, 3)), jnp.float32)
    tw = _Snapshots(jnp.array([-3.0, 1.0, 0.02]), c)
    cm0 = {"tilt_deg": jnp.array([4.0, 6.0]), "tx_power_dbm": jnp.zeros(2), "cio_db": jnp.zeros(2)}
    cm = dict(cm0, tilt_deg=jnp.array([7.0, 2.0]))
    x0, x = cm0["tilt_deg"], cm["tilt_deg"]
    for w in (0.0, 0.4, 1.0):
        ap = opt.AnchoredPredictor(sur, tw, cm0, w, std_mode="response")
        out = ap(cm)
        plain = opt.AnchoredPredictor(sur, tw, cm0, w)(cm)  # same mean as std_mode="surrogate"
        for i, k in enumerate(KPIS):
            np.testing.assert_allclose(out.mean[k], plain.mean[k], rtol=1e-5)
            m0 = np.asarray(sur.a[i] * np.exp(np.asarray(sur.b)[:, i, None] * np.asarray(x0)))
            m1 = np.asarray(sur.a[i] * np.exp(np.asarray(sur.b)[:, i, None] * np.asarray(x)))
            level = m0.std(0)
            var_s = (m1 - m0).var(0)
            var_t = 8 / 7 * np.sum((np.asarray(c)[:, i, None] * np.asarray(x - x0)) ** 2, 0)
            ref = np.sqrt(level**2 + w**2 * var_s + (1 - w) ** 2 * var_t)
            np.testing.assert_allclose(out.std[k], ref, rtol=1e-4)
            np.testing.assert_allclose(ap(cm0).std[k], level, rtol=1e-5)  # at the anchor
    # the penalty's gradient is finite at the anchor (a sqrt of a variance that vanishes there)
    ap = opt.AnchoredPredictor(sur, tw, cm0, 0.4, std_mode="response")
    g = jax.grad(lambda t: jnp.sum(ap(dict(cm0, tilt_deg=t)).std[KPIS[0]]))(x0)
    assert np.all(np.isfinite(g))
    with pytest.raises(ValueError, match="std_mode"):
        opt.AnchoredPredictor(sur, tw, cm0, 0.4, std_mode="ensemble")
    with pytest.raises(ValueError, match="per-member"):
        opt.AnchoredPredictor(_Exp(sur.a, sur.b[0]), tw, cm0, 0.4, std_mode="response")
    with pytest.raises(ValueError, match="per-snapshot"):
        opt.AnchoredPredictor(sur, _Exp(sur.a, sur.b[0]), cm0, 0.4, std_mode="response")


def test_anchored_response_std_on_the_twin_simulation(twin):
    """With the real twin simulation: ``(1 − w)²`` times the sampling variance of the twin's
    change, computed from the twin's per-snapshot hard KPIs (jackknife over its snapshots is
    too coarse at 4 snapshots; the delta method is checked against it above)."""
    pred, net = twin
    sur = _Members(jnp.array([100.0, 20.0, 0.9]), jnp.zeros((2, 3)))  # constant: no spread
    cm0 = _cm(net)
    cm = _cm(net, d_tilt=jnp.array([2.0, -2.0, 0.0]))
    out = opt.AnchoredPredictor(sur, pred, cm0, 0.25, std_mode="response")(cm)
    a0, a1 = pred.evaluate(cm0)[1], pred.evaluate(cm)[1]
    for k in KPIS:
        ref = 0.75 * np.sqrt(4 / 3 * np.sum((np.asarray(a1[k]) - np.asarray(a0[k])) ** 2, 0))
        np.testing.assert_allclose(out.std[k], ref, rtol=1e-4, atol=1e-6)
    assert float(out.std["dl_throughput_mbps"][0]) > 0


def test_anchored_blend_std_closed_form():
    """``std_mode="blend"``: the stds blended as the means, ``s_S0 + w Δs_S + (1 − w) Δs_T``."""
    sur = _Exp(jnp.array([100.0, 20.0, 0.9]), jnp.array([0.10, -0.05, 0.01]), s=0.1)
    tw = _Exp(jnp.array([60.0, 5.0, 0.5]), jnp.array([-0.20, 0.08, 0.02]), s=0.05)
    cm0 = {"tilt_deg": jnp.array([4.0, 6.0]), "tx_power_dbm": jnp.zeros(2), "cio_db": jnp.zeros(2)}
    cm = dict(cm0, tilt_deg=jnp.array([7.0, 2.0]))
    for w in (0.0, 0.3, 1.0):
        out = opt.AnchoredPredictor(sur, tw, cm0, w, std_mode="blend")(cm)
        for k in KPIS:
            s0, s1 = sur(cm0).std[k], sur(cm).std[k]
            t0, t1 = tw(cm0).std[k], tw(cm).std[k]
            ref = np.maximum(s0 + w * (s1 - s0) + (1 - w) * (t1 - t0), 0.0)
            np.testing.assert_allclose(out.std[k], ref, rtol=1e-5, atol=1e-6)
    # w = 1 is the surrogate's std; a deterministic twin at w = 0 leaves the level's std
    out = opt.AnchoredPredictor(sur, tw, cm0, 1.0, std_mode="blend")(cm)
    for k in KPIS:
        np.testing.assert_allclose(out.std[k], sur(cm).std[k], rtol=1e-5)
    det = _Exp(tw.a, tw.b)
    out = opt.AnchoredPredictor(sur, det, cm0, 0.0, std_mode="blend")(cm)
    for k in KPIS:
        np.testing.assert_allclose(out.std[k], sur(cm0).std[k], rtol=1e-6)

    class _NanTwin(eqx.Module):  # cell 0 undefined in the twin: the surrogate's std there
        def __call__(self, cm):
            v = jnp.where(jnp.arange(2) == 0, jnp.nan, cm["tilt_deg"])
            return opt.Prediction.deterministic({k: v for k in KPIS})

    out = opt.AnchoredPredictor(sur, _NanTwin(), cm0, 0.0, std_mode="blend")(cm)
    for k in KPIS:
        np.testing.assert_allclose(out.std[k][0], sur(cm).std[k][0], rtol=1e-5)
        np.testing.assert_allclose(out.std[k][1], sur(cm0).std[k][1], rtol=1e-5)


def test_candidate_cells_change_only_the_gradient_and_only_slightly():
    """On 21 cells the default soft simulation restricts each UE to its 6 strongest cells: the
    values (hard simulation) are those of the every-cell predictor, the gradient within 2 %."""
    at = area_type("urban")
    net = network_for_area(at, 7)
    key = jax.random.PRNGKey(4)
    fast = opt.twin_predictor(key, net, at, 2)
    full = opt.twin_predictor(key, net, at, 2, candidates=None)
    assert fast.candidates == opt.simulator.DEFAULT_CANDIDATES < net.n_cells
    cm = _cm(net, d_tilt=1.0)
    np.testing.assert_array_equal(
        fast(cm).mean["dl_throughput_mbps"], full(cm).mean["dl_throughput_mbps"]
    )

    def grad(pred):
        return jax.grad(lambda c: pred(c).mean["dl_throughput_mbps"].mean())(cm)

    g_fast, g_full = jax.jit(grad)(fast), jax.jit(grad)(full)
    for name in ("tilt_deg", "tx_power_dbm", "cio_db"):
        rel = jnp.linalg.norm(g_fast[name] - g_full[name]) / jnp.linalg.norm(g_full[name])
        assert float(jnp.linalg.norm(g_full[name])) > 0.0
        assert float(rel) < 2e-2, (name, float(rel))
    z = jnp.zeros((net.n_cells,), jnp.float32)
    with pytest.raises(ValueError, match="candidates"):
        opt.SimulatorPredictor(net, fast.population, fast.links, z, z, candidates=0)


def test_snapshot_weight_counts_as_copies(twin):
    """A snapshot weight k equals k copies of the snapshot (values of every KPI); the
    weighted influences of a ratio sum to zero over the snapshots (Σ s_i w_i (v_i − R) = 0);
    a weight of the wrong length is refused."""
    pred, net = twin
    z = jnp.zeros((net.n_cells,), jnp.float32)
    k = np.array([2, 0, 1, 3])
    weighted = opt.SimulatorPredictor(
        net, pred.population, pred.links, z, z, snapshot_weight=jnp.asarray(k, jnp.float32)
    )
    rep = np.repeat(np.arange(4), k)
    take = lambda t: jax.tree_util.tree_map(lambda a: a[rep], t)  # noqa: E731
    copies = opt.SimulatorPredictor(net, take(pred.population), take(pred.links), z, z)
    cm = _cm(net, d_tilt=1.0, d_power=-2.0)
    got, infl = weighted.evaluate(cm)
    want = copies(cm)
    for name in KPIS:
        np.testing.assert_allclose(got.mean[name], want.mean[name], rtol=1e-5, err_msg=name)
        ok = np.isfinite(np.asarray(got.mean[name]))
        np.testing.assert_allclose(np.asarray(infl[name]).sum(0)[ok], 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="snapshot_weight"):
        opt.SimulatorPredictor(net, pred.population, pred.links, z, z, snapshot_weight=jnp.ones(3))


def test_twin_predictor_weighs_every_hour_equally():
    """64 snapshots: hours i mod 24, weighted so each hour counts 1/24 (the default); the
    weights are `dtwin.stratified_hours`' and sum to the snapshot count."""
    from dtwin.sweep import stratified_hours

    at = area_type("urban")
    net = network_for_area(at, 1)
    pred = opt.twin_predictor(jax.random.PRNGKey(0), net, at, 64, kpis=("dl_throughput_mbps",))
    _, w = stratified_hours(64)
    np.testing.assert_allclose(pred.snapshot_weight, w)
    np.testing.assert_allclose(float(jnp.sum(pred.snapshot_weight)), 64.0, rtol=1e-6)
    drawn = opt.twin_predictor(
        jax.random.PRNGKey(0), net, at, 64, kpis=("dl_throughput_mbps",), stratify_hours=False
    )
    np.testing.assert_array_equal(drawn.snapshot_weight, 1.0)
