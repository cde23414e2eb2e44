"""Objectives, the augmented Lagrangian, and the energy problem against closed-form optima."""

from __future__ import annotations

import itertools

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from opt import (
    EnergyObjective,
    KPIObjective,
    Prediction,
    SafetyConfig,
    SearchConfig,
    augmented_lagrangian,
    cell_edge_throughput,
    mean_throughput,
    search,
    total_power_w,
)


def _pred():
    mean = {
        "dl_throughput_mbps": jnp.asarray([10.0, 20.0, 40.0]),
        "cell_edge_throughput_mbps": jnp.asarray([1.0, 2.0, 3.0]),
    }
    std = {
        "dl_throughput_mbps": jnp.asarray([1.0, 2.0, 3.0]),
        "cell_edge_throughput_mbps": 0 * mean["dl_throughput_mbps"],
    }
    return Prediction(mean, std)


def test_kpi_objectives_closed_form():
    pred, cm = _pred(), SCHEMA.default(3)
    assert float(mean_throughput().value(pred, cm)) == pytest.approx(70 / 3)
    assert float(mean_throughput().value(pred, cm, kappa=2.0)) == pytest.approx((70 - 12) / 3)
    w = jnp.asarray([1.0, 1.0, 2.0])
    assert float(mean_throughput(w).value(pred, cm)) == pytest.approx((10 + 20 + 80) / 4)
    assert float(cell_edge_throughput().value(pred, cm)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="coverage"):
        KPIObjective("coverage").value(pred, cm)
    # jit / vmap / grad
    v = jax.jit(lambda p: mean_throughput(w).value(p, cm, 1.0))(pred)
    chex.assert_shape(v, ())
    batched = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), pred)
    vb = jax.vmap(lambda p: mean_throughput().value(p, cm))(batched)
    np.testing.assert_allclose(np.asarray(vb), [70 / 3, 140 / 3], rtol=1e-6)
    check_grads(
        lambda m: mean_throughput(w).value(Prediction({"dl_throughput_mbps": m}, {}), cm),
        (jnp.asarray([1.0, 2.0, 3.0]),),
        order=1,
        modes=["rev"],
    )


def test_total_power_and_energy_constraints_closed_form():
    cm = dict(SCHEMA.default(3), tx_power_dbm=jnp.asarray([30.0, 40.0, 46.0]))
    assert float(total_power_w(cm)) == pytest.approx(1.0 + 10.0 + 10**1.6, rel=1e-5)
    obj = EnergyObjective(
        qos_floor_mbps=20.0, max_eirp_dbm=60.0, antenna_gain_dbi=17.0, qos_kappa=1.0
    )
    g = np.asarray(obj.constraints(_pred(), cm))
    np.testing.assert_allclose(g[:3], [(20 - 9) / 20, (20 - 18) / 20, (20 - 37) / 20], rtol=1e-6)
    np.testing.assert_allclose(g[3:], [30 + 17 - 60, 40 + 17 - 60, 46 + 17 - 60])
    with pytest.raises(ValueError, match="qos_floor_mbps"):
        EnergyObjective(qos_floor_mbps=[10.0, 0.0, 5.0])
    assert float(obj.value(_pred(), cm)) == pytest.approx(-(1.0 + 10.0 + 10**1.6) / 3, rel=1e-5)
    p = jnp.asarray([40.0, 43.0])
    grad = jax.grad(lambda p: total_power_w({"tx_power_dbm": p}))(p)
    np.testing.assert_allclose(
        np.asarray(grad), np.log(10) / 10 * 10 ** ((np.asarray(p) - 30) / 10), rtol=1e-5
    )


@pytest.mark.parametrize(
    "target, bound, expected, multiplier",
    [
        # min (x−2)² + (y−1)² s.t. x + y ≤ 1 -> (1, 0), λ = 2
        ((2.0, 1.0), 5.0, (1.0, 0.0), 2.0),
        # inactive constraint: unconstrained optimum (0.2, 0.3), λ = 0
        ((0.2, 0.3), 5.0, (0.2, 0.3), 0.0),
        # box active too: x, y ≤ 0.5 -> (0.5, 0.5); degenerate, any λ in [0, 1] is a multiplier
        ((2.0, 1.0), 0.5, (0.5, 0.5), None),
    ],
)
def test_augmented_lagrangian_closed_form(target, bound, expected, multiplier):
    t = jnp.asarray(target)

    def fun(x):
        return jnp.sum((x - t) ** 2), jnp.asarray([x[0] + x[1] - 1.0])

    res = jax.jit(
        lambda x0: augmented_lagrangian(
            fun, x0, lambda x: jnp.clip(x, -5.0, bound), optax.adam(0.05), n_outer=10, n_inner=200
        )
    )(jnp.zeros(2))
    np.testing.assert_allclose(np.asarray(res.x), expected, atol=5e-3)
    assert float(res.max_violation) <= 1e-3
    # Adam's constant step leaves the inner problems inexact, so λ is only roughly estimated:
    # check the KKT sign pattern (active -> λ > 0, inactive -> λ = 0).
    if multiplier is None:
        assert 0.0 <= float(res.multipliers[0]) <= 1.0 + 5e-2
    elif multiplier > 0:
        assert 0.25 * multiplier < float(res.multipliers[0]) < 2.0 * multiplier
    else:
        assert float(res.multipliers[0]) < 1e-2


class _PowerThroughput(eqx.Module):
    """``tp_c = 2 (P_c − 30) − 0.2 (P_{c+1} − 30)`` Mbps (own power helps, neighbour interferes)."""

    dummy: jnp.ndarray

    def __call__(self, cm):
        p = cm["tx_power_dbm"] - 30.0
        tp = 2.0 * p - 0.2 * jnp.roll(p, -1) + 0 * self.dummy
        return Prediction.deterministic({"dl_throughput_mbps": tp})


def _brute_force_energy(floor, eirp_max_dbm):
    best, arg = np.inf, None
    for ps in itertools.product(range(30, 50), repeat=3):
        p = np.asarray(ps, np.float64)
        tp = 2 * (p - 30) - 0.2 * (np.roll(p, -1) - 30)
        if np.all(tp >= floor) and np.all(p <= eirp_max_dbm):
            w = np.sum(10 ** ((p - 30) / 10))
            if w < best:
                best, arg = w, p
    return arg


@pytest.mark.parametrize("floor", [(20.0, 24.0, 27.0), (10.0, 28.0, 5.0)])
def test_energy_search_matches_brute_force_constrained_optimum(floor):
    floor = np.asarray(floor)
    obj = EnergyObjective(
        qos_floor_mbps=jnp.asarray(floor), max_eirp_dbm=62.0, antenna_gain_dbi=17.0
    )
    safety = SafetyConfig(guardrails=(), kappa=0.0, z=0.0, trust_steps=20)
    cur = SCHEMA.default(3)  # 46 dBm + 17 dBi violates the 62 dBm EIRP limit
    rec = search(
        jax.random.key(0),
        _PowerThroughput(jnp.zeros(())),
        cur,
        obj,
        safety=safety,
        config=SearchConfig(
            n_starts=4, n_steps=200, learning_rate=0.05, n_outer=5, refine_sweeps=8
        ),
    )
    p = np.asarray(rec.cm["tx_power_dbm"])
    expected = _brute_force_energy(floor, 62.0 - 17.0)
    np.testing.assert_array_equal(p, expected)
    tp = np.asarray(rec.mean_after["dl_throughput_mbps"])
    assert np.all(tp >= floor - 1e-4)
    assert np.all(p + 17.0 <= 62.0)
    # tilt and CIO do not matter: unchanged
    np.testing.assert_array_equal(np.asarray(rec.cm["tilt_deg"]), 6.0)
