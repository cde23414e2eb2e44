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
from dtwin.network import cell_kpis, simulate

KPIS = opt.simulator.DEFAULT_KPIS


@pytest.fixture(scope="module")
def twin():
    at = area_type("urban")
    net = network_for_area(at, 1)
    return opt.twin_predictor(jax.random.PRNGKey(3), net, at, 4), net


def _cm(net, d_tilt=0.0, d_power=0.0):
    cm = SCHEMA.default(net.n_cells)
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in cm.items()}
    cm["tilt_deg"] = cm["tilt_deg"] + jnp.asarray(d_tilt, jnp.float32)
    cm["tx_power_dbm"] = cm["tx_power_dbm"] + jnp.asarray(d_power, jnp.float32)
    return cm


def _direct(net, pred, cm, hard):
    """The period KPIs by calling the simulation directly, snapshot by snapshot."""
    per, mass = [], []
    for s in range(pred.population.weight.shape[0]):
        pop = jax.tree.map(lambda x, s=s: x[s], pred.population)
        ch = jax.tree.map(lambda x, s=s: x[s], pred.channel)
        res = simulate(net, pop, ch, cm, hard=hard)
        per.append({k: v for k, v in cell_kpis(net, pop, res).items() if k in KPIS})
        mass.append(jnp.sum(res.serving_prob * pop.weight[:, None], axis=0))
    stacked = {k: jnp.stack([p[k] for p in per]) for k in KPIS}
    return period_kpis(stacked, jnp.stack(mass))


def test_values_are_the_hard_simulation(twin):
    pred, net = twin
    cm = _cm(net, d_tilt=jnp.array([1.0, -2.0, 0.0]))
    out = pred(cm)
    ref = _direct(net, pred, cm, hard=True)
    for k in KPIS:
        chex.assert_shape(out.mean[k], (net.n_cells,))
        np.testing.assert_allclose(out.mean[k], ref[k], rtol=2e-5, atol=1e-5)
        np.testing.assert_array_equal(out.std[k], 0.0)


def test_gradient_is_the_soft_simulation_by_finite_differences(twin):
    pred, net = twin
    f = lambda d: jnp.mean(pred(_cm(net, d_power=d)).mean["dl_throughput_mbps"])
    soft = lambda d: jnp.mean(
        _direct(net, pred, _cm(net, d_power=d), hard=False)["dl_throughput_mbps"]
    )
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
