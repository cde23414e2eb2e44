"""Hexagonal multi-cell layouts, UE drops and link geometry (TR 38.901 Table 7.8-1).

Conventions
-----------
* Positions are metres in a local east (x) / north (y) frame; heights above ground.
* Angles are degrees; azimuths are counter-clockwise from the x axis, as in TR 38.901.
* Sites lie on a hexagonal lattice whose nearest neighbours are at azimuths 0°, 60°, ..., so
  each site's Voronoi hexagon has its corners at 30° + k·60°. With boresights 30°/150°/270° a
  sector therefore points at a corner and its area (the 120° wedge of the hexagon) is a rhombus
  made of two equilateral triangles of side ``isd_m / sqrt(3)``.
* Wrap-around (TR 36.814 A.2.1.1, used by the TR 38.901 calibrations): the cluster of 1, 7 or
  19 sites tiles the plane on a super-lattice; each UE→site vector is taken as the shortest among
  the site's images in the cluster and its six mirrored copies.
"""

from __future__ import annotations

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from . import _trig

__all__ = [
    "Topology",
    "UEs",
    "LinkGeometry",
    "hex_topology",
    "drop_ues",
    "link_geometry",
]

# Super-lattice generator (i, j), in units of the site lattice basis a1 = isd·(1, 0),
# a2 = isd·(1/2, √3/2), of the cluster of N = i² + ij + j² sites (N = 1, 7, 19).
_CLUSTER_GENERATOR: dict[int, tuple[int, int]] = {1: (1, 0), 7: (2, 1), 19: (3, 2)}
_SECTOR_BORESIGHTS_DEG: dict[int, tuple[float, ...]] = {1: (30.0,), 3: (30.0, 150.0, 270.0)}


class Topology(eqx.Module):
    """Site and cell layout of a hexagonal multi-cell network.

    Attributes:
        site_xy_m: site positions, ``[sites, 2]`` (m).
        cell_site: index of each cell's site, ``int32[cells]``.
        cell_azimuth_deg: sector boresight, counter-clockwise from the x axis, ``[cells]`` (deg).
        bs_height_m: antenna height of each cell, ``[cells]`` (m).
        isd_m: inter-site distance (m), scalar array.
        wrap_offsets_m: translations of the cluster images used by wrap-around, ``[images, 2]``
            (m); the first row is the zero vector (the cluster itself).
        wrap: whether :func:`link_geometry` applies wrap-around (static).
    """

    site_xy_m: Float[Array, "sites 2"]
    cell_site: Int[Array, " cells"]
    cell_azimuth_deg: Float[Array, " cells"]
    bs_height_m: Float[Array, " cells"]
    isd_m: Float[Array, ""]
    wrap_offsets_m: Float[Array, "images 2"]
    wrap: bool = eqx.field(static=True, default=True)

    @property
    def n_sites(self) -> int:
        return self.site_xy_m.shape[0]

    @property
    def n_cells(self) -> int:
        return self.cell_site.shape[0]

    @property
    def n_sectors(self) -> int:
        return self.n_cells // self.n_sites

    @property
    def cell_xy_m(self) -> Float[Array, "cells 2"]:
        """Position of each cell's site, ``[cells, 2]`` (m)."""
        return self.site_xy_m[self.cell_site]


class UEs(eqx.Module):
    """A drop of user equipments (TR 38.901 Table 7.8-1).

    UEs produced by :func:`drop_ues` are ordered cell-major: UE ``u`` was dropped in cell
    ``u // ues_per_cell``.

    Attributes:
        xy_m: UE positions, ``[ues, 2]`` (m).
        h_m: UE antenna heights, ``[ues]`` (m).
        indoor: indoor state, ``bool[ues]``.
        d2d_in_m: indoor 2D distance d_2D-in (0 for outdoor UEs), ``[ues]`` (m).
        high_loss: indoor UE uses the high-loss O2I model (False outdoors), ``bool[ues]``.
    """

    xy_m: Float[Array, "ues 2"]
    h_m: Float[Array, " ues"]
    indoor: Bool[Array, " ues"]
    d2d_in_m: Float[Array, " ues"]
    high_loss: Bool[Array, " ues"]

    @property
    def n_ues(self) -> int:
        return self.xy_m.shape[0]


class LinkGeometry(eqx.Module):
    """Geometry of every UE→cell link, ``[ues, cells]`` arrays.

    Attributes:
        distance_2d_m: horizontal distance (m), wrap-around applied when enabled.
        distance_3d_m: 3D distance (m).
        azimuth_deg: azimuth of the UE seen from the cell, relative to the cell's boresight,
            in (-180, 180] (deg).
        zenith_deg: zenith angle of the UE seen from the BS antenna, global frame
            (90 = horizon, > 90 below the horizon) (deg).
    """

    distance_2d_m: Float[Array, "ues cells"]
    distance_3d_m: Float[Array, "ues cells"]
    azimuth_deg: Float[Array, "ues cells"]
    zenith_deg: Float[Array, "ues cells"]


def _spiral_site_positions(n_rings: int) -> np.ndarray:
    """Unit-ISD site positions: the centre, then ring by ring counter-clockwise from (r, 0)."""
    dirs = np.array(
        [[math.cos(math.radians(60 * k)), math.sin(math.radians(60 * k))] for k in range(6)]
    )
    positions = [np.zeros(2)]
    for ring in range(1, n_rings + 1):
        point = ring * dirs[0]
        for side in range(6):
            for _ in range(ring):
                positions.append(point.copy())
                point = point + dirs[(side + 2) % 6]
    return np.stack(positions)


def _wrap_offsets(n_sites: int) -> np.ndarray:
    """Unit-ISD translations of the cluster and its six mirrored copies, ``[7, 2]``."""
    i, j = _CLUSTER_GENERATOR[n_sites]
    shift = np.array([i + 0.5 * j, 0.5 * math.sqrt(3.0) * j])
    rots = [
        np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        for a in np.radians(np.arange(0, 360, 60))
    ]
    return np.concatenate([np.zeros((1, 2)), np.stack([r @ shift for r in rots])])


def hex_topology(
    n_sites: int = 19,
    isd_m: float = 500.0,
    bs_height_m: float = 25.0,
    n_sectors: int = 3,
    wrap: bool = True,
) -> Topology:
    """Hexagonal layout of 1, 7 or 19 sites with 1 or 3 sectors each (TR 38.901 Table 7.8-1).

    Sites are numbered from the centre outwards, ring by ring; cells are site-major with
    boresights 30°/150°/270° (a single sector gets 30°, its area being the whole hexagon).

    Args:
        n_sites: 1, 7 or 19 (0, 1 or 2 rings).
        isd_m: inter-site distance (m).
        bs_height_m: BS antenna height (m), the same for every cell.
        n_sectors: sectors per site, 1 or 3.
        wrap: apply wrap-around in :func:`link_geometry`.

    Returns:
        The :class:`Topology` (float32).
    """
    if n_sites not in _CLUSTER_GENERATOR:
        raise ValueError(f"hex_topology: n_sites must be 1, 7 or 19, got {n_sites!r}")
    if n_sectors not in _SECTOR_BORESIGHTS_DEG:
        raise ValueError(f"hex_topology: n_sectors must be 1 or 3, got {n_sectors!r}")
    if not (isd_m > 0.0):
        raise ValueError(f"hex_topology: isd_m must be positive, got {isd_m!r}")
    if not (bs_height_m > 0.0):
        raise ValueError(f"hex_topology: bs_height_m must be positive, got {bs_height_m!r}")
    n_rings = {1: 0, 7: 1, 19: 2}[n_sites]
    site_xy = _spiral_site_positions(n_rings) * isd_m
    boresights = np.array(_SECTOR_BORESIGHTS_DEG[n_sectors])
    offsets = _wrap_offsets(n_sites) * isd_m if wrap else np.zeros((1, 2))
    return Topology(
        site_xy_m=jnp.asarray(site_xy, jnp.float32),
        cell_site=jnp.repeat(jnp.arange(n_sites, dtype=jnp.int32), n_sectors),
        cell_azimuth_deg=jnp.asarray(np.tile(boresights, n_sites), jnp.float32),
        bs_height_m=jnp.full((n_sites * n_sectors,), bs_height_m, jnp.float32),
        isd_m=jnp.asarray(isd_m, jnp.float32),
        wrap_offsets_m=jnp.asarray(offsets, jnp.float32),
        wrap=wrap,
    )


_NEWTON_STEPS = 4
_MAX_EXCLUSION_RATIO = 0.9  # largest (r_min / h)² for which 4 Newton steps reach float32 accuracy


def _sector_points(
    u: Float[Array, "n 3"],
    site_xy_m: Float[Array, "n 2"],
    boresight_deg: Float[Array, " n"],
    inner_radius_m: Float[Array, ""],
    min_distance_m: Float[Array, " n"],
    n_triangles: int,
) -> Float[Array, "n 2"]:
    """Map U(0,1)³ draws to uniform points of a sector minus the disc of radius ``min_distance_m``.

    The sector is a fan of ``n_triangles`` equilateral triangles with apex at the site and far
    edge at the inner radius ``h = isd / 2``; all have the same area outside the disc, so
    ``u[:, 0]`` picks one uniformly. Inside a triangle, in polar coordinates ``(r, ψ)`` around
    the far edge's normal (``|ψ| ≤ π/6``), the region is ``r_min ≤ r ≤ h / cos ψ``: the
    marginal density of ψ is proportional to ``h² / cos² ψ − r_min²``, with CDF
    ``∝ h² tan ψ − r_min² ψ`` inverted at ``u[:, 1]`` by Newton's method (started from the
    ``r_min = 0`` solution ``arctan``; exact to float32 rounding after 4 steps), and ``r²`` is
    uniform on ``[r_min², h² / cos² ψ]`` (``u[:, 2]``). An exact direct sampler: one point per
    three uniforms, no rejection. Requires ``r_min < h``; ``(r_min / h)²`` is clipped to 0.9.
    """
    tri = jnp.minimum(jnp.floor(u[:, 0] * n_triangles), n_triangles - 1)
    normal_deg = boresight_deg - 30.0 * n_triangles + 60.0 * tri + 30.0
    h2 = jnp.square(inner_radius_m)
    a = jnp.minimum(jnp.square(min_distance_m) / h2, _MAX_EXCLUSION_RATIO)
    half = math.pi / 6.0
    c = (2.0 * u[:, 1] - 1.0) * (math.tan(half) - a * half)  # target of tan ψ − a ψ
    psi = jnp.arctan(c + a * jnp.arctan(c))
    for _ in range(_NEWTON_STEPS):
        t = jnp.tan(psi)
        psi = jnp.clip(psi - (t - a * psi - c) / (1.0 + t * t - a), -half, half)
    t = jnp.tan(psi)
    r = jnp.sqrt(h2 * (a + u[:, 2] * (1.0 + t * t - a)))
    ang = jnp.radians(normal_deg) + psi
    return site_xy_m + r[:, None] * jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)


def drop_ues(
    key: PRNGKeyArray,
    topology: Topology,
    ues_per_cell: int,
    min_distance_2d_m: float | Float[Array, ""],
    indoor_ratio: float | Float[Array, ""] = 0.8,
    high_loss_ratio: float | Float[Array, ""] = 0.5,
    *,
    outdoor_height_m: float = 1.5,
    floors: tuple[int, int] | None = (4, 8),
    max_d2d_in_m: float = 25.0,
    indoor_distance: Literal["38901", "36873"] = "38901",
    min_distance_on_outdoor: bool = False,
) -> UEs:
    """Drop ``ues_per_cell`` UEs uniformly in every cell's sector area (TR 38.901 Table 7.8-1).

    * Position: uniform over the cell's 120° wedge of its site's hexagon, at a 2D distance of at
      least ``min_distance_2d_m`` from the site (an exact direct sampler, no rejection: three
      uniforms per UE, see :func:`_sector_points`).
    * Indoor with probability ``indoor_ratio``; indoor UEs use the high-loss O2I model with
      probability ``high_loss_ratio`` (Table 7.8-1: 50 % low / 50 % high loss).
    * Height: outdoor ``outdoor_height_m``; indoor ``3(n_fl − 1) + 1.5`` m with
      ``N_fl ~ U{floors[0]..floors[1]}`` and ``n_fl ~ U{1..N_fl}`` (TR 36.873 Table 6-1, as used
      by TR 38.901 Table 7.8-1 for UMa/UMi); ``floors=None`` keeps indoor UEs at 1.5 m (RMa).
    * Indoor distance d_2D-in: ``"38901"`` → min of two U(0, max_d2d_in_m) draws (TR 38.901
      Table 7.4.3-2 note); ``"36873"`` → a single U(0, max_d2d_in_m) draw (TR 36.873 / the
      2016 calibration era). Outdoor UEs get 0.
    * ``min_distance_on_outdoor``: apply the minimum to the outdoor part d_2D − d_2D-in instead
      of the full 2D distance.

    Args:
        key: PRNG key.
        topology: the layout from :func:`hex_topology`.
        ues_per_cell: UEs per cell (static).
        min_distance_2d_m: minimum UE–site 2D distance (m); must be below the sector's inner
            radius ``isd_m / 2`` (with ``min_distance_on_outdoor`` this holds for the sum with
            d_2D-in; larger values are clipped to ``√0.9 · isd_m / 2 ≈ 0.95 isd_m / 2``).

    Returns:
        :class:`UEs` with ``topology.n_cells * ues_per_cell`` UEs, cell-major.
    """
    if not isinstance(ues_per_cell, int) or ues_per_cell <= 0:
        raise ValueError(f"drop_ues: ues_per_cell must be a positive int, got {ues_per_cell!r}")
    if indoor_distance not in ("38901", "36873"):
        raise ValueError(
            f"drop_ues: indoor_distance must be '38901' or '36873', got {indoor_distance!r}"
        )
    for name, val in (("indoor_ratio", indoor_ratio), ("high_loss_ratio", high_loss_ratio)):
        if isinstance(val, (int, float)) and not 0.0 <= val <= 1.0:
            raise ValueError(f"drop_ues: {name} must lie in [0, 1], got {val!r}")
    if isinstance(min_distance_2d_m, (int, float)) and not min_distance_2d_m >= 0.0:
        raise ValueError(f"drop_ues: min_distance_2d_m must be >= 0, got {min_distance_2d_m!r}")
    if floors is not None and not (1 <= floors[0] <= floors[1]):
        raise ValueError(
            f"drop_ues: floors must be (low, high) with 1 <= low <= high, got {floors!r}"
        )

    return _drop_ues(
        key,
        topology,
        ues_per_cell,
        min_distance_2d_m,
        indoor_ratio,
        high_loss_ratio,
        outdoor_height_m,
        floors,
        max_d2d_in_m,
        indoor_distance,
        min_distance_on_outdoor,
    )


@eqx.filter_jit
def _drop_ues(
    key,
    topology,
    ues_per_cell,
    min_distance_2d_m,
    indoor_ratio,
    high_loss_ratio,
    outdoor_height_m,
    floors,
    max_d2d_in_m,
    indoor_distance,
    min_distance_on_outdoor,
) -> UEs:
    n_cells = topology.n_cells
    n = n_cells * ues_per_cell
    n_triangles = 6 // topology.n_sectors
    # One uniform draw per UE for every random quantity (a single PRNG call keeps compile time
    # low): indoor, high loss, two indoor distances, two floor draws, three for the position.
    u = jax.random.uniform(key, (n, 9))
    indoor = u[:, 0] < indoor_ratio
    high_loss = (u[:, 1] < high_loss_ratio) & indoor
    d1 = u[:, 2] * max_d2d_in_m
    d_in = jnp.minimum(d1, u[:, 3] * max_d2d_in_m) if indoor_distance == "38901" else d1
    d_in = jnp.where(indoor, d_in, 0.0)

    if floors is not None:
        n_fl_total = floors[0] + jnp.minimum(
            jnp.floor(u[:, 4] * (floors[1] - floors[0] + 1)), floors[1] - floors[0]
        )
        n_fl = jnp.minimum(jnp.floor(u[:, 5] * n_fl_total), n_fl_total - 1.0) + 1.0
        h_m = jnp.where(indoor, 3.0 * (n_fl - 1.0) + 1.5, outdoor_height_m)
    else:
        h_m = jnp.full((n,), outdoor_height_m)

    home_cell = jnp.repeat(jnp.arange(n_cells), ues_per_cell)
    site_xy = topology.cell_xy_m[home_cell]
    boresight = topology.cell_azimuth_deg[home_cell]
    threshold = min_distance_2d_m + (d_in if min_distance_on_outdoor else 0.0)
    threshold = jnp.broadcast_to(jnp.asarray(threshold, jnp.float32), (n,))
    xy = _sector_points(u[:, 6:], site_xy, boresight, topology.isd_m / 2.0, threshold, n_triangles)

    return UEs(
        xy_m=xy.astype(jnp.float32),
        h_m=h_m.astype(jnp.float32),
        indoor=indoor,
        d2d_in_m=d_in.astype(jnp.float32),
        high_loss=high_loss,
    )


def _site_vectors_m(
    topology: Topology, ues: UEs
) -> tuple[Float[Array, "ues sites"], Float[Array, "ues sites"]]:
    """x and y of the vector from each site to each UE, the shortest among the wrap-around images.

    Ties go to the first image (the cluster itself). Unrolled over the (at most 7) images with
    element-wise selects: no ``[ues, sites, images]`` array, no gather.
    """
    x = ues.xy_m[:, 0, None] - topology.site_xy_m[None, :, 0]
    y = ues.xy_m[:, 1, None] - topology.site_xy_m[None, :, 1]
    if not topology.wrap:
        return x, y
    off = topology.wrap_offsets_m
    bx, by = x - off[0, 0], y - off[0, 1]
    best = jnp.square(bx) + jnp.square(by)
    for i in range(1, off.shape[0]):
        cx, cy = x - off[i, 0], y - off[i, 1]
        d2 = jnp.square(cx) + jnp.square(cy)
        closer = d2 < best
        bx, by, best = jnp.where(closer, cx, bx), jnp.where(closer, cy, by), jnp.minimum(d2, best)
    return bx, by


@eqx.filter_jit
def link_geometry(topology: Topology, ues: UEs) -> LinkGeometry:
    """Distances and angles of every UE→cell link (TR 38.901 clause 7.4, Figure 7.4.1-1).

    ``zenith_deg = 90° + atan2(h_BS − h_UT, d_2D)`` (global frame, 90° = horizon); azimuth is
    measured counter-clockwise from the cell boresight and wrapped to (-180°, 180°]. The
    horizontal vector (wrap-around, distance, azimuth) is computed once per UE–site pair and
    shared by the site's sectors.
    """
    vx, vy = _site_vectors_m(topology, ues)  # [ues, sites]
    d2d_site = jnp.sqrt(jnp.square(vx) + jnp.square(vy))
    az_site = _trig.atan2_deg(vy, vx)
    d2d = d2d_site[:, topology.cell_site]
    az_rel = _trig.wrap_angle_deg(
        az_site[:, topology.cell_site] - topology.cell_azimuth_deg[None, :]
    )
    dh = topology.bs_height_m[None, :] - ues.h_m[:, None]
    d3d = jnp.sqrt(jnp.square(d2d) + jnp.square(dh))
    # atan2(dh, d2d) with d2d >= 0 is arctan(dh / d2d), ±90° at d2d = 0
    has_d = d2d > 0.0
    elev = jnp.degrees(_trig.arctan(dh / jnp.where(has_d, d2d, 1.0)))
    zen = 90.0 + jnp.where(has_d, elev, 90.0 * jnp.sign(dh))
    return LinkGeometry(distance_2d_m=d2d, distance_3d_m=d3d, azimuth_deg=az_rel, zenith_deg=zen)
