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


def _sector_points(
    u: Float[Array, "n candidates 3"],
    site_xy_m: Float[Array, "n 2"],
    boresight_deg: Float[Array, " n"],
    radius_m: Float[Array, ""],
    n_triangles: int,
) -> Float[Array, "n candidates 2"]:
    """Map U(0,1)³ draws to uniform points in each sector's part of its site hexagon: a fan of
    ``n_triangles`` equal triangles from the site to consecutive hexagon corners (triangle picked
    by ``u[..., 0]``, point by the barycentric coordinates ``u[..., 1:]``, reflected if > 1)."""
    tri = jnp.minimum(jnp.floor(u[..., 0] * n_triangles), n_triangles - 1)
    first_deg = boresight_deg[:, None] - 30.0 * n_triangles
    a1 = jnp.radians(first_deg + 60.0 * tri)
    a2 = a1 + jnp.radians(60.0)
    v1 = radius_m * jnp.stack([jnp.cos(a1), jnp.sin(a1)], -1)
    v2 = radius_m * jnp.stack([jnp.cos(a2), jnp.sin(a2)], -1)
    uv = u[..., 1:]
    flip = jnp.sum(uv, -1, keepdims=True) > 1.0
    uv = jnp.where(flip, 1.0 - uv, uv)
    return site_xy_m[:, None, :] + uv[..., :1] * v1 + uv[..., 1:] * v2


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
    n_candidates: int = 16,
) -> UEs:
    """Drop ``ues_per_cell`` UEs uniformly in every cell's sector area (TR 38.901 Table 7.8-1).

    * Position: uniform over the cell's 120° wedge of its site's hexagon, at a 2D distance of at
      least ``min_distance_2d_m`` from the site (rejection among ``n_candidates`` uniform
      candidates; in the ~1e-20 event that all fail, the first is pushed out radially).
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
            radius ``isd_m / 2``.

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
        n_candidates,
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
    n_candidates,
) -> UEs:
    n_cells = topology.n_cells
    n = n_cells * ues_per_cell
    n_triangles = 6 // topology.n_sectors
    radius_m = topology.isd_m / math.sqrt(3.0)
    # One uniform draw per UE for every random quantity (a single PRNG call keeps compile time low).
    u = jax.random.uniform(key, (n, 6 + 3 * n_candidates))
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
    u_pos = u[:, 6:].reshape(n, n_candidates, 3)
    cand = _sector_points(u_pos, site_xy, boresight, radius_m, n_triangles)
    rel = cand - site_xy[:, None, :]
    dist = jnp.linalg.norm(rel, axis=-1)
    threshold = min_distance_2d_m + (d_in if min_distance_on_outdoor else 0.0)
    threshold = jnp.broadcast_to(threshold, (n,))
    ok = dist >= threshold[:, None]
    first_ok = jnp.argmax(ok, axis=-1)
    pick_rel = jnp.take_along_axis(rel, first_ok[:, None, None], axis=1)[:, 0]
    pick_dist = jnp.take_along_axis(dist, first_ok[:, None], axis=1)[:, 0]
    any_ok = jnp.any(ok, axis=-1)
    scale = jnp.where(any_ok, 1.0, threshold / jnp.maximum(pick_dist, 1e-6))
    xy = site_xy + pick_rel * scale[:, None]

    return UEs(
        xy_m=xy.astype(jnp.float32),
        h_m=h_m.astype(jnp.float32),
        indoor=indoor,
        d2d_in_m=d_in.astype(jnp.float32),
        high_loss=high_loss,
    )


def _wrap_angle_deg(angle_deg: Array) -> Array:
    """Map an angle to (-180, 180]."""
    return 180.0 - jnp.mod(180.0 - angle_deg, 360.0)


def _site_vectors_m(topology: Topology, ues: UEs) -> Float[Array, "ues sites 2"]:
    """Vector from each site to each UE, the shortest among the wrap-around images."""
    rel = (
        ues.xy_m[:, None, None, :]
        - topology.site_xy_m[None, :, None, :]
        - topology.wrap_offsets_m[None, None]
    )
    if not topology.wrap:
        return rel[:, :, 0]
    d2 = jnp.sum(jnp.square(rel), axis=-1)  # [ues, sites, images]
    best = jnp.argmin(d2, axis=-1)
    return jnp.take_along_axis(rel, best[..., None, None], axis=2)[:, :, 0]


@eqx.filter_jit
def link_geometry(topology: Topology, ues: UEs) -> LinkGeometry:
    """Distances and angles of every UE→cell link (TR 38.901 clause 7.4, Figure 7.4.1-1).

    ``zenith_deg = 90° + atan2(h_BS − h_UT, d_2D)`` (global frame, 90° = horizon); azimuth is
    measured counter-clockwise from the cell boresight and wrapped to (-180°, 180°].
    """
    vec = _site_vectors_m(topology, ues)[:, topology.cell_site]  # [ues, cells, 2]
    d2d = jnp.sqrt(jnp.sum(jnp.square(vec), axis=-1))
    dh = topology.bs_height_m[None, :] - ues.h_m[:, None]
    d3d = jnp.sqrt(jnp.square(d2d) + jnp.square(dh))
    az = jnp.degrees(jnp.arctan2(vec[..., 1], vec[..., 0]))
    az_rel = _wrap_angle_deg(az - topology.cell_azimuth_deg[None, :])
    zen = 90.0 + jnp.degrees(jnp.arctan2(dh, d2d))
    return LinkGeometry(distance_2d_m=d2d, distance_3d_m=d3d, azimuth_deg=az_rel, zenith_deg=zen)
