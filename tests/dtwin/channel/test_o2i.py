"""O2I penetration loss (TR 38.901 clause 7.4.3.1) against Sionna 2.2 and Table 7.4.3-1/-2."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin.channel import o2i_building_loss_db, o2i_legacy_loss_db, o2i_loss_db
from tests.dtwin.channel import _sionna_ref as ref


@pytest.mark.reference
@pytest.mark.parametrize("high", [False, True])
def test_deterministic_part_matches_sionna(high):
    """PL_tw + 0.5 d_2D-in equals Sionna's (random term removed) to 0.01 dB, 6-100 GHz."""
    d_in = np.linspace(0.0, 25.0, 11).astype(np.float32)
    worst = 0.0
    for fc in (6e9, 28e9, 100e9):
        theirs = ref.o2i_deterministic_loss(fc, d_in, high)
        ours = np.asarray(o2i_building_loss_db(fc, high) + 0.5 * d_in)
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
    print(f"max |O2I - Sionna| high={high}: {worst:.2e} dB")
    assert worst < 0.01


def test_table_values():
    """Table 7.4.3-1 material losses combined per Table 7.4.3-2 at 3.5 GHz (hand computed)."""
    f = 3.5
    glass, irr, concrete = 2 + 0.2 * f, 23 + 0.3 * f, 5 + 4 * f
    low = 5 - 10 * math.log10(0.3 * 10 ** (-glass / 10) + 0.7 * 10 ** (-concrete / 10))
    high = 5 - 10 * math.log10(0.7 * 10 ** (-irr / 10) + 0.3 * 10 ** (-concrete / 10))
    got = o2i_building_loss_db(3.5e9, jnp.array([False, True]))
    np.testing.assert_allclose(got, [low, high], atol=1e-3)
    np.testing.assert_allclose(o2i_legacy_loss_db(jnp.array([0.0, 10.0])), [20.0, 25.0])


@pytest.mark.parametrize(("high", "sigma"), [(False, 4.4), (True, 6.5)])
def test_random_term_statistics(high, sigma):
    """Mean PL_tw + 0.5 d_in and std sigma_P within 4 standard errors (N = 20000)."""
    n, d_in = 20000, 8.0
    x = np.asarray(o2i_loss_db(jax.random.key(11), 3.5e9, jnp.full(n, d_in), high))
    mean = float(o2i_building_loss_db(3.5e9, high)) + 0.5 * d_in
    assert abs(x.mean() - mean) < 4 * sigma / math.sqrt(n)
    assert abs(x.std() - sigma) < 4 * sigma / math.sqrt(2 * n)


def test_shapes_jit_vmap_grad():
    keys = jax.random.split(jax.random.key(0), 4)
    d_in = jnp.linspace(0.0, 20.0, 6)
    high = jnp.array([True, False] * 3)
    batched = jax.jit(jax.vmap(lambda k: o2i_loss_db(k, 3.5e9, d_in, high)))(keys)
    chex.assert_shape(batched, (4, 6))
    chex.assert_type(batched, jnp.float32)
    assert not np.allclose(batched[0], batched[1])
    val, g = jax.value_and_grad(lambda d: o2i_loss_db(keys[0], 3.5e9, d, high).sum())(d_in)
    assert float(val) == pytest.approx(float(batched[0].sum()), rel=1e-5)
    np.testing.assert_allclose(g, 0.5, rtol=1e-6)  # d PL / d d_2D-in = 0.5 dB/m
    with jax.enable_x64(True):
        check_grads(lambda f: o2i_building_loss_db(f * 1e9, np.array([0.0, 1.0])), (np.array(3.5),),
                    order=1, modes=("rev",), eps=1e-4)  # fmt: skip


def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="distance_2d_in_m"):
        o2i_loss_db(key, 3.5e9, -1.0, False)
    with pytest.raises(ValueError, match="carrier_hz"):
        o2i_loss_db(key, 200e9, 1.0, False)
    with pytest.raises(ValueError, match="high_loss"):
        o2i_building_loss_db(3.5e9, 3.0)
    with pytest.raises(ValueError, match="distance_2d_in_m .*high_loss"):
        o2i_loss_db(key, 3.5e9, np.ones(3), np.ones(2, bool))
