"""Virtual soundings and site fits (dtwin.rt.sounding / dtwin.rt.fit) against the closed-form
two-ray model."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.rt import RTScene, SolverConfig
from dtwin.rt.fit import fit_pathloss, fit_site_channel, to_scenario
from dtwin.rt.sounding import circular_angle_spread_deg, grid_positions_m, k_factor_db, sound

F_HZ = 3.5e9
H_TX, H_RX = 25.0, 1.5


def two_ray(distance_2d_m, h_tx_m, h_rx_m, carrier_hz, eps_r, sigma_s_m):
    """Closed-form two-ray model (LOS + ground reflection, V-pol isotropic antennas, half-space
    ground): TM Fresnel coefficient of ITU-R P.2040 eq. (37b),
    eta = eps_r - j sigma / (omega eps0)."""
    c, eps0 = 299_792_458.0, 8.8541878128e-12
    lam = c / carrier_hz
    d1 = np.hypot(distance_2d_m, h_tx_m - h_rx_m)
    d2 = np.hypot(distance_2d_m, h_tx_m + h_rx_m)
    cos_t = (h_tx_m + h_rx_m) / d2
    eta = eps_r - 1j * sigma_s_m / (2 * np.pi * carrier_hz * eps0)
    root = np.sqrt(eta - (1 - cos_t**2))
    r_tm = (eta * cos_t - root) / (eta * cos_t + root)
    p1 = (lam / (4 * np.pi * d1)) ** 2
    p2 = np.abs(r_tm) ** 2 * (lam / (4 * np.pi * d2)) ** 2
    za1 = np.degrees(np.arccos((h_tx_m - h_rx_m) / d1))
    za2 = np.degrees(np.arccos(-(h_tx_m + h_rx_m) / d2))
    zd1 = np.degrees(np.arccos((h_rx_m - h_tx_m) / d1))
    zd2 = za2
    return p1, p2, d1 / c, d2 / c, za1, za2, zd1, zd2


def two_point_spread(p1, p2, x1, x2):
    return np.abs(x1 - x2) * np.sqrt(p1 * p2) / (p1 + p2)


@pytest.fixture(scope="module")
def flat():
    return RTScene.flat_ground(
        carrier_hz=F_HZ, config=SolverConfig(max_depth=1, samples_per_src=2_000, max_num_paths=4)
    )


def test_sounding_matches_two_ray_closed_form(flat):
    d = np.geomspace(15.0, 400.0, 10)
    phi = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    tx = np.array([[0.0, 0.0, H_TX]], np.float32)
    rx = np.stack([d * np.cos(phi), d * np.sin(phi), np.full(10, H_RX)], -1).astype(np.float32)
    mat = flat.default_material_params()["ground"]
    paths, lsps = sound({}, tx, rx, scene=flat)
    chex.assert_shape(lsps.gain_db, (10, 1))
    p1, p2, t1, t2, za1, za2, zd1, zd2 = two_ray(
        d, H_TX, H_RX, F_HZ, float(mat["relative_permittivity"]), float(mat["conductivity"])
    )
    np.testing.assert_allclose(np.asarray(lsps.gain_db[:, 0]), 10 * np.log10(p1 + p2), atol=0.02)
    np.testing.assert_allclose(np.asarray(lsps.k_db[:, 0]), 10 * np.log10(p1 / p2), atol=0.05)
    np.testing.assert_allclose(
        np.asarray(lsps.ds_s[:, 0]), two_point_spread(p1, p2, t1, t2), rtol=0.01
    )
    np.testing.assert_allclose(
        np.asarray(lsps.zsa_deg[:, 0]), two_point_spread(p1, p2, za1, za2), rtol=0.01
    )
    np.testing.assert_allclose(
        np.asarray(lsps.zsd_deg[:, 0]), two_point_spread(p1, p2, zd1, zd2), rtol=0.01
    )
    np.testing.assert_allclose(np.asarray(lsps.asa_deg), 0.0, atol=0.05)  # both paths in one plane
    assert bool(jnp.all(lsps.los))

    # Site fit: pathloss intercept/slope equal the least-squares fit of the closed form.
    fit = fit_site_channel(lsps, tx, rx, F_HZ)
    pl_ref = -10 * np.log10(p1 + p2)
    d3 = np.hypot(d, H_TX - H_RX)
    b_ref, a_ref = np.polyfit(np.log10(d3), pl_ref, 1)
    sf_ref = np.sqrt(np.sum((pl_ref - a_ref - b_ref * np.log10(d3)) ** 2) / (len(d) - 2))
    np.testing.assert_allclose(float(fit.los.pathloss_a_db), a_ref, atol=0.1)
    np.testing.assert_allclose(float(fit.los.pathloss_b_db), b_ref, atol=0.05)
    np.testing.assert_allclose(float(fit.los.sf_std_db), sf_ref, atol=0.05)
    lg_ds = np.log10(two_point_spread(p1, p2, t1, t2))
    np.testing.assert_allclose(float(fit.los.lgds_mean), lg_ds.mean(), atol=0.01)
    np.testing.assert_allclose(float(fit.los.lgds_std), lg_ds.std(ddof=1), atol=0.01)
    assert np.isnan(float(fit.nlos.pathloss_a_db))  # no NLOS link on a flat ground
    assert float(fit.los.num_links) == 10


def test_to_scenario_replaces_lsps_and_offset(flat):
    from dtwin.channel import UMi, pathloss_db

    tx = np.array([[0.0, 0.0, 10.0]], np.float32)
    rx = np.asarray(grid_positions_m((-200.0, 200.0), (-200.0, 200.0), 100.0, H_RX))
    _, lsps = sound({}, tx, rx, scene=flat)
    fit = fit_site_channel(lsps, tx, rx, F_HZ)
    base = UMi()
    sc = to_scenario(fit, base)
    assert type(sc) is type(base)
    np.testing.assert_allclose(float(sc.los_lsp.lgds_mean[0]), float(fit.los.lgds_mean), rtol=1e-6)
    assert float(sc.los_lsp.lgds_mean[1]) == 0.0
    # NLOS was not sounded: table values kept
    np.testing.assert_array_equal(
        np.asarray(sc.nlos_lsp.lgds_mean), np.asarray(base.nlos_lsp.lgds_mean)
    )
    # the new offset makes the scenario's LOS pathloss unbiased on the sounded links
    m = np.asarray(fit.distance_2d_m >= base.min_distance_m) & np.isfinite(
        np.asarray(fit.pathloss_db)
    )
    pl = pathloss_db(
        sc, jnp.maximum(fit.distance_2d_m, base.min_distance_m), fit.h_bs_m, fit.h_ut_m, F_HZ, 1.0
    )
    np.testing.assert_allclose(
        float(np.mean((np.asarray(fit.pathloss_db) - np.asarray(pl))[m])), 0.0, atol=1e-3
    )
    # ... and the site-specific scenario feeds the network model: on LOS links the coupling gain
    # moves by exactly the fitted pathloss offset relative to the table scenario.
    from dtwin.geometry import drop_ues, hex_topology
    from dtwin.network import Network, UEPopulation, coupling_gain_db, draw_channel

    topo = hex_topology(1, 200.0, 10.0, wrap=False)
    pop = UEPopulation.with_demand(drop_ues(jax.random.PRNGKey(0), topo, 3, 10.0), 5.0)
    tilt = jnp.full(3, 6.0)
    net_site, net_base = Network(topo, sc, carrier_hz=F_HZ), Network(topo, base, carrier_hz=F_HZ)
    ch = draw_channel(jax.random.PRNGKey(1), net_base, pop)
    diff = coupling_gain_db(net_site, pop, ch, tilt) - coupling_gain_db(net_base, pop, ch, tilt)
    offset = float(sc.pathloss_offset_db - base.pathloss_offset_db)
    los = np.asarray(ch.los)
    if los.any():
        np.testing.assert_allclose(np.asarray(diff)[los], -offset, atol=1e-3)
    assert np.all(np.isfinite(np.asarray(diff)))


def test_spread_and_pathloss_helpers():
    # circular spread handles wrap-around: paths at +179 and -179 deg are 2 deg apart
    p = jnp.array([[1.0, 1.0]])
    v = jnp.array([[True, True]])
    np.testing.assert_allclose(
        float(circular_angle_spread_deg(p, jnp.array([[179.0, -179.0]]), v)[0]), 1.0, atol=1e-3
    )
    np.testing.assert_allclose(
        float(circular_angle_spread_deg(p, jnp.array([[10.0, 30.0]]), v)[0]), 10.0, atol=1e-3
    )
    assert bool(jnp.isnan(k_factor_db(p, jnp.array([[False, False]]), v)[0]))
    g = jax.grad(lambda q: circular_angle_spread_deg(q, jnp.array([[10.0, 30.0]]), v)[0])(
        jnp.array([[1.0, 3.0]])
    )
    assert bool(jnp.all(jnp.isfinite(g)))
    x = jnp.array([10.0, 100.0, 1000.0, 50.0])
    a, b, sf = jax.jit(fit_pathloss)(
        30.0 + 35.0 * jnp.log10(x), x, jnp.array([True, True, True, False])
    )
    np.testing.assert_allclose([float(a), float(b), float(sf)], [30.0, 35.0, 0.0], atol=1e-3)
    with pytest.raises(ValueError, match="spacing_m"):
        grid_positions_m((0, 1), (0, 1), 0.0, 1.5)
