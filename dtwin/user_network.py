"""The twin of a user's own network: topology from ``cells.csv`` columns, CM-response sweeps on it.

`network_from_cells` builds a `dtwin.network.Network` whose sites, sector boresights and antenna
heights are the user's (not the hexagonal layout of `dtwin.areas`); the channel statistics,
carrier, bandwidth, UE densities and traffic come from the cells' area type
(`dtwin.areas.AREA_TYPES`). UEs are dropped in each cell's sector wedge of its site
(`dtwin.geometry.drop_ues`), with the wedge radius set by the median distance between
neighbouring sites; there is no wrap-around (a real layout is not periodic), so cells at the
edge of the file see less interference than interior ones, as in the field.

`user_sweep_rows` evaluates snapshots with sampled CM on such a network and returns rows with
the user's ``cell_id`` / ``site_id`` / positions, in the columns of `dtwin.schema`, ready for
`sim2real`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .areas import AreaType, network_for_area
from .cm import DEFAULT_CM_SCHEMA, CMSchema
from .geometry import Topology
from .kpi import SNAPSHOTS_PER_PERIOD
from .network import Network
from .sweep import DEFAULT_UE_CLUSTERING, evaluate_period, sample_cm, snapshot_key, to_rows


@dataclasses.dataclass(frozen=True)
class UserNetwork:
    """A user's cells as a twin network.

    Attributes:
        network: the `Network` (cells ordered site-major, boresight within a site).
        area: the area type its statistics come from.
        cell_id, site_id: ``[cells]`` the user's identifiers, in the network's cell order.
    """

    network: Network
    area: AreaType
    cell_id: np.ndarray
    site_id: np.ndarray


def _median_site_spacing_m(xy: np.ndarray, fallback_m: float) -> float:
    if len(xy) < 2:
        return float(fallback_m)
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def network_from_cells(
    area: AreaType,
    *,
    cell_id: np.ndarray,
    site_id: np.ndarray,
    x_m: np.ndarray,
    y_m: np.ndarray,
    azimuth_deg: np.ndarray,
    height_m: np.ndarray,
    carrier_hz: float | None = None,
    bandwidth_hz: float | None = None,
) -> UserNetwork:
    """The twin network of a set of cells of one area type.

    Args:
        area: area type (scenario, densities, traffic; its ISD is only a fallback for one site).
        cell_id, site_id, x_m, y_m, azimuth_deg, height_m: ``[cells]`` topology columns of
            ``cells.csv`` (positions in m, azimuth in degrees counter-clockwise from east,
            antenna height in m); cells of one site must share its position.
        carrier_hz, bandwidth_hz: carrier and bandwidth (Hz); default: the area type's.

    Raises:
        ValueError: inconsistent sites, unequal sector counts per site, non-finite values.
    """
    cols = {
        "cell_id": np.asarray(cell_id),
        "site_id": np.asarray(site_id),
        "x_m": np.asarray(x_m, np.float64),
        "y_m": np.asarray(y_m, np.float64),
        "azimuth_deg": np.asarray(azimuth_deg, np.float64),
        "height_m": np.asarray(height_m, np.float64),
    }
    n = len(cols["cell_id"])
    if n == 0:
        raise ValueError("network_from_cells: no cells")
    for k, v in cols.items():
        if v.shape != (n,):
            raise ValueError(f"network_from_cells: {k} has shape {v.shape}, expected ({n},)")
        if k not in ("cell_id", "site_id") and not np.all(np.isfinite(v)):
            raise ValueError(f"network_from_cells: {k} has non-finite values")
    if len(np.unique(cols["cell_id"])) != n:
        raise ValueError("network_from_cells: duplicate cell_id")
    order = np.lexsort((cols["azimuth_deg"] % 360.0, cols["site_id"]))
    cols = {k: v[order] for k, v in cols.items()}
    sites, cell_site, counts = np.unique(cols["site_id"], return_inverse=True, return_counts=True)
    if len(set(counts.tolist())) != 1:
        raise ValueError(
            "network_from_cells: every site must have the same number of cells (sectors) for the "
            f"UE drop; got {dict(zip(sites.tolist(), counts.tolist(), strict=True))}"
        )
    xy = np.stack([cols["x_m"], cols["y_m"]], -1)
    site_xy = np.zeros((len(sites), 2))
    for s in range(len(sites)):
        pts = xy[cell_site == s]
        if np.ptp(pts, axis=0).max() > 1.0:
            raise ValueError(
                f"network_from_cells: the cells of site {sites[s]!r} are more than 1 m apart; "
                "cells of one site must share its position"
            )
        site_xy[s] = pts.mean(0)
    spacing = _median_site_spacing_m(site_xy, area.isd_m)
    topo = Topology(
        site_xy_m=jnp.asarray(site_xy, jnp.float32),
        cell_site=jnp.asarray(cell_site, jnp.int32),
        cell_azimuth_deg=jnp.asarray(cols["azimuth_deg"], jnp.float32),
        bs_height_m=jnp.asarray(cols["height_m"], jnp.float32),
        isd_m=jnp.asarray(spacing, jnp.float32),
        wrap_offsets_m=jnp.zeros((1, 2), jnp.float32),
        wrap=False,
    )
    area = dataclasses.replace(
        area,
        isd_m=spacing,
        carrier_hz=float(area.carrier_hz if carrier_hz is None else carrier_hz),
        bandwidth_hz=float(area.bandwidth_hz if bandwidth_hz is None else bandwidth_hz),
    )
    base = network_for_area(area, 1, wrap=False)
    network = dataclasses.replace(base, topology=topo)
    return UserNetwork(network, area, cols["cell_id"], cols["site_id"])


def user_sweep_rows(
    user: UserNetwork,
    seed: int,
    n_snapshots: int,
    *,
    ues_per_cell: int = 10,
    cm_sampling: str = "mixed",
    local_max_steps: int = 1,
    snapshots_per_row: int = SNAPSHOTS_PER_PERIOD,
    chunk_size: int = 128,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    progress: bool = False,
    ue_clustering: float = DEFAULT_UE_CLUSTERING,
) -> dict[str, np.ndarray]:
    """Twin rows (one per cell per row ``0..n_snapshots-1``) of a user network.

    Row ``s`` uses ``fold_in(PRNGKey(seed), s)`` as `dtwin.sweep` does (deterministic and
    independent of ``chunk_size``); the CM is sampled as `dtwin.sweep.sample_cm` ``cm_sampling``;
    each row is a reporting period of ``snapshots_per_row`` snapshots
    (`dtwin.sweep.evaluate_period`). One compilation; chunks of ``chunk_size`` rows.
    ``ue_clustering``: randomised UE hotspots (`dtwin.areas.AreaType.ue_clustering`).
    """
    if n_snapshots < 1 or chunk_size < 1 or snapshots_per_row < 1:
        raise ValueError(
            "user_sweep_rows: n_snapshots, chunk_size and snapshots_per_row must be >= 1, got "
            f"{n_snapshots}, {chunk_size}, {snapshots_per_row}"
        )
    from tqdm.auto import tqdm

    net, area = user.network, user.area.with_ue_clustering(ue_clustering)

    def one(snapshot_id):
        k_cm, k_snap = jax.random.split(snapshot_key(seed, snapshot_id))
        cm = sample_cm(k_cm, schema, net.n_cells, cm_sampling, local_max_steps)
        return evaluate_period(k_snap, net, area, ues_per_cell, cm, snapshots_per_row)

    fn = jax.jit(jax.vmap(one))
    chunk = min(chunk_size, n_snapshots)
    parts = []
    for start in tqdm(range(0, n_snapshots, chunk), desc="twin (cells file)", disable=not progress):
        ids = np.arange(start, min(start + chunk, n_snapshots), dtype=np.int64)
        padded = np.concatenate([ids, np.full(chunk - len(ids), ids[-1])])  # one shape
        out = {k: np.asarray(v)[: len(ids)] for k, v in fn(jnp.asarray(padded)).items()}
        rows = to_rows(out, ids, net, area)
        rows["cell_id"] = np.tile(user.cell_id, len(ids))
        rows["site_id"] = np.tile(user.site_id, len(ids))
        parts.append(rows)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def cells_by_area(cells: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Row indices of a cells table per area type (in order of first appearance)."""
    areas = np.asarray(cells["area_type"]).astype(str)
    return {a: np.flatnonzero(areas == a) for a in dict.fromkeys(areas.tolist())}


__all__ = ["UserNetwork", "network_from_cells", "user_sweep_rows", "cells_by_area"]
