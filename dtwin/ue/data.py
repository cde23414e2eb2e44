"""Loaders of the real data behind the UE behaviour model, and the CVAE training set built from it.

Data (GPL-3.0, read from ``<repo>/../shared/data``, never copied into the repository):

* ``ucc-5g-production`` (Raca et al., MMSys 2020): per-second GPS traces of a phone in a
  commercial network in Cork, in ``Driving`` and ``Static`` sessions -> speed and heading.
* ``c2tm-city-traffic`` (Chen et al., C2TM): hourly distinct users and bytes of 159 base-station
  clusters -> per-user demand, diurnal/weekly profile, spread across cells.

Neither data set has UE positions relative to a site. Positions in the training set come from a
documented prior (TR 38.901 Table 7.8-1 uniform drop in the cell area, plus a share of UEs in a
clustered hotspot); `dtwin.ue.closed_loop` then refines the generator against network KPIs.
Context columns that the data lack (area type, indoor share) are assigned by documented proxies
in `build_ue_training_set`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import math
from pathlib import Path

import numpy as np

from .context import AREA_TYPES, context_features
from .cvae import encode_ues

_C2TM_COLUMNS = ("bs", "thour", "users", "packets", "bytes")
_UCC_COLUMNS = ("Timestamp", "Longitude", "Latitude", "Speed")
_EARTH_RADIUS_M = 6_371_000.0
# TR 38.901 Table 7.2-1: 80 % indoor UEs in UMa/UMi, 50 % in RMa; suburban taken in between.
INDOOR_RATIO_PRIOR: dict[str, float] = {"metro": 0.8, "urban": 0.8, "suburban": 0.65, "rural": 0.5}
# Share of *outdoor* UEs that are in a vehicle (prior; TR 38.901 Table 7.8-1 uses 30 km/h
# in-car UEs for outdoor UEs in UMa/RMa evaluations, pedestrian 3 km/h otherwise).
DRIVING_SHARE_PRIOR: dict[str, float] = {"metro": 0.3, "urban": 0.4, "suburban": 0.5, "rural": 0.7}
# 2012 HTTP volume per distinct user and hour -> today's active-UE demand: x100 traffic growth per
# smartphone since 2012 (Ericsson Mobility Reports) and x10 for an ~10 % activity share.
DEFAULT_DEMAND_SCALE = 1000.0


def default_data_root() -> Path:
    """``<repo>/../shared/data`` (the repository root is two levels above this file's package)."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found at {path}; the real data live in <repo>/../shared/data "
            "(GPL-3.0, not shipped with the project)"
        )
    return path


# --------------------------------------------------------------------------------------- C2TM
@dataclasses.dataclass(frozen=True)
class C2TMTraffic:
    """Hourly traffic of base-station clusters on a regular hourly grid (NaN = no record).

    Attributes:
        cluster_ids: cluster names, ``[clusters]``.
        hours: ``datetime64[h]`` local time (UTC+8) of each grid column, ``[hours]``.
        users: distinct users per cluster-hour, ``[clusters, hours]``.
        bytes: HTTP bytes per cluster-hour, ``[clusters, hours]``.
    """

    cluster_ids: tuple[str, ...]
    hours: np.ndarray
    users: np.ndarray
    bytes: np.ndarray

    @property
    def hour_of_day(self) -> np.ndarray:
        return (self.hours.astype("int64") % 24).astype(np.int64)

    @property
    def day_of_week(self) -> np.ndarray:
        # 1970-01-01 was a Thursday (3 with Monday = 0).
        return ((self.hours.astype("int64") // 24 + 3) % 7).astype(np.int64)

    def per_user_demand_mbps(self, demand_scale: float = DEFAULT_DEMAND_SCALE) -> np.ndarray:
        """Mean per-user demand ``bytes * 8 / users / 3600 s / 1e6 * demand_scale``, Mbps."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.bytes * 8.0 / np.maximum(self.users, 1.0) / 3600.0 / 1e6 * demand_scale


def _parse_local_hour(text: str) -> np.datetime64:
    t = _dt.datetime.fromisoformat(text)
    naive = t.replace(tzinfo=None)  # keep the local (UTC+8) wall clock for the diurnal profile
    return np.datetime64(naive, "h")


def load_c2tm(path: str | Path | None = None) -> C2TMTraffic:
    """Read ``clustered_traffic_data.csv`` (columns bs, thour, users, packets, bytes).

    Raises:
        FileNotFoundError: when the file is absent.
        ValueError: naming the row and column of a missing column, unparsable or negative value,
            or a duplicated (cluster, hour).
    """
    path = Path(path) if path is not None else default_data_root() / "c2tm-city-traffic"
    if path.is_dir():
        path = path / "clustered_traffic_data.csv"
    _require(path, "C2TM traffic file")
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _C2TM_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        for i, row in enumerate(reader, start=2):
            try:
                hour = _parse_local_hour(row["thour"])
            except ValueError as e:
                raise ValueError(f"{path}: row {i}, column 'thour': {row['thour']!r} ({e})") from e
            vals = []
            for col in ("users", "bytes"):
                try:
                    v = float(row[col])
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{path}: row {i}, column {col!r}: {row[col]!r}") from e
                if not math.isfinite(v) or v < 0:
                    raise ValueError(f"{path}: row {i}, column {col!r}: {v} must be >= 0")
                vals.append(v)
            rows.append((row["bs"], hour, vals[0], vals[1], i))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    ids = tuple(sorted({r[0] for r in rows}, key=lambda s: (len(s), s)))
    index = {b: k for k, b in enumerate(ids)}
    h0 = min(r[1] for r in rows)
    h1 = max(r[1] for r in rows)
    n_hours = int((h1 - h0).astype(int)) + 1
    users = np.full((len(ids), n_hours), np.nan, np.float64)
    volume = np.full((len(ids), n_hours), np.nan, np.float64)
    for bs, hour, u, b, i in rows:
        k, t = index[bs], int((hour - h0).astype(int))
        if not np.isnan(users[k, t]):
            raise ValueError(f"{path}: row {i}: duplicate record for cluster {bs!r} at {hour}")
        users[k, t], volume[k, t] = u, b
    hours = h0 + np.arange(n_hours).astype("timedelta64[h]")
    return C2TMTraffic(ids, hours, users, volume)


# ---------------------------------------------------------------------------------------- UCC
@dataclasses.dataclass(frozen=True)
class MobilityTrace:
    """One UCC session: per-second samples (``[samples]`` arrays).

    Attributes:
        name: file path relative to the data folder.
        mode: ``"driving"`` or ``"static"``.
        t_s: seconds since the session start.
        lon_deg, lat_deg: GPS position, degrees.
        speed_kmh: speed reported by the phone, km/h.
    """

    name: str
    mode: str
    t_s: np.ndarray
    lon_deg: np.ndarray
    lat_deg: np.ndarray
    speed_kmh: np.ndarray
    start_hour: int

    def heading_deg(self) -> np.ndarray:
        """Direction of motion, degrees counter-clockwise from east, per sample ``[samples]``.

        Bearing between consecutive *distinct* GPS fixes (equirectangular approximation, exact
        enough over metres), carried forward while the reported position does not change (the
        phone repeats fixes) and backward before the first move; NaN for a session that never
        moves.
        """
        lat0 = np.deg2rad(self.lat_deg)
        dx = np.diff(np.deg2rad(self.lon_deg)) * np.cos(lat0[:-1]) * _EARTH_RADIUS_M
        dy = np.diff(lat0) * _EARTH_RADIUS_M
        moved = np.hypot(dx, dy) > 0
        h = np.full(self.lat_deg.shape, np.nan)
        h[1:][moved] = np.rad2deg(np.arctan2(dy[moved], dx[moved]))
        idx = np.where(np.isfinite(h), np.arange(h.size), -1)
        idx = np.maximum.accumulate(idx)
        if np.all(idx < 0):
            return h
        first = int(np.argmax(idx >= 0))
        idx[:first] = idx[first]
        return h[idx]


def _parse_ucc_time(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y.%m.%d_%H.%M.%S")


def load_ucc_trace(path: str | Path, mode: str) -> MobilityTrace:
    """Read one UCC 5G session CSV (rows with '-' in position or speed are skipped).

    Raises:
        ValueError: naming file, row and column for a missing column or a malformed value.
    """
    path = Path(path)
    if mode not in ("driving", "static"):
        raise ValueError(f"load_ucc_trace: mode must be 'driving' or 'static', got {mode!r}")
    t, lon, lat, spd = [], [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _UCC_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        for i, row in enumerate(reader, start=2):
            if any(row[c] in ("-", "", None) for c in _UCC_COLUMNS[1:]):
                continue  # not available in the source, documented as '-'
            try:
                ts = _parse_ucc_time(row["Timestamp"])
            except ValueError as e:
                raise ValueError(
                    f"{path}: row {i}, column 'Timestamp': {row['Timestamp']!r}"
                ) from e
            vals = []
            for col in _UCC_COLUMNS[1:]:
                try:
                    vals.append(float(row[col]))
                except ValueError as e:
                    raise ValueError(f"{path}: row {i}, column {col!r}: {row[col]!r}") from e
            if vals[2] < 0:
                raise ValueError(f"{path}: row {i}, column 'Speed': {vals[2]} must be >= 0")
            t.append(ts)
            lon.append(vals[0])
            lat.append(vals[1])
            spd.append(vals[2])
    if len(t) < 2:
        raise ValueError(f"{path}: fewer than 2 usable rows")
    t_s = np.array([(x - t[0]).total_seconds() for x in t])
    return MobilityTrace(
        str(path), mode, t_s, np.array(lon), np.array(lat), np.array(spd), t[0].hour
    )


def load_ucc_traces(root: str | Path | None = None) -> list[MobilityTrace]:
    """All UCC sessions under ``root`` (default ``<repo>/../shared/data/ucc-5g-production``).

    A session is ``"static"`` when its path contains a ``Static`` folder, ``"driving"`` otherwise
    (``Download-Driving`` and ``*/Driving``). Sorted by path.
    """
    root = Path(root) if root is not None else default_data_root() / "ucc-5g-production"
    _require(root, "UCC 5G production data folder")
    files = sorted(root.rglob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{root}: no session CSV files")
    return [load_ucc_trace(f, "static" if "Static" in f.parts else "driving") for f in files]


def split_traces(
    traces: list[MobilityTrace], held_out_every: int = 4
) -> tuple[list[MobilityTrace], list[MobilityTrace]]:
    """Session-level split: every ``held_out_every``-th session of each mode is held out."""
    train, test = [], []
    for mode in ("driving", "static"):
        sub = [t for t in traces if t.mode == mode]
        for k, t in enumerate(sub):
            (test if k % held_out_every == held_out_every - 1 else train).append(t)
    return train, test


def pooled_mobility(traces: list[MobilityTrace], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Speed (km/h) and heading (deg) of all samples of ``mode``; NaN headings drawn uniformly."""
    sel = [t for t in traces if t.mode == mode]
    if not sel:
        raise ValueError(f"pooled_mobility: no traces of mode {mode!r}")
    speed = np.concatenate([t.speed_kmh for t in sel])
    heading = np.concatenate([t.heading_deg() for t in sel])
    return speed, heading


# ------------------------------------------------------------------------------ training set
@dataclasses.dataclass(frozen=True)
class UETrainingSet:
    """Per-UE records for the CVAE: ``x [n, 7]`` (`dtwin.ue.cvae.encode_ues`), ``c [n, 10]``.

    ``cluster [n]`` and ``hour_index [n]`` say which C2TM cluster-hour each record came from.
    """

    x: np.ndarray
    c: np.ndarray
    cluster: np.ndarray
    hour_index: np.ndarray


def cluster_area_types(traffic: C2TMTraffic) -> np.ndarray:
    """Area-type index per cluster, a proxy: quartiles of mean hourly users (top = metro).

    The C2TM data have no land-use label; busier clusters are taken as denser areas.
    """
    mean_users = np.nanmean(traffic.users, axis=1)
    q = np.quantile(mean_users, [0.25, 0.5, 0.75])
    return (3 - np.searchsorted(q, mean_users, side="right")).astype(np.int64)


def _drop_positions(rng: np.random.Generator, n: int, hotspot_share: float, min_frac: float):
    """TR 38.901 uniform drop in a 120-degree sector plus a Gaussian hotspot.

    Uniform in area: ``d^2`` uniform on ``[d_min^2, R^2]``; returned as the normalised distance
    ``(d - d_min) / (R - d_min)`` and the angle to the boresight in degrees.
    """
    d = np.sqrt(rng.uniform(min_frac**2, 1.0, n))
    ang = rng.uniform(-60.0, 60.0, n)
    hot = rng.uniform(size=n) < hotspot_share
    centre_d, centre_a = rng.uniform(0.3, 0.9), rng.uniform(-40.0, 40.0)
    d = np.where(hot, np.clip(centre_d + 0.08 * rng.normal(size=n), min_frac, 1.0), d)
    ang = np.where(hot, np.clip(centre_a + 10.0 * rng.normal(size=n), -59.9, 59.9), ang)
    return (d - min_frac) / (1.0 - min_frac), ang


def build_ue_training_set(
    seed: int,
    traffic: C2TMTraffic,
    traces: list[MobilityTrace],
    *,
    hour_mask: np.ndarray | None = None,
    n_cluster_hours: int = 2000,
    ues_per_cluster_hour: int = 8,
    demand_scale: float = DEFAULT_DEMAND_SCALE,
    within_cell_sigma: float = 1.0,
    hotspot_share: float = 0.2,
    min_distance_frac: float = 0.05,
) -> UETrainingSet:
    """Per-UE training records joining the two real data sets through the context.

    For each sampled C2TM cluster-hour (restricted to ``hour_mask [hours]``, e.g. the training
    days): context = (area type proxy `cluster_area_types`, density = distinct users of the
    cluster-hour per km^2 taking a nominal 1 km^2 cluster area, indoor share
    `INDOOR_RATIO_PRIOR`, hour and day of week of the record). Per UE:

    * indoor ~ Bernoulli(indoor share);
    * mobility: indoor UEs, and outdoor UEs with probability ``1 - DRIVING_SHARE_PRIOR``, take
      (speed, heading) of a random sample of the UCC *static* sessions, the others of the
      *driving* sessions (real data);
    * demand (Mbps): the cluster-hour's real per-user demand (`C2TMTraffic.per_user_demand_mbps`)
      times a mean-one log-normal within-cell spread ``exp(sigma N - sigma^2 / 2)`` (prior; the
      data are aggregates);
    * position: prior, `_drop_positions` (uniform drop + hotspot).
    """
    rng = np.random.default_rng(seed)
    demand = traffic.per_user_demand_mbps(demand_scale)
    valid = np.isfinite(demand) & (demand > 0)
    if hour_mask is not None:
        if hour_mask.shape != (traffic.hours.shape[0],):
            raise ValueError(
                f"hour_mask must have shape [{traffic.hours.shape[0]}], got {hour_mask.shape}"
            )
        valid &= hour_mask[None, :]
    kc, kt = np.nonzero(valid)
    if kc.size == 0:
        raise ValueError("build_ue_training_set: no valid cluster-hours under hour_mask")
    pick = rng.integers(0, kc.size, n_cluster_hours)
    area = cluster_area_types(traffic)
    drive_speed, drive_heading = pooled_mobility(traces, "driving")
    static_speed, static_heading = pooled_mobility(traces, "static")
    n = n_cluster_hours * ues_per_cluster_hour
    cluster = np.repeat(kc[pick], ues_per_cluster_hour)
    hour_index = np.repeat(kt[pick], ues_per_cluster_hour)
    a = area[cluster]
    names = np.array(AREA_TYPES)[a]
    indoor_ratio = np.vectorize(INDOOR_RATIO_PRIOR.get)(names)
    drive_share = np.vectorize(DRIVING_SHARE_PRIOR.get)(names)
    indoor = rng.uniform(size=n) < indoor_ratio
    driving = (~indoor) & (rng.uniform(size=n) < drive_share)
    i_d = rng.integers(0, drive_speed.size, n)
    i_s = rng.integers(0, static_speed.size, n)
    speed = np.where(driving, drive_speed[i_d], static_speed[i_s])
    heading = np.where(driving, drive_heading[i_d], static_heading[i_s])
    heading = np.where(np.isnan(heading), rng.uniform(-180.0, 180.0, n), heading)
    per_ue = demand[cluster, hour_index] * np.exp(
        within_cell_sigma * rng.normal(size=n) - 0.5 * within_cell_sigma**2
    )
    dist, ang = [], []
    for _ in range(n_cluster_hours):
        d, g = _drop_positions(rng, ues_per_cluster_hour, hotspot_share, min_distance_frac)
        dist.append(d)
        ang.append(g)
    x = np.asarray(
        encode_ues(np.concatenate(dist), np.concatenate(ang), indoor, speed, heading, per_ue)
    )
    c = np.asarray(
        _features(
            a,
            traffic.users[cluster, hour_index],
            indoor_ratio,
            traffic.hour_of_day[hour_index],
            traffic.day_of_week[hour_index],
        )
    )
    return UETrainingSet(x.astype(np.float32), c.astype(np.float32), cluster, hour_index)


def _features(area_index, density, indoor_ratio, hour, dow):
    import jax

    return jax.vmap(context_features)(area_index, density, indoor_ratio, hour, dow)
