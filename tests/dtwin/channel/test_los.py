"""LOS probability (TR 38.901 Table 7.4.2-1) against Sionna 2.2 and closed-form values."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin.channel import InHOffice, RMa, UMa, UMi, los_probability
from tests.dtwin.channel import _sionna_ref as ref

CASES = [
    ("UMa", UMa, 25.0, (1.5, 10.0, 14.0, 17.0, 22.5), 5000.0),
    ("UMi", UMi, 10.0, (1.5, 22.5), 5000.0),
    ("RMa", RMa, 35.0, (1.5,), 10000.0),
    ("InH-Office", InHOffice, 3.0, (1.0,), 150.0),
]


@pytest.mark.reference
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_sionna(case):
    """|ours - Sionna| < 1e-4 (Sionna's UMa value is capped at 1 as we do)."""
    name, cls, h_bs, h_uts, d_max = case
    d = np.concatenate([np.linspace(0.1, 30.0, 40), np.geomspace(30.0, d_max, 60)]).astype(
        np.float32
    )
    worst = 0.0
    for h_ut in h_uts:
        theirs = np.minimum(ref.los_probability(name, 3.5e9, d, h_bs, h_ut), 1.0)
        ours = np.asarray(los_probability(cls(), d, h_ut))
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
    print(f"max |P_LOS - Sionna| {name}: {worst:.2e}")
    assert worst < 1e-4


def test_closed_form_values():
    """Table 7.4.2-1 at hand-picked points."""
    assert float(los_probability(UMi(), 18.0, 1.5)) == pytest.approx(1.0)
    d = 100.0
    assert float(los_probability(UMi(), d, 1.5)) == pytest.approx(
        18 / d + math.exp(-d / 36) * (1 - 18 / d), rel=1e-5
    )
    assert float(los_probability(RMa(), 1010.0, 1.5)) == pytest.approx(math.exp(-1.0), rel=1e-5)
    c = ((20.0 - 13) / 10) ** 1.5
    want = (18 / 200 + math.exp(-200 / 63) * (1 - 18 / 200)) * (
        1 + c * 1.25 * 2.0**3 * math.exp(-200 / 150)
    )
    assert float(los_probability(UMa(), 200.0, 20.0)) == pytest.approx(want, rel=1e-5)
    assert float(los_probability(InHOffice(), 6.5, 1.0)) == pytest.approx(0.32, rel=1e-5)
    assert float(los_probability(InHOffice(), 3.0, 1.0)) == pytest.approx(
        math.exp(-1.8 / 4.7), rel=1e-5
    )
    open_office = InHOffice(office="open")
    assert float(los_probability(open_office, 60.0, 1.0)) == pytest.approx(
        0.54 * math.exp(-11 / 211.7), rel=1e-5
    )


@pytest.mark.parametrize("cls", [UMa, UMi, RMa, InHOffice])
def test_shapes_jit_vmap_grad(cls):
    s = cls()
    d = jnp.linspace(0.0, 300.0, 8).reshape(2, 4)
    h = jnp.array([1.5, 22.5])[:, None]
    p = los_probability(s, d, h)
    chex.assert_shape(p, (2, 4))
    chex.assert_type(p, jnp.float32)
    np.testing.assert_allclose(jax.jit(los_probability)(s, d, h), p, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda di, hi: los_probability(s, di, hi))(d, h[:, 0]), p,
                               rtol=1e-6)  # fmt: skip
    g = jax.vmap(jax.grad(lambda di: los_probability(s, di, 1.5)))(jnp.array([0.0, 5.0, 150.0]))
    chex.assert_tree_all_finite(g)
    with jax.enable_x64(True):
        d0 = np.array([40.0, 120.0]) if cls is not InHOffice else np.array([3.0, 20.0])
        check_grads(lambda x: los_probability(cls(), x, 17.0), (d0,), order=1, modes=("rev",),
                    eps=1e-3)  # fmt: skip


def test_bad_input():
    with pytest.raises(ValueError, match="distance_2d_out_m"):
        los_probability(UMa(), -1.0, 1.5)
    with pytest.raises(ValueError, match="h_ut_m"):
        los_probability(UMa(), 10.0, -1.5)
    with pytest.raises(ValueError, match="distance_2d_out_m .*h_ut_m"):
        los_probability(UMa(), np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="office"):
        InHOffice(office="closed")
    with pytest.raises(Exception, match="distance_2d_out_m"):
        jax.block_until_ready(jax.jit(lambda d: los_probability(UMi(), d, 1.5))(jnp.array(-3.0)))
