"""Tests of dtwin.links: noise, geometry SINR, coupling-loss structure and gradients."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dtwin.channel import UMa, UMi
from dtwin.geometry import drop_ues, hex_topology, link_geometry
from dtwin.links import (
    coupling_loss_db,
    geometry_sinr_db,
    phase1_config,
    serving_cell,
    thermal_noise_dbm,
)


def _np_gain(theta, phi, tilt, m=10, d=0.5):
    """Independent numpy Table 7.3-1 element + explicit weighted element sum."""
    a_v = -np.minimum(12 * ((theta - 90) / 65) ** 2, 30)
    a_h = -np.minimum(12 * (phi / 65) ** 2, 30)
    el = -np.minimum(-(a_v + a_h), 30) + 8
    k = np.arange(m)
    a = np.exp(1j * 2 * np.pi * d * k * np.cos(np.radians(theta))[..., None])
    w = np.exp(
        -1j * 2 * np.pi * d * k * np.cos(np.radians(90 + np.asarray(tilt, float)))[..., None]
    ) / np.sqrt(m)
    return el + 10 * np.log10(np.abs(np.sum(a * w, axis=-1)) ** 2)


@pytest.mark.parametrize(
    "bw,nf,want", [(20e6, 9.0, -174 + 73.0103 + 9), (100e6, 9.0, -174 + 80 + 9), (1.0, 0.0, -174.0)]
)
def test_thermal_noise(bw, nf, want):
    np.testing.assert_allclose(float(thermal_noise_dbm(bw, nf)), want, atol=1e-3)


def test_geometry_sinr_against_numpy():
    rng = np.random.default_rng(0)
    cl = rng.uniform(70, 160, size=(3, 40, 21)).astype(np.float32)
    p_tx = rng.uniform(40, 49, size=21).astype(np.float32)
    noise = -92.0
    got = np.asarray(jax.jit(geometry_sinr_db)(cl, p_tx, noise))
    chex.assert_shape(got, (3, 40))
    rx_mw = 10 ** ((p_tx - cl.astype(np.float64)) / 10)
    s = np.argmin(cl, axis=-1)
    sig = np.take_along_axis(rx_mw, s[..., None], -1)[..., 0]
    want = 10 * np.log10(sig / (rx_mw.sum(-1) - sig + 10 ** (noise / 10)))
    np.testing.assert_allclose(got, want, atol=2e-3)
    np.testing.assert_array_equal(np.asarray(serving_cell(cl)), s)
    # single cell, no interference: SINR = P - CL - N
    one = geometry_sinr_db(jnp.array([[100.0]]), 40.0, -90.0)
    np.testing.assert_allclose(float(one[0]), 30.0, atol=1e-4)


def test_geometry_sinr_grad_finite_differences():
    cl = jnp.array([[100.0, 110.0, 115.0], [120.0, 105.0, 130.0]])
    check_grads(
        lambda c: geometry_sinr_db(c, 46.0, -95.0),
        (cl,),
        order=1,
        modes=["rev"],
        atol=1e-2,
        rtol=1e-2,
        eps=0.05,
    )


@pytest.fixture(scope="module")
def small_setup():
    topo = hex_topology(7, 200.0, 10.0)
    ues = drop_ues(jax.random.PRNGKey(0), topo, 3, 10.0)
    return topo, ues


@pytest.mark.slow
def test_coupling_loss_shape_and_tilt_enters_as_antenna_gain(small_setup):
    topo, ues = small_setup
    key = jax.random.PRNGKey(7)
    cl12 = coupling_loss_db(key, UMa(), topo, ues, 6e9, 12.0)
    chex.assert_shape(cl12, (63, 21))
    chex.assert_type(cl12, jnp.float32)
    chex.assert_tree_all_finite(cl12)
    tilts = jnp.linspace(2.0, 14.0, 21)
    cl_t = coupling_loss_db(key, UMa(), topo, ues, 6e9, tilts)
    g = link_geometry(topo, ues)
    theta, phi = np.asarray(g.zenith_deg, np.float64), np.asarray(g.azimuth_deg, np.float64)
    g12, g_t = _np_gain(theta, phi, 12.0), _np_gain(theta, phi, np.asarray(tilts)[None, :])
    away_from_nulls = (g12 > -10.0) & (
        g_t > -10.0
    )  # float32 array factor is imprecise in deep nulls
    assert away_from_nulls.mean() > 0.2
    np.testing.assert_allclose(
        np.asarray(cl_t - cl12)[away_from_nulls], (g12 - g_t)[away_from_nulls], atol=2e-2
    )


def test_co_sited_sectors_share_los_and_shadowing(small_setup):
    """CL + G is the same for the three sectors of a site (same distance, LOS state and SF)."""
    topo, ues = small_setup
    g = link_geometry(topo, ues)
    cl = coupling_loss_db(jax.random.PRNGKey(3), UMa(), topo, ues, 6e9, 12.0)
    theta, phi = np.asarray(g.zenith_deg, np.float64), np.asarray(g.azimuth_deg, np.float64)
    no_gain = np.asarray(cl) + _np_gain(theta, phi, 12.0)
    per_site = no_gain.reshape(63, 7, 3)
    np.testing.assert_allclose(per_site - per_site[..., :1], 0.0, atol=0.05)
    # ... while different sites are drawn independently
    assert np.std(per_site[:, :, 0] - np.asarray(g.distance_2d_m)[:, ::3]) > 1.0


@pytest.mark.slow
def test_coupling_loss_grad_wrt_tilt(small_setup):
    topo, ues = small_setup
    key = jax.random.PRNGKey(1)

    def f(tilt):
        return coupling_loss_db(key, UMa(), topo, ues, 6e9, tilt)[:6, :6]

    check_grads(f, (jnp.full((21,), 10.0),), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=0.05)


def test_phase1_config_table_7_8_1():
    uma = phase1_config("UMa", 6e9)
    assert (
        uma.isd_m,
        uma.bs_height_m,
        uma.min_distance_2d_m,
        uma.tx_power_dbm,
        uma.bandwidth_hz,
    ) == (500.0, 25.0, 35.0, 49.0, 20e6)
    umi = phase1_config("UMi", 30e9)
    assert (
        umi.isd_m,
        umi.bs_height_m,
        umi.min_distance_2d_m,
        umi.tx_power_dbm,
        umi.bandwidth_hz,
    ) == (200.0, 10.0, 10.0, 35.0, 100e6)
    assert math.isclose(umi.indoor_ratio, 0.8) and umi.tilt_deg == 12.0 and umi.n_elements == 10


def test_bad_input(small_setup):
    topo, ues = small_setup
    with pytest.raises(ValueError, match="tilt_deg"):
        coupling_loss_db(jax.random.PRNGKey(0), UMi(), topo, ues, 6e9, jnp.zeros(5))
    with pytest.raises(ValueError, match="scenario_name"):
        phase1_config("UMx", 6e9)
