"""Pathloss (TR 38.901 Table 7.4.1-1) against Sionna 2.2, closed forms and finite differences."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin.channel import (
    InHOffice,
    RMa,
    UMa,
    UMi,
    pathloss_db,
    pathloss_los_db,
    pathloss_nlos_db,
    sample_uma_environment_height_m,
)
from tests.dtwin.channel import _sionna_ref as ref

C = 299_792_458.0
# name, scenario class, h_BS, h_UT values, distances (m), carriers (Hz)
CASES = [
    ("UMa", UMa, 25.0, (1.5, 7.5, 12.5), (10.0, 5000.0), (0.7e9, 3.5e9, 100e9)),
    ("UMi", UMi, 10.0, (1.5, 13.5, 22.5), (10.0, 5000.0), (0.7e9, 3.5e9, 100e9)),
    ("RMa", RMa, 35.0, (1.5, 5.0, 10.0), (10.0, 10000.0), (0.7e9, 3.5e9, 30e9)),
    ("InH-Office", InHOffice, 3.0, (1.0, 2.0), (0.5, 150.0), (0.7e9, 3.5e9, 100e9)),
]
MAX_DIFF_DB: dict[str, float] = {}


@pytest.mark.reference
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_sionna(case):
    """Same distances/heights/carriers: |ours - Sionna| < 0.01 dB for LOS and NLOS."""
    name, cls, h_bs, h_uts, (d_lo, d_hi), carriers = case
    # Sionna does not clip d_2D; compare from the model minimum up (InH: d_3D >= 1 m holds).
    d = np.geomspace(d_lo, d_hi, 60).astype(np.float32)
    worst = 0.0
    for fc in carriers:
        for h_ut in h_uts:
            for los in (True, False):
                theirs = ref.basic_pathloss(name, fc, d, h_bs, h_ut, los)
                ours = np.asarray(pathloss_db(cls(), d, h_bs, h_ut, fc, los))
                worst = max(worst, float(np.max(np.abs(ours - theirs))))
    MAX_DIFF_DB[name] = worst
    print(f"max |pathloss - Sionna| {name}: {worst:.2e} dB")
    assert worst < 0.01


def test_uma_closed_form_and_breakpoint():
    """Spot values of the Table 7.4.1-1 UMa formulas, and continuity at d'_BP."""
    h_bs, h_ut, fc = 25.0, 1.5, 3.5e9
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc / C
    for d2 in (100.0, 0.999 * d_bp, 1.001 * d_bp, 2000.0):
        d3 = math.hypot(d2, h_bs - h_ut)
        pl1 = 28 + 22 * math.log10(d3) + 20 * math.log10(3.5)
        pl2 = (
            28
            + 40 * math.log10(d3)
            + 20 * math.log10(3.5)
            - 9 * math.log10(d_bp**2 + (h_bs - h_ut) ** 2)
        )
        want_los = pl1 if d2 < d_bp else pl2
        nlos_p = 13.54 + 39.08 * math.log10(d3) + 20 * math.log10(3.5) - 0.6 * (h_ut - 1.5)
        got_los = float(pathloss_los_db(UMa(), d2, h_bs, h_ut, fc))
        got_nlos = float(pathloss_nlos_db(UMa(), d2, h_bs, h_ut, fc))
        assert got_los == pytest.approx(want_los, abs=1e-3)
        assert got_nlos == pytest.approx(max(want_los, nlos_p), abs=1e-3)
    below = float(pathloss_los_db(UMa(), 0.9999 * d_bp, h_bs, h_ut, fc))
    above = float(pathloss_los_db(UMa(), 1.0001 * d_bp, h_bs, h_ut, fc))
    assert abs(above - below) < 0.01


def test_rma_defaults_are_parameters():
    """RMa's building height / street width default to 5 m / 20 m and change PL'_NLOS."""
    s = RMa()
    assert float(s.building_height_m) == 5.0 and float(s.street_width_m) == 20.0
    base = float(pathloss_nlos_db(s, 2000.0, 35.0, 1.5, 3.5e9))
    wide = float(pathloss_nlos_db(RMa(street_width_m=jnp.float32(40.0)), 2000.0, 35.0, 1.5, 3.5e9))
    assert base - wide == pytest.approx(7.1 * math.log10(2.0), abs=1e-3)


def test_distance_clipped_below_minimum():
    """d_2D < 10 m uses the 10 m value (documented), and has zero gradient."""
    for s in (UMa(), RMa()):
        f = jax.jit(
            jax.vmap(jax.value_and_grad(lambda d, s=s: pathloss_db(s, d, 25.0, 1.5, 3.5e9, 0.5)))
        )
        pl, g = f(jnp.array([0.0, 3.0, 10.0]))
        np.testing.assert_allclose(pl, pl[2], atol=1e-5)
        np.testing.assert_array_equal(g[:2], 0.0)
    inh = pathloss_los_db(InHOffice(), jnp.array([0.0, 0.5]), 1.5, 1.5, 3.5e9)
    np.testing.assert_allclose(inh, 32.4 + 20 * math.log10(3.5), atol=1e-4)


def test_soft_los_interpolates():
    s, args = UMi(), (150.0, 10.0, 1.5, 3.5e9)
    los, nlos = pathloss_los_db(s, *args), pathloss_nlos_db(s, *args)
    np.testing.assert_allclose(pathloss_db(s, *args, 0.25), 0.25 * los + 0.75 * nlos, rtol=1e-6)


def test_pathloss_offset_is_added():
    s = UMa(pathloss_offset_db=jnp.float32(3.0))
    np.testing.assert_allclose(
        pathloss_db(s, 200.0, 25.0, 1.5, 3.5e9, True)
        - pathloss_db(UMa(), 200.0, 25.0, 1.5, 3.5e9, True),
        3.0,
        atol=1e-4,
    )


def test_uma_random_environment_height():
    """Note 1: P(h_E = 1) = 1/(1 + C); other values from {12, 15, ..., h_UT - 1.5}."""
    n, d, h_ut = 20000, 300.0, 22.5
    h_e = np.asarray(sample_uma_environment_height_m(jax.random.key(3), jnp.full(n, d), h_ut))
    c = 1.25 * (d / 100) ** 3 * math.exp(-d / 150) * ((h_ut - 13) / 10) ** 1.5
    p1 = 1 / (1 + c)
    assert abs(np.mean(h_e == 1.0) - p1) < 4 * math.sqrt(p1 * (1 - p1) / n)
    assert set(np.unique(h_e)) <= {1.0, 12.0, 15.0, 18.0, 21.0}
    # Below 13 m, h_E = 1 always: the keyed pathloss equals the deterministic one (Sionna's case).
    d_all = jnp.geomspace(10.0, 3000.0, 50)
    np.testing.assert_allclose(
        pathloss_los_db(UMa(), d_all, 25.0, 1.5, 3.5e9, key=jax.random.key(0)),
        pathloss_los_db(UMa(), d_all, 25.0, 1.5, 3.5e9),
        atol=1e-5,
    )


@pytest.mark.reference
def test_uma_random_environment_height_matches_sionna():
    """h_UT = 22.5 m: the keyed UMa LOS pathloss takes the same values with the same
    frequencies as Sionna's (which always draws h_E), within 4 binomial standard errors."""
    n, d, h_bs, h_ut, fc = 20000, 300.0, 25.0, 22.5, 3.5e9
    theirs = np.round(ref.uma_los_pathloss_draws(fc, d, h_bs, h_ut, n), 2)
    ours = np.asarray(pathloss_los_db(UMa(), jnp.full(n, d), h_bs, h_ut, fc, key=jax.random.key(9)))
    ours = np.round(ours, 2)
    levels = np.union1d(np.unique(theirs), np.unique(ours))
    assert len(levels) <= 5 * 2  # h_E in {1, 12, 15, 18, 21} (float32 rounding may split one)
    for v in levels:
        pa, pb = np.mean(np.abs(ours - v) < 0.011), np.mean(np.abs(theirs - v) < 0.011)
        p = 0.5 * (pa + pb)
        assert abs(pa - pb) <= 4 * math.sqrt(2 * p * (1 - p) / n) + 1e-9, (v, pa, pb)


@pytest.mark.parametrize("cls", [UMa, UMi, RMa, InHOffice])
def test_shapes_jit_vmap(cls):
    s = cls()
    d = jnp.linspace(20.0, 140.0, 12).reshape(3, 4)
    h_bs = jnp.array([25.0, 20.0, 30.0, 35.0]) if cls is not InHOffice else 3.0
    los = d < 60.0
    out = pathloss_db(s, d, h_bs, 1.5, 3.5e9, los)
    chex.assert_shape(out, (3, 4))
    chex.assert_type(out, jnp.float32)
    chex.assert_tree_all_finite(out)
    jitted = jax.jit(pathloss_db)(s, d, h_bs, 1.5, 3.5e9, los)
    np.testing.assert_allclose(jitted, out, rtol=1e-6)
    rows = jax.vmap(lambda di, li: pathloss_db(s, di, h_bs, 1.5, 3.5e9, li))(d, los)
    np.testing.assert_allclose(rows, out, rtol=1e-6)


@pytest.mark.parametrize("cls", [UMa, UMi, RMa, InHOffice])
def test_grads_distance_frequency(cls):
    """check_grads (rev, order 1, float64) w.r.t. distance and carrier (GHz-scaled), LOS+NLOS."""
    h_bs = 3.0 if cls is InHOffice else 25.0
    los = np.array([True, True, True, False, False, False])
    with jax.enable_x64(True):
        s = cls()
        d0 = (
            np.array([30.0, 120.0, 900.0] * 2)
            if cls is not InHOffice
            else np.array([5.0, 40.0, 90.0] * 2)
        )
        check_grads(lambda d: pathloss_db(s, d, h_bs, 1.5, 3.5e9, los), (d0,), order=1,
                    modes=("rev",), eps=1e-3)  # fmt: skip
        check_grads(lambda f: pathloss_db(s, d0, h_bs, 1.5, f * 1e9, los), (np.array(3.5),),
                    order=1, modes=("rev",), eps=1e-4)  # fmt: skip


def test_grad_wrt_scenario_leaves():
    """Gradients flow to the scenario's parameters; offset has gradient 1."""
    g = jax.grad(lambda s: pathloss_db(s, 250.0, 25.0, 1.5, 3.5e9, 0.4))(UMa())
    assert float(g.pathloss_offset_db) == pytest.approx(1.0)
    chex.assert_tree_all_finite(g)
    with jax.enable_x64(True):
        check_grads(
            lambda h: pathloss_nlos_db(RMa(building_height_m=h), 2000.0, 35.0, 1.5, 3.5e9),
            (np.array(5.0),), order=1, modes=("rev",), eps=1e-4,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(distance_2d_m=-1.0), "distance_2d_m"),
        (dict(distance_2d_m=np.nan), "distance_2d_m"),
        (dict(carrier_hz=0.3e9), "carrier_hz"),
        (dict(carrier_hz=120e9), "carrier_hz"),
        (dict(h_ut_m=0.0), "h_ut_m"),
        (dict(h_bs_m=-5.0), "h_bs_m"),
        (dict(distance_2d_m=np.ones(3), h_ut_m=np.ones(4)), "distance_2d_m .*h_ut_m"),
        (dict(los=2.0), "los"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = dict(distance_2d_m=100.0, h_bs_m=25.0, h_ut_m=1.5, carrier_hz=3.5e9, los=True)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pathloss_db(UMa(), **args)


def test_bad_input_rma_frequency_and_scenario():
    with pytest.raises(ValueError, match="carrier_hz.*RMa"):
        pathloss_los_db(RMa(), 100.0, 35.0, 1.5, 40e9)
    with pytest.raises(ValueError, match="scenario"):
        pathloss_los_db("UMa", 100.0, 35.0, 1.5, 3.5e9)


def test_bad_input_under_jit_raises():
    """Checks survive jit (eqx.error_if) and name the parameter."""
    f = jax.jit(lambda d, fc: pathloss_db(UMa(), d, 25.0, 1.5, fc, True))
    with pytest.raises(Exception, match="distance_2d_m"):
        jax.block_until_ready(f(jnp.array([-1.0, 10.0]), 3.5e9))
    with pytest.raises(Exception, match="carrier_hz"):
        jax.block_until_ready(f(jnp.array([20.0, 10.0]), 200e9))
