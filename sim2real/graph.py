"""The cell neighbour graph the surrogate passes messages over.

Each cell is linked to every co-site cell (first) and to ``k`` other cells: by default the ``k``
strongest at the centre of the cell's sector (``rank="coupling"``: its likely interferers and
handover targets), or the ``k`` nearest by site distance (``rank="distance"``). Coupling ranks by a
geometric coupling gain (dB): the TR 38.901 horizontal antenna pattern (Table 7.3-1,
``-min(12 (phi / 65 deg)^2, 30)``) of the other cell toward the sector centre, minus
``35 log10(d)`` for the distance ``d`` from its site (a typical urban pathloss slope). The sector
centre lies on the boresight at half the distance to the nearest other site. On a hexagonal
layout all first-ring sites are equidistant, so ``distance`` breaks an 18-way tie by cell index and
can drop the cells that face the sector; measured on Table 1's 7-site stand-in (surrogate trained
on a twin equal to the field), it left the broad-CM error at a log sd of 0.46, against 0.38 with
every cell linked and 0.34 with coupling as an edge feature. Edge features say where the neighbour
is as seen from the cell: site distance, the bearing of the neighbour's site relative to the
cell's boresight (for co-site neighbours, the neighbour's boresight relative to the cell's) and
the relative coupling, encoded as ``(distance_km, cos, sin, co_site, coupling)``. Built once per
topology in numpy; fixed shapes for ``jit``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

N_EDGE_FEATURES = 5
"""Edge features: distance (km), cos and sin of relative bearing, co-site flag, relative
coupling (`NeighbourGraph.edge_features`)."""

EDGE_COUPLING = 4
"""Index of the relative coupling (units of 10 dB) among the edge features."""


class NeighbourGraph(eqx.Module):
    """Fixed-degree neighbour lists.

    Attributes:
        index: ``[cells, k]`` neighbour cell positions (padded with the cell itself).
        mask: ``[cells, k]`` True for real neighbours, False for padding.
        distance_m: ``[cells, k]`` site-to-site distance (0 for co-site cells).
        bearing_deg: ``[cells, k]`` bearing relative to the cell's boresight, in (-180, 180].
        co_site: ``[cells, k]`` neighbour on the same site.
        coupling_db: ``[cells, k]`` the neighbour's geometric coupling at the cell's sector centre
            minus the cell's own (dB, `sector_coupling_db`): how strongly it interferes with
            (and competes for) the cell's UEs.
    """

    index: Int[Array, "cells k"]
    mask: Bool[Array, "cells k"]
    distance_m: Float[Array, "cells k"]
    bearing_deg: Float[Array, "cells k"]
    co_site: Bool[Array, "cells k"]
    coupling_db: Float[Array, "cells k"]

    def edge_features(self) -> Float[Array, "cells k 5"]:
        """``(distance_km, cos(bearing), sin(bearing), co_site, coupling)``, ``coupling`` the
        relative coupling in units of 10 dB clipped to [-6, 1]; zero on padding."""
        b = jnp.deg2rad(self.bearing_deg)
        f = jnp.stack(
            [
                self.distance_m / 1000.0,
                jnp.cos(b),
                jnp.sin(b),
                self.co_site.astype(jnp.float32),
                jnp.clip(self.coupling_db / 10.0, -6.0, 1.0),
            ],
            axis=-1,
        )
        return jnp.where(self.mask[..., None], f, 0.0).astype(jnp.float32)


def _wrap_deg(a: np.ndarray) -> np.ndarray:
    return -((-a + 180.0) % 360.0 - 180.0)


def neighbour_graph(
    x_m: np.ndarray,
    y_m: np.ndarray,
    azimuth_deg: np.ndarray,
    site_id: np.ndarray,
    k: int = 18,
    *,
    rank: str = "coupling",
) -> NeighbourGraph:
    """Build the neighbour graph of a topology.

    Args:
        x_m, y_m: ``[cells]`` site position of each cell (m).
        azimuth_deg: ``[cells]`` boresight, counter-clockwise from east (TR 38.901 convention).
        site_id: ``[cells]`` site of each cell.
        k: number of non-co-site neighbours per cell. The degree is ``max co-site cells + k``,
            padded where a cell has fewer candidates.
        rank: how the ``k`` are chosen: ``coupling`` (strongest geometric coupling at the
            sector centre, see the module docstring) or ``distance`` (nearest sites, ties by
            cell index).

    Returns:
        `NeighbourGraph` with float32 arrays.
    """
    x = np.asarray(x_m, np.float64)
    y = np.asarray(y_m, np.float64)
    az = np.asarray(azimuth_deg, np.float64)
    site = np.asarray(site_id)
    n = x.shape[0]
    if not (y.shape == az.shape == site.shape == (n,)):
        raise ValueError(
            f"neighbour_graph: x_m, y_m, azimuth_deg, site_id must all have shape (cells,), got "
            f"{x.shape}, {y.shape}, {az.shape}, {site.shape}"
        )
    if k < 0:
        raise ValueError(f"neighbour_graph: k must be >= 0, got {k}")
    if rank not in ("coupling", "distance"):
        raise ValueError(f"neighbour_graph: rank must be 'coupling' or 'distance', got {rank!r}")
    same = site[:, None] == site[None, :]
    np.fill_diagonal(same, False)
    n_co = int(same.sum(axis=1).max()) if n > 1 else 0
    degree = max(n_co + min(k, n - 1), 1)
    dist = np.hypot(x[None, :] - x[:, None], y[None, :] - y[:, None])
    bearing_abs = np.rad2deg(np.arctan2(y[None, :] - y[:, None], x[None, :] - x[:, None]))
    bearing = np.where(same, az[None, :] - az[:, None], bearing_abs - az[:, None])
    bearing = _wrap_deg(bearing)

    coupling = sector_coupling_db(x, y, az, site)

    index = np.tile(np.arange(n)[:, None], (1, degree))
    mask = np.zeros((n, degree), bool)
    for i in range(n):
        co = np.flatnonzero(same[i])
        others = np.flatnonzero(~same[i] & (np.arange(n) != i))
        order = -coupling[i, others] if rank == "coupling" else dist[i, others]
        others = others[np.argsort(order, kind="stable")][:k]
        nb = np.concatenate([co, others])[:degree]
        index[i, : nb.size] = nb
        mask[i, : nb.size] = True
    rows = np.arange(n)[:, None]
    return NeighbourGraph(
        index=jnp.asarray(index, jnp.int32),
        mask=jnp.asarray(mask),
        distance_m=jnp.asarray(np.where(mask, dist[rows, index], 0.0), jnp.float32),
        bearing_deg=jnp.asarray(np.where(mask, bearing[rows, index], 0.0), jnp.float32),
        co_site=jnp.asarray(mask & same[rows, index]),
        coupling_db=jnp.asarray(
            np.where(mask, coupling[rows, index] - np.diag(coupling)[:, None], 0.0), jnp.float32
        ),
    )


def sector_coupling_db(
    x_m: np.ndarray, y_m: np.ndarray, azimuth_deg: np.ndarray, site_id: np.ndarray
) -> np.ndarray:
    """Geometric coupling (dB) of every cell ``j`` at the sector centre of every cell ``i``.

    ``C[i, j] = -min(12 (phi_ij / 65)^2, 30) - 35 log10(max(d_ij, 1 m))``: ``phi_ij`` (degrees) the
    angle between cell ``j``'s boresight and the direction from its site to cell ``i``'s sector
    centre, ``d_ij`` (m) that distance. The sector centre is on ``i``'s boresight at half the
    distance from ``i``'s site to the nearest other site (the whole layout's median such distance
    for a lone site). Only the ranking matters (`neighbour_graph`).

    Returns:
        ``[cells, cells]`` array (dB).
    """
    x = np.asarray(x_m, np.float64)
    y = np.asarray(y_m, np.float64)
    az_deg = np.asarray(azimuth_deg, np.float64)
    az = np.deg2rad(az_deg)
    site = np.asarray(site_id)
    d_site = np.hypot(x[None, :] - x[:, None], y[None, :] - y[:, None])
    other = site[None, :] != site[:, None]
    nearest = np.where(other, d_site, np.inf).min(axis=1)
    finite = np.isfinite(nearest)
    fallback = float(np.median(nearest[finite])) if finite.any() else 200.0
    reach = 0.5 * np.where(finite, nearest, fallback)
    cx = x + reach * np.cos(az)
    cy = y + reach * np.sin(az)
    dx = cx[:, None] - x[None, :]
    dy = cy[:, None] - y[None, :]
    d = np.maximum(np.hypot(dx, dy), 1.0)
    phi = _wrap_deg(np.rad2deg(np.arctan2(dy, dx)) - az_deg[None, :])
    return -np.minimum(12.0 * (phi / 65.0) ** 2, 30.0) - 35.0 * np.log10(d)


def neighbourhood_mean(
    values: np.ndarray, graph: NeighbourGraph, present: np.ndarray | None = None
) -> np.ndarray:
    """Mean of a per-cell quantity over each cell and its graph neighbours (host-side numpy).

    Args:
        values: ``[..., cells]`` per-cell values (e.g. active UEs per period).
        graph: the neighbour graph.
        present: optional ``[..., cells]`` mask of rows that exist; absent rows are left out of
            the mean (a cell with no present row in its neighbourhood gets 0).

    Returns:
        ``[..., cells]``: ``sum_{j in {c} + N(c)} p_j v_j / sum_{j in {c} + N(c)} p_j``.
    """
    v = np.asarray(values, np.float64)
    p = np.ones_like(v) if present is None else np.asarray(present, np.float64)
    idx = np.asarray(graph.index)
    w = np.asarray(graph.mask, np.float64)
    pv = p * v
    num = pv + np.einsum("...ck,ck->...c", pv[..., idx], w)
    den = p + np.einsum("...ck,ck->...c", p[..., idx], w)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)
