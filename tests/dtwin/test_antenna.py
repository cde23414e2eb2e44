"""Tests of dtwin.antenna against TR 38.901 Table 7.3-1 and an independent numpy array factor."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from dtwin.antenna import array_gain_dbi, element_gain_dbi, rotate_downtilt_deg


def _np_element(theta, phi):
    """Table 7.3-1 written out independently in numpy."""
    a_v = -np.minimum(12 * ((theta - 90) / 65) ** 2, 30)
    a_h = -np.minimum(12 * (phi / 65) ** 2, 30)
    return -np.minimum(-(a_v + a_h), 30) + 8


def _np_array_gain(theta, tilt, m=10, d=0.5):
    """Explicit complex sum of weighted element phases (no closed form shared with the code)."""
    k = np.arange(m)
    a = np.exp(1j * 2 * np.pi * d * k[None] * np.cos(np.radians(theta))[:, None])
    w = np.exp(-1j * 2 * np.pi * d * k * np.cos(np.radians(90 + tilt))) / np.sqrt(m)
    return _np_element(theta, 0.0) + 10 * np.log10(np.abs(a @ w) ** 2)


@pytest.mark.parametrize(
    "theta,phi,want",
    [
        (90.0, 0.0, 8.0),  # boresight G_max
        (90.0, 32.5, 5.0),  # -3 dB at half the HPBW in azimuth
        (90.0, -32.5, 5.0),
        (122.5, 0.0, 5.0),  # -3 dB at half the HPBW in zenith
        (90.0, 180.0, -22.0),  # front-back A_max
        (180.0, 0.0, 8.0 - 12.0 * (90.0 / 65.0) ** 2),  # nadir, below the SLA_V floor
        (90.0, 120.0, -22.0),  # azimuth clipped at A_max
        (90.0, 65.0, -4.0),
    ],
)
def test_element_pattern_table_7_3_1(theta, phi, want):
    got = element_gain_dbi(theta, phi)
    np.testing.assert_allclose(float(got), want, atol=1e-4)
    np.testing.assert_allclose(float(got), _np_element(theta, phi), atol=1e-4)


def test_array_peak_and_hpbw_against_numpy():
    theta = np.linspace(60.0, 150.0, 18001)
    got = np.asarray(array_gain_dbi(theta, 0.0, 12.0))
    ref = _np_array_gain(theta, 12.0)
    main = ref > ref.max() - 20  # compare away from the nulls
    np.testing.assert_allclose(got[main], ref[main], atol=1e-3)
    i = np.argmax(got)
    assert abs(got[i] - (10 * np.log10(10) + 8)) < 0.5
    assert abs(theta[i] - 102.0) < 1.0
    beam = theta[got >= got[i] - 3.0]
    hpbw = beam.max() - beam.min()
    ref_beam = theta[ref >= ref.max() - 3.0]
    assert abs(hpbw - (ref_beam.max() - ref_beam.min())) < 0.05
    assert 9.0 < hpbw < 11.5  # 0.886 λ/(M d) rad ≈ 10.2°


@settings(max_examples=15, deadline=None)
@given(st.floats(min_value=0.0, max_value=20.0))
def test_gain_peaks_near_the_tilt(tilt):
    theta = np.linspace(85.0, 125.0, 4001)
    g = np.asarray(array_gain_dbi(theta, 0.0, tilt))
    peak = theta[np.argmax(g)]
    # the element pattern pulls the peak slightly towards the horizon (< 0.5°)
    assert abs(peak - (90.0 + tilt)) < 0.6
    # peak ≈ G_max + 10 log10 M minus the element's vertical attenuation at the tilt
    assert g.max() > 18.0 - 12.0 * (tilt / 65.0) ** 2 - 0.1


def test_mechanical_tilt_rotates_pattern():
    theta = np.linspace(80.0, 130.0, 5001)
    g0 = np.asarray(array_gain_dbi(theta, 0.0, 0.0, mech_tilt_deg=10.0))
    # a pure mechanical tilt of 10° moves the whole beam (and element peak) to zenith 100°
    assert abs(theta[np.argmax(g0)] - 100.0) < 0.05
    np.testing.assert_allclose(g0.max(), 18.0, atol=1e-3)
    th, ph = rotate_downtilt_deg(100.0, 0.0, 10.0)
    np.testing.assert_allclose([float(th), float(ph)], [90.0, 0.0], atol=1e-3)
    th, ph = rotate_downtilt_deg(90.0, 90.0, 0.0)
    np.testing.assert_allclose([float(th), float(ph)], [90.0, 90.0], atol=1e-3)


@pytest.mark.slow
def test_grad_wrt_tilt():
    theta = jnp.array([95.0, 100.0, 104.0, 110.0])
    phi = jnp.array([0.0, 20.0, -40.0, 10.0])
    check_grads(
        lambda t: array_gain_dbi(theta, phi, t),
        (12.0,),
        order=1,
        modes=["fwd", "rev"],
        atol=5e-2,
        rtol=5e-2,
        eps=1e-2,
    )
    check_grads(
        lambda t: array_gain_dbi(theta, phi, 6.0, mech_tilt_deg=t),
        (3.0,),
        order=1,
        modes=["rev"],
        atol=5e-2,
        rtol=5e-2,
        eps=1e-2,
    )


def test_jit_vmap_shapes():
    f = jax.jit(jax.vmap(array_gain_dbi, in_axes=(0, 0, None)))
    out = f(jnp.full((5, 7), 100.0), jnp.zeros((5, 7)), 12.0)
    chex.assert_shape(out, (5, 7))
    chex.assert_type(out, jnp.float32)
    chex.assert_tree_all_finite(out)
    out = array_gain_dbi(jnp.full((3, 4), 100.0), jnp.zeros((3, 4)), jnp.arange(4.0))
    chex.assert_shape(out, (3, 4))


def test_bad_input():
    with pytest.raises(ValueError, match="n_elements"):
        array_gain_dbi(90.0, 0.0, 10.0, n_elements=0)
    with pytest.raises(ValueError, match="spacing_wl"):
        array_gain_dbi(90.0, 0.0, 10.0, spacing_wl=-0.5)
