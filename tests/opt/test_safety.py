"""Safety: trust region, guardrail/std/no-change rules and the final hard check."""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from opt import (
    Guardrail,
    Prediction,
    Reason,
    SafetyConfig,
    SearchConfig,
    enforce_safety,
    grid_box,
    mean_throughput,
    no_change_mask,
    search,
    std_excess,
    trust_region,
)
from opt.safety import reference

from ._predictors import QuadraticPredictor


@pytest.mark.parametrize(
    "tilt, steps, lo, hi",
    [
        (6.0, 2, 4.0, 8.0),
        (1.0, 2, 0.0, 3.0),
        (15.0, 3, 12.0, 15.0),
        (6.4, 2, 5.0, 8.0),
        (6.0, 0, 6.0, 6.0),
    ],
)
def test_trust_region_closed_form(tilt, steps, lo, hi):
    cm = dict(SCHEMA.default(2), tilt_deg=jnp.asarray([tilt, 6.0]))
    low, high = trust_region(SCHEMA, cm, steps)
    assert float(low["tilt_deg"][0]) == lo and float(high["tilt_deg"][0]) == hi
    assert float(low["tx_power_dbm"][0]) == max(30.0, 46.0 - steps)
    assert float(high["tx_power_dbm"][0]) == min(49.0, 46.0 + steps)
    # jit and vmap over areas
    batched = {k: jnp.stack([v, v]) for k, v in cm.items()}
    low_b, _ = jax.jit(jax.vmap(lambda c: trust_region(SCHEMA, c, steps)))(batched)
    chex.assert_shape(low_b["tilt_deg"], (2, 2))
    assert float(low_b["tilt_deg"][1, 0]) == lo


def test_gridbox_projection_handles_nan_and_overflow():
    box = grid_box(SCHEMA, SCHEMA.default(2), 2)
    u = jnp.asarray([[jnp.nan, 1e30, -1e30], [jnp.inf, -jnp.inf, 0.5]])
    p = box.project_unit(u)
    assert np.all(np.isfinite(np.asarray(p)))
    assert np.all(np.asarray(p) >= np.asarray(box.u_lo) - 1e-7)
    assert np.all(np.asarray(p) <= np.asarray(box.u_hi) + 1e-7)
    x = box.x_of(jnp.full((2, 3), jnp.nan))
    np.testing.assert_allclose(np.asarray(x), np.asarray(box.x_cur))


def test_guardrail_violation_closed_form():
    ref, new = jnp.asarray([0.9, 0.9]), jnp.asarray([0.85, 0.895])
    v = Guardrail("coverage", 0.02).violation(new, ref)
    np.testing.assert_allclose(np.asarray(v), [(0.9 - 0.02 - 0.85) / 0.901, 0.0], rtol=1e-5)
    v = Guardrail("coverage", 0.05, relative=True).violation(new, ref)
    np.testing.assert_allclose(np.asarray(v), [(0.9 * 0.95 - 0.85) / 0.901, 0.0], rtol=1e-4)
    with pytest.raises(ValueError, match="margin"):
        Guardrail("coverage", -1.0)
    # area-level: one test on the means (0.9 -> 0.8725, drop 0.0275 > 0.02), spread over cells
    v = Guardrail("coverage", 0.02, area=True).violation(new, ref)
    np.testing.assert_allclose(np.asarray(v), [(0.88 - 0.8725) / 0.901 / 2] * 2, rtol=1e-4)
    v = Guardrail("coverage", 0.03, area=True).violation(new, ref)
    np.testing.assert_allclose(np.asarray(v), [0.0, 0.0])


def test_no_change_mask_and_std_excess():
    gain, std = jnp.asarray([1.0, 0.5, jnp.nan, 0.0]), jnp.asarray([0.4, 0.6, 0.1, 0.0])
    np.testing.assert_array_equal(
        np.asarray(no_change_mask(gain, std, 1.0)), [False, True, True, False]
    )
    np.testing.assert_array_equal(
        np.asarray(no_change_mask(gain, std, 1.0, min_gain=0.1)), [False, True, True, True]
    )
    ex = std_excess(jnp.asarray([1.0, 3.0, 3.0]), jnp.asarray([0.0, 0.0, 4.0]), 2.0)
    np.testing.assert_allclose(np.asarray(ex), [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(np.asarray(std_excess(ex, ex, float("inf"))), 0.0)
    with pytest.raises(ValueError, match="max_std"):
        SafetyConfig(max_std=0.0)


class _Coupled(eqx.Module):
    """Cell 0's power raises everyone's throughput; cell 1's tilt lowers cell 2's coverage.

    ``std`` of throughput is ``std0 + std_power · (u_power_0 − 0.84)₊`` (uncertain above 46 dBm).
    """

    std0: jnp.ndarray
    std_power: jnp.ndarray
    nan_tilt: jnp.ndarray  # NaN prediction when cell 2's tilt exceeds this

    def __call__(self, cm):
        u = SCHEMA.to_vector(SCHEMA.to_unit(cm))
        m = 10.0 + 5.0 * u[0, 1] + 0.1 * u[:, 2] + jnp.zeros(3)
        cov = jnp.asarray([0.9, 0.9, 0.9]) - jnp.asarray([0.0, 0.0, 1.0]) * (u[1, 0] - 0.4)
        m = m + jnp.where(cm["tilt_deg"][2] > self.nan_tilt, jnp.nan, 0.0)
        s = self.std0 + self.std_power * jnp.maximum(u[0, 1] - 0.8421, 0.0) + jnp.zeros(3)
        mean = {"dl_throughput_mbps": m, "coverage": cov, "cell_edge_throughput_mbps": m / 5}
        std = {"dl_throughput_mbps": s, "coverage": 0 * s, "cell_edge_throughput_mbps": s / 5}
        return Prediction(mean, std)


def _enforce(pred, safety, x_cand):
    cur = SCHEMA.default(3)
    x_cur = SCHEMA.to_vector(cur)
    obj = mean_throughput()
    ref = reference(obj, pred(cur), cur)
    fn = jax.jit(
        lambda p, xc: enforce_safety(
            lambda x: p(SCHEMA.from_vector(x)), obj, safety, SCHEMA, x_cur, xc, ref
        )
    )
    return fn(pred, jnp.asarray(x_cand, jnp.float32))


# candidate: cell 0 power +2 dB (helps all), cell 1 tilt +2 deg (hurts cell 2's coverage),
# cell 2 CIO +1 dB (tiny gain 0.1/12 per cell-mean)
CAND = [[6.0, 48.0, 0.0], [8.0, 46.0, 0.0], [6.0, 46.0, 1.0]]


@pytest.mark.parametrize(
    "std0, std_power, max_std, z, nan_tilt, expected",
    [
        # guardrail: cell 1 reverted; others have gain > 0 = z std
        (0.0, 0.0, float("inf"), 0.0, 99.0, [Reason.CHANGED, Reason.GUARDRAIL, Reason.CHANGED]),
        # cell 2's CIO gain (0.1/12/3 ≈ 0.0028) is within 1 std (σ = 0.02/3 ≈ 0.0067)
        (
            0.02,
            0.0,
            float("inf"),
            1.0,
            99.0,
            [Reason.CHANGED, Reason.GUARDRAIL, Reason.WITHIN_UNCERTAINTY],
        ),
        # cell 0's power gain (5·2/19 ≈ 0.53) within 1 std too when std is 1
        (
            1.0,
            0.0,
            float("inf"),
            1.0,
            99.0,
            [Reason.WITHIN_UNCERTAINTY, Reason.GUARDRAIL, Reason.WITHIN_UNCERTAINTY],
        ),
        # std rises above max_std with cell 0's power: reverted for uncertainty
        (
            0.0,
            50.0,
            1.0,
            0.0,
            99.0,
            [Reason.UNCERTAINTY_TOO_HIGH, Reason.GUARDRAIL, Reason.CHANGED],
        ),
    ],
)
def test_enforce_safety_reverts_the_right_cells(std0, std_power, max_std, z, nan_tilt, expected):
    pred = _Coupled(jnp.float32(std0), jnp.float32(std_power), jnp.float32(nan_tilt))
    safety = SafetyConfig(
        guardrails=(Guardrail("coverage", 0.02),), z=z, max_std=max_std, kappa=0.0
    )
    x, changed, reason = _enforce(pred, safety, CAND)
    np.testing.assert_array_equal(np.asarray(reason), np.asarray(expected, np.int32))
    np.testing.assert_array_equal(np.asarray(changed), np.asarray(expected) == Reason.CHANGED)
    x_cur = np.asarray(SCHEMA.to_vector(SCHEMA.default(3)))
    for c in range(3):
        want = CAND[c] if expected[c] == Reason.CHANGED else x_cur[c]
        np.testing.assert_allclose(np.asarray(x[c]), want)
    # the result satisfies the guardrail
    cov = np.asarray(pred(SCHEMA.from_vector(x)).mean["coverage"])
    assert np.all(cov >= 0.9 - 0.02 - 1e-6)


def test_enforce_safety_reverts_everything_on_nan():
    pred = _Coupled(jnp.float32(0.0), jnp.float32(0.0), jnp.float32(6.5))
    cand = [row[:] for row in CAND]
    cand[2][0] = 7.0  # NaN region
    safety = SafetyConfig(guardrails=(Guardrail("coverage", 0.02),), z=0.0, kappa=0.0)
    x, changed, reason = _enforce(pred, safety, cand)
    # reverting cell 2 alone fixes it; the rest follows the other rules
    np.testing.assert_array_equal(
        np.asarray(reason), [Reason.CHANGED, Reason.GUARDRAIL, Reason.NON_FINITE]
    )
    assert np.all(np.isfinite(np.asarray(pred(SCHEMA.from_vector(x)).mean["dl_throughput_mbps"])))


def test_uncertainty_penalty_steers_search_away_from_uncertain_region():
    # mean optimum at tilt u = 0.6 (9 deg) but std = 2.5 u_tilt² grows with tilt
    target = jnp.asarray(np.tile([[0.6, 0.84, 0.5]], (3, 1)), jnp.float32)
    cfg = SearchConfig(n_starts=4, n_steps=60)
    cur = SCHEMA.default(3)
    recs = [
        search(
            jax.random.key(0),
            QuadraticPredictor(target, std_tilt=2.5),
            cur,
            safety=SafetyConfig(guardrails=(), kappa=kappa, z=0.0, trust_steps=2),
            config=cfg,
        )
        for kappa in (0.0, 1.0)
    ]
    # κ = 0: the trust-region edge toward the optimum (8 deg)
    np.testing.assert_array_equal(np.asarray(recs[0].cm["tilt_deg"]), 8.0)
    # κ = 1: maximise −10 (u − 0.6)² − 2.5 u² -> u = 0.48 (7.2 deg) -> grid 7 deg
    np.testing.assert_array_equal(np.asarray(recs[1].cm["tilt_deg"]), 7.0)
    assert np.all(
        np.asarray(recs[1].std_after["dl_throughput_mbps"])
        < np.asarray(recs[0].std_after["dl_throughput_mbps"])
    )
    # the no-change rule with z = 1: each cell's gain (≈ 0.08) is within σ (≈ 0.31) -> unchanged
    rec = search(
        jax.random.key(0),
        QuadraticPredictor(target, std_tilt=2.5),
        cur,
        safety=SafetyConfig(guardrails=(), kappa=1.0, z=1.0, trust_steps=2),
        config=cfg,
    )
    assert not np.any(np.asarray(rec.changed))
    assert set(np.asarray(rec.reason).tolist()) <= {Reason.WITHIN_UNCERTAINTY}
