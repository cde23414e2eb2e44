"""Tests of dtwin.geometry against closed-form hexagon geometry and TR 38.901 Table 7.8-1."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.geometry import UEs, drop_ues, hex_topology, link_geometry

ISD = 200.0


def _closed_form_sites(n_rings: int, isd: float) -> np.ndarray:
    """All lattice points i·a1 + j·a2 with hex distance <= n_rings (a1=(1,0), a2=(1/2, √3/2))."""
    pts = []
    for i in range(-n_rings, n_rings + 1):
        for j in range(-n_rings, n_rings + 1):
            if max(abs(i), abs(j), abs(i + j)) <= n_rings:
                pts.append([isd * (i + 0.5 * j), isd * math.sqrt(3) / 2 * j])
    return np.array(pts)


@pytest.mark.parametrize("n_sites,n_rings", [(1, 0), (7, 1), (19, 2)])
def test_site_positions_match_hex_lattice(n_sites, n_rings):
    topo = hex_topology(n_sites, ISD, 10.0)
    got = np.asarray(topo.site_xy_m)
    want = _closed_form_sites(n_rings, ISD)
    chex.assert_shape(topo.site_xy_m, (n_sites, 2))
    chex.assert_shape(topo.cell_azimuth_deg, (3 * n_sites,))
    assert got.shape == want.shape
    # same point set (order-free): every expected site has a match within 1 mm
    dmin = np.min(np.linalg.norm(got[:, None] - want[None], axis=-1), axis=0)
    np.testing.assert_array_less(dmin, 1e-3)
    np.testing.assert_allclose(got[0], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(topo.cell_azimuth_deg[:3]), [30.0, 150.0, 270.0])
    np.testing.assert_array_equal(np.asarray(topo.cell_site), np.repeat(np.arange(n_sites), 3))


@pytest.mark.parametrize("n_sites", [7, 19])
def test_wrap_offsets_tile_the_lattice(n_sites):
    """Every wrap image of every site lies on the site lattice, and no two coincide."""
    topo = hex_topology(n_sites, ISD, 10.0)
    images = np.asarray(topo.site_xy_m)[:, None] + np.asarray(topo.wrap_offsets_m)[None]
    images = images.reshape(-1, 2) / ISD
    j = images[:, 1] / (math.sqrt(3) / 2)
    i = images[:, 0] - 0.5 * j
    np.testing.assert_allclose(i, np.round(i), atol=1e-4)
    np.testing.assert_allclose(j, np.round(j), atol=1e-4)
    assert len({(round(a), round(b)) for a, b in zip(i, j, strict=True)}) == images.shape[0]
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(topo.wrap_offsets_m[1:]), axis=-1),
        ISD * math.sqrt(n_sites),
        rtol=1e-5,
    )


@pytest.mark.parametrize("n_sites", [7, 19])
def test_wrap_distances_bounded(n_sites):
    topo_w = hex_topology(n_sites, ISD, 10.0, wrap=True)
    topo_n = hex_topology(n_sites, ISD, 10.0, wrap=False)
    ues = drop_ues(jax.random.PRNGKey(1), topo_w, 5, 10.0)
    dw = np.asarray(link_geometry(topo_w, ues).distance_2d_m)
    dn = np.asarray(link_geometry(topo_n, ues).distance_2d_m)
    assert np.all(dw <= dn + 1e-3)
    # the farthest point of a cluster's Voronoi cell is |shift|/√3 = ISD·sqrt(N/3) from its centre
    assert dw.max() <= ISD * math.sqrt(n_sites / 3.0) + 1e-3
    assert dn.max() > dw.max()  # wrap actually changes something


def test_drop_min_distance_and_sector_membership():
    topo = hex_topology(19, ISD, 10.0)
    upc = 20
    ues = drop_ues(jax.random.PRNGKey(0), topo, upc, 10.0)
    geom = link_geometry(topo, ues)
    n = topo.n_cells * upc
    home = np.repeat(np.arange(topo.n_cells), upc)
    d_home = np.asarray(geom.distance_2d_m)[np.arange(n), home]
    az_home = np.asarray(geom.azimuth_deg)[np.arange(n), home]
    assert d_home.min() >= 10.0 - 1e-4
    assert np.abs(az_home).max() <= 60.0 + 1e-3
    # inside the site hexagon: circumradius ISD/√3 and the inner radius ISD/2 along edge normals
    rel = np.asarray(ues.xy_m) - np.asarray(topo.cell_xy_m)[home]
    assert np.linalg.norm(rel, axis=-1).max() <= ISD / math.sqrt(3) + 1e-3
    normals = np.stack(
        [[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in range(0, 360, 60)]
    )
    assert (rel @ normals.T).max() <= ISD / 2 + 1e-3
    # the UE's home site is its nearest site (wrap-around on)
    d_site = np.asarray(geom.distance_2d_m)[:, ::3]
    assert np.mean(np.argmin(d_site, axis=1) == home // 3) > 0.999


def test_drop_is_uniform_over_sector_area():
    """Radial CDF of a uniform rhombus: P(r <= R/2) = area fraction = (π/3·(R/2)²)/(√3/2·R²)."""
    topo = hex_topology(1, ISD, 10.0)
    ues = drop_ues(jax.random.PRNGKey(3), topo, 4000, 0.0)
    r = np.linalg.norm(np.asarray(ues.xy_m), axis=-1)
    radius = ISD / math.sqrt(3)
    p = (math.pi / 3 * (radius / 2) ** 2) / (math.sqrt(3) / 2 * radius**2)
    frac = np.mean(r <= radius / 2)
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / r.size)


@pytest.mark.parametrize("n_sectors,min_d", [(3, 35.0), (3, 120.0), (1, 120.0)])
def test_drop_with_min_distance_matches_closed_form(n_sectors, min_d):
    """Exact sector-minus-disc distribution: radial CDF, angle to the hexagon-edge normal, and
    the two-sample KS distance to a rejection-sampled reference."""
    isd = 500.0
    h, radius = isd / 2, isd / math.sqrt(3)
    topo = hex_topology(1, isd, 25.0, n_sectors=n_sectors, wrap=False)
    upc = 30000 // n_sectors
    ues = drop_ues(jax.random.PRNGKey(11), topo, upc, min_d)
    rel = np.asarray(ues.xy_m, np.float64)
    r = np.linalg.norm(rel, axis=-1)
    assert r.min() >= min_d - 1e-3
    n = r.size
    # P(r <= rho) for min_d <= rho <= h: (rho² - min_d²) / (rhombus/hexagon area - disc) per wedge
    wedge = 2 * math.pi / n_sectors
    area = (6 // n_sectors) * (math.sqrt(3) / 4 * radius**2) - wedge / 2 * min_d**2
    for rho in (min_d + 10.0, 0.5 * (min_d + h), h):
        p = wedge / 2 * (rho**2 - min_d**2) / area
        assert abs(np.mean(r <= rho) - p) < 4.5 * math.sqrt(p * (1 - p) / n), rho
    # angle ψ to the nearest hexagon-edge normal (edge normals at 0°, 60°, ...):
    # P(|ψ| <= s) = (h² tan s - min_d² s) / (h² tan 30° - min_d² π/6)
    az = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
    psi = np.radians((az + 30.0) % 60.0 - 30.0)
    for s_deg in (10.0, 20.0):
        s = math.radians(s_deg)
        p = (h**2 * math.tan(s) - min_d**2 * s) / (
            h**2 * math.tan(math.pi / 6) - min_d**2 * math.pi / 6
        )
        assert abs(np.mean(np.abs(psi) <= s) - p) < 4.5 * math.sqrt(p * (1 - p) / n), s_deg
    # KS against rejection sampling in the same wedges
    rng = np.random.default_rng(0)
    box = rng.uniform(-radius, radius, (8 * n, 2))
    ok = (np.linalg.norm(box, axis=-1) >= min_d) & (
        np.max(
            np.abs(
                box
                @ np.array(
                    [
                        [math.cos(math.radians(a)), math.sin(math.radians(a))]
                        for a in range(0, 360, 60)
                    ]
                ).T
            ),
            axis=-1,
        )
        <= h
    )
    if n_sectors == 3:  # the first sector's wedge: azimuth in [-30°, 90°]
        ang = np.degrees(np.arctan2(box[:, 1], box[:, 0]))
        ok &= (ang >= -30.0) & (ang <= 90.0)
        r = r[:upc]
    ref = np.linalg.norm(box[ok], axis=-1)
    grid = np.linspace(min_d, radius, 200)
    ks = np.max(
        np.abs(
            np.searchsorted(np.sort(r), grid) / r.size
            - np.searchsorted(np.sort(ref), grid) / ref.size
        )
    )
    assert ks < 1.63 * math.sqrt(1 / r.size + 1 / ref.size)  # 1 % level


def test_indoor_ratio_heights_and_indoor_distance():
    topo = hex_topology(19, 500.0, 25.0)
    ues = drop_ues(jax.random.PRNGKey(2), topo, 20, 35.0, indoor_ratio=0.8, high_loss_ratio=0.5)
    n = ues.n_ues
    indoor = np.asarray(ues.indoor)
    p = indoor.mean()
    assert abs(p - 0.8) < 4 * math.sqrt(0.8 * 0.2 / n)
    hl = np.asarray(ues.high_loss)
    assert not np.any(hl & ~indoor)
    assert abs(hl[indoor].mean() - 0.5) < 4 * math.sqrt(0.25 / indoor.sum())
    h = np.asarray(ues.h_m)
    np.testing.assert_allclose(h[~indoor], 1.5)
    floors = (h[indoor] - 1.5) / 3.0 + 1.0  # n_fl from h = 3(n_fl-1)+1.5
    np.testing.assert_allclose(floors, np.round(floors), atol=1e-4)
    assert floors.min() >= 1 and floors.max() <= 8
    # P(n_fl = 1) = E[1/N_fl] with N_fl ~ U{4..8}
    p1 = np.mean([1 / k for k in range(4, 9)])
    assert abs(np.mean(np.round(floors) == 1) - p1) < 4 * math.sqrt(p1 * (1 - p1) / floors.size)
    d_in = np.asarray(ues.d2d_in_m)
    np.testing.assert_allclose(d_in[~indoor], 0.0)
    # min of two U(0,25): mean 25/3; single draw (TR 36.873): mean 12.5
    assert abs(d_in[indoor].mean() - 25 / 3) < 0.6
    ues_1 = drop_ues(jax.random.PRNGKey(2), topo, 20, 35.0, indoor_distance="36873")
    assert abs(np.asarray(ues_1.d2d_in_m)[np.asarray(ues_1.indoor)].mean() - 12.5) < 0.8


def test_link_geometry_angles_closed_form():
    topo = hex_topology(1, ISD, 10.0, wrap=False)
    xy = jnp.array([[50.0 * math.cos(math.radians(40)), 50.0 * math.sin(math.radians(40))]])
    ues = UEs(
        xy_m=xy,
        h_m=jnp.array([1.5]),
        indoor=jnp.array([False]),
        d2d_in_m=jnp.zeros(1),
        high_loss=jnp.array([False]),
    )
    g = link_geometry(topo, ues)
    chex.assert_shape(g.distance_2d_m, (1, 3))
    chex.assert_type(g.zenith_deg, jnp.float32)
    np.testing.assert_allclose(np.asarray(g.distance_2d_m), 50.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g.distance_3d_m), math.hypot(50.0, 8.5), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g.azimuth_deg[0]), [10.0, -110.0, 130.0], atol=1e-3)
    np.testing.assert_allclose(
        np.asarray(g.zenith_deg), 90 + math.degrees(math.atan2(8.5, 50.0)), atol=1e-3
    )


def test_drop_jit_vmap_and_determinism():
    topo = hex_topology(7, ISD, 10.0)
    f = jax.jit(jax.vmap(lambda k: drop_ues(k, topo, 3, 10.0)))
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    out = f(keys)
    chex.assert_shape(out.xy_m, (4, 63, 2))
    chex.assert_type(out.xy_m, jnp.float32)
    again = drop_ues(keys[2], topo, 3, 10.0)
    np.testing.assert_allclose(np.asarray(out.xy_m[2]), np.asarray(again.xy_m), atol=1e-4)
    g = jax.jit(link_geometry)(topo, again)
    chex.assert_shape(g.zenith_deg, (63, 21))


def test_link_geometry_grad_wrt_positions():
    topo = hex_topology(7, ISD, 10.0)
    ues = drop_ues(jax.random.PRNGKey(0), topo, 1, 10.0)
    xy0 = ues.xy_m[:2]
    few = eqx_replace(jax.tree_util.tree_map(lambda a: a[:2], ues), xy0)

    def f(xy):
        return link_geometry(topo, eqx_replace(few, xy)).distance_3d_m[:, :6]

    from jax.test_util import check_grads

    check_grads(f, (xy0,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=0.5)
    # closed form: d d3D / d xy = (xy - site) / d3D for the home site (no wrap image change)
    g = jax.grad(lambda xy: f(xy)[0, 0])(xy0)
    geom = link_geometry(topo, few)
    want = (np.asarray(xy0[0]) - np.asarray(topo.site_xy_m[0])) / float(geom.distance_3d_m[0, 0])
    np.testing.assert_allclose(np.asarray(g[0]), want, atol=1e-4)


def eqx_replace(ues, xy):
    import equinox as eqx

    return eqx.tree_at(lambda u: u.xy_m, ues, xy)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_sites=5), "n_sites"),
        (dict(n_sectors=2), "n_sectors"),
        (dict(isd_m=-1.0), "isd_m"),
    ],
)
def test_hex_topology_bad_input(kwargs, match):
    args = dict(n_sites=19, isd_m=200.0, bs_height_m=10.0) | kwargs
    with pytest.raises(ValueError, match=match):
        hex_topology(**args)


def test_drop_bad_input():
    topo = hex_topology(1, ISD, 10.0)
    with pytest.raises(ValueError, match="ues_per_cell"):
        drop_ues(jax.random.PRNGKey(0), topo, 0, 10.0)
    with pytest.raises(ValueError, match="indoor_ratio"):
        drop_ues(jax.random.PRNGKey(0), topo, 2, 10.0, indoor_ratio=1.5)
    with pytest.raises(ValueError, match="indoor_distance"):
        drop_ues(jax.random.PRNGKey(0), topo, 2, 10.0, indoor_distance="foo")
