"""The cell neighbour graph the surrogate passes messages over.

Each cell is linked to every co-site cell and to its ``k`` nearest other cells by site distance
(co-site cells have distance 0, so they come first). Edge features say where the neighbour is as
seen from the cell: site distance and the bearing of the neighbour's site relative to the cell's
boresight (for co-site neighbours, the neighbour's boresight relative to the cell's), encoded as
``(distance_km, cos, sin, co_site)``. Built once per topology in numpy; fixed shapes for ``jit``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

N_EDGE_FEATURES = 4
"""Edge features: distance (km), cos and sin of relative bearing, co-site flag."""


class NeighbourGraph(eqx.Module):
    """Fixed-degree neighbour lists.

    Attributes:
        index: ``[cells, k]`` neighbour cell positions (padded with the cell itself).
        mask: ``[cells, k]`` True for real neighbours, False for padding.
        distance_m: ``[cells, k]`` site-to-site distance (0 for co-site cells).
        bearing_deg: ``[cells, k]`` bearing relative to the cell's boresight, in (-180, 180].
        co_site: ``[cells, k]`` neighbour on the same site.
    """

    index: Int[Array, "cells k"]
    mask: Bool[Array, "cells k"]
    distance_m: Float[Array, "cells k"]
    bearing_deg: Float[Array, "cells k"]
    co_site: Bool[Array, "cells k"]

    def edge_features(self) -> Float[Array, "cells k 4"]:
        """``(distance_km, cos(bearing), sin(bearing), co_site)``; zero on padding."""
        b = jnp.deg2rad(self.bearing_deg)
        f = jnp.stack(
            [self.distance_m / 1000.0, jnp.cos(b), jnp.sin(b), self.co_site.astype(jnp.float32)],
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
    k: int = 6,
) -> NeighbourGraph:
    """Build the neighbour graph of a topology.

    Args:
        x_m, y_m: ``[cells]`` site position of each cell (m).
        azimuth_deg: ``[cells]`` boresight, counter-clockwise from east (TR 38.901 convention).
        site_id: ``[cells]`` site of each cell.
        k: number of non-co-site neighbours per cell (nearest by site distance). The degree is
            ``max co-site cells + k``, padded where a cell has fewer candidates.

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
    same = site[:, None] == site[None, :]
    np.fill_diagonal(same, False)
    n_co = int(same.sum(axis=1).max()) if n > 1 else 0
    degree = max(n_co + min(k, n - 1), 1)
    dist = np.hypot(x[None, :] - x[:, None], y[None, :] - y[:, None])
    bearing_abs = np.rad2deg(np.arctan2(y[None, :] - y[:, None], x[None, :] - x[:, None]))
    bearing = np.where(same, az[None, :] - az[:, None], bearing_abs - az[:, None])
    bearing = _wrap_deg(bearing)

    index = np.tile(np.arange(n)[:, None], (1, degree))
    mask = np.zeros((n, degree), bool)
    for i in range(n):
        co = np.flatnonzero(same[i])
        others = np.flatnonzero(~same[i] & (np.arange(n) != i))
        others = others[np.argsort(dist[i, others], kind="stable")][:k]
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
    )


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
