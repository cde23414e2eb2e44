"""The user's data interface: loading and validating ``cells.csv`` and per-cell measurements.

Two tables, with the column names of `dtwin.schema`:

* **cells.csv** (topology, one row per cell): ``cell_id, site_id, x_m, y_m, height_m,
  azimuth_deg, carrier_hz, bandwidth_hz, area_type`` plus the CM in force
  (``tilt_deg, tx_power_dbm, cio_db``).
* **measurements** (Parquet or CSV, one row per cell per reporting period): ``cell_id`` and
  ``timestamp`` (commercial) or ``snapshot_id`` (twin), the CM in force, exogenous state columns
  and the KPI targets. Twin files also carry the geometry columns, so they can be loaded without a
  ``cells.csv`` (``cells=None``).

Which columns are CM, state, targets (and physics priors) is set by `ColumnRoles`; the defaults
follow `dtwin.schema`. Everything is validated at this boundary: a problem raises `DataError`
naming the file, the row (1-based *line* in a CSV file, header = line 1; 1-based *row* in a
Parquet file) and the column. Rows are never dropped silently: ``drop_invalid=True`` excludes bad
rows and returns a `DropReport` with counts per reason.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dtwin.cm import DEFAULT_CM_SCHEMA, CMSchema
from dtwin.schema import ALL_COLUMNS, CM_COLUMNS, DEFAULT_TARGET

AREA_TYPES: tuple[str, ...] = ("metro", "urban", "suburban", "rural")
"""Allowed values of the ``area_type`` column (`dtwin.schema.ID_COLUMNS`)."""

CELL_COLUMNS: tuple[str, ...] = (
    "cell_id",
    "site_id",
    "x_m",
    "y_m",
    "height_m",
    "azimuth_deg",
    "carrier_hz",
    "bandwidth_hz",
    "area_type",
)
"""Topology columns of ``cells.csv`` (the CM columns come in addition)."""

_TWIN_CELL_COLUMNS: tuple[str, ...] = (
    "site_id",
    "x_m",
    "y_m",
    "height_m",
    "azimuth_deg",
    "area_type",
)

DROP_REASONS: tuple[str, ...] = (
    "bad_value",
    "unknown_cell",
    "cm_out_of_bounds",
    "nan_input",
    "nan_target",
    "duplicate",
)
"""Reasons a measurement row can be invalid (keys of `DropReport.counts`)."""


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
"""Range of cell ids the surrogate's batches hold (``int32``: JAX without x64)."""


class DataError(ValueError):
    """Invalid user data; the message names the file, row/line and column."""


@dataclasses.dataclass(frozen=True)
class ColumnRoles:
    """Which measurement columns play which role.

    Attributes:
        cm: CM columns (inputs the optimiser controls); each must be a parameter of the CM schema.
            Default: all `dtwin.schema.CM_COLUMNS`.
        state: exogenous state inputs. Default ``("hour", "active_ues", "offered_load_mbps")``
            (the state every commercial PM export has); add ``ue_density_per_km2`` or
            ``indoor_ratio`` when both twin and commercial data carry them.
        targets: KPI / PM columns to model. Default ``("dl_throughput_mbps",)``.
        local_state: state columns fed as their mean over each cell's graph neighbourhood
            (``local_<name>``, `sim2real.batch_from_arrays`). Default ``("active_ues",
            "offered_load_mbps")``: a cell's own served-UE count moves with its CM (association),
            so fed per cell it hides part of the CM response from the surrogate.
        priors: optional physics priors, target name -> baseline column (e.g. the twin's
            analytic throughput); the surrogate then learns a correction to the baseline.
        period: the reporting-period column; ``None`` picks ``timestamp`` if present, otherwise
            ``snapshot_id``.
        ignore: extra columns that may be present and are ignored (any other column not in
            `dtwin.schema` is an error, to catch typos).
    """

    cm: tuple[str, ...] = tuple(CM_COLUMNS)
    state: tuple[str, ...] = ("hour", "active_ues", "offered_load_mbps")
    targets: tuple[str, ...] = (DEFAULT_TARGET,)
    local_state: tuple[str, ...] = ("active_ues", "offered_load_mbps")
    priors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    period: str | None = None
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("cm", "state", "targets", "ignore", "local_state"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "priors", dict(self.priors))
        if not self.targets:
            raise ValueError("ColumnRoles: at least one target column is needed")
        if not self.cm:
            raise ValueError("ColumnRoles: at least one CM column is needed")
        used = [*self.cm, *self.state, *self.targets, *self.priors.values()]
        dup = sorted({c for c in used if used.count(c) > 1})
        if dup:
            raise ValueError(f"ColumnRoles: column(s) {dup} given more than one role")
        bad = [t for t in self.priors if t not in self.targets]
        if bad:
            raise ValueError(f"ColumnRoles: priors for {bad}, which are not targets {self.targets}")


@dataclasses.dataclass(frozen=True)
class DropReport:
    """What `load_measurements` excluded with ``drop_invalid=True``.

    Attributes:
        source: the file.
        n_rows: data rows read.
        n_kept: rows kept.
        counts: reason -> number of rows dropped for it (first reason of a row), reasons in
            `DROP_REASONS`.
        examples: reason -> first few messages (file, row, column).
    """

    source: str
    n_rows: int
    n_kept: int
    counts: dict[str, int]
    examples: dict[str, list[str]]

    @property
    def n_dropped(self) -> int:
        return self.n_rows - self.n_kept


@dataclasses.dataclass(frozen=True)
class Cells:
    """Cell topology and current CM (numpy arrays, one entry per cell, file order).

    ``carrier_hz``/``bandwidth_hz`` are NaN for cells derived from a twin file.
    """

    source: str
    cell_id: np.ndarray
    site_id: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    height_m: np.ndarray
    azimuth_deg: np.ndarray
    carrier_hz: np.ndarray
    bandwidth_hz: np.ndarray
    area_type: np.ndarray
    cm: dict[str, np.ndarray]

    @property
    def n_cells(self) -> int:
        return int(self.cell_id.shape[0])

    def index(self) -> dict[int, int]:
        """Map cell_id -> position in these arrays."""
        return {int(c): i for i, c in enumerate(self.cell_id)}


@dataclasses.dataclass(frozen=True)
class Measurements:
    """Validated measurement rows (numpy, one entry per kept row).

    Attributes:
        source: the file.
        cells: the topology the rows refer to.
        roles: the column roles used.
        periods: sorted unique period labels (timestamps or snapshot ids).
        period_index: ``[rows]`` position of each row's period in ``periods``.
        cell_index: ``[rows]`` position of each row's cell in ``cells``.
        cm: CM column -> ``[rows]`` float64 values (physical units).
        state: state column -> ``[rows]``.
        targets: target column -> ``[rows]``.
        priors: target column -> ``[rows]`` baseline values (only targets with a prior).
        location: ``[rows]`` "line N"/"row N" of each kept row in the file.
        report: what was dropped (all zero without ``drop_invalid``).
    """

    source: str
    cells: Cells
    roles: ColumnRoles
    periods: np.ndarray
    period_index: np.ndarray
    cell_index: np.ndarray
    cm: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    priors: dict[str, np.ndarray]
    location: np.ndarray
    report: DropReport

    @property
    def n_rows(self) -> int:
        return int(self.cell_index.shape[0])


# --------------------------------------------------------------------------- raw table reading
@dataclasses.dataclass
class _RawTable:
    source: str
    columns: list[str]
    values: dict[str, list[Any]]
    locations: list[str]


def _read_table(path: str | Path) -> _RawTable:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - re-raised with the file name
            raise DataError(f"{path}: cannot read Parquet ({e})") from None
        values = table.to_pydict()
        n = table.num_rows
        return _RawTable(
            str(path), list(table.column_names), values, [f"row {i + 1}" for i in range(n)]
        )
    if suffix in (".csv", ".txt"):
        with open(path, newline="") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path}: empty file (no header line)") from None
            header = [h.strip() for h in header]
            values: dict[str, list[Any]] = {h: [] for h in header}
            locations: list[str] = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}: line {reader.line_num}: {len(row)} fields, "
                        f"header has {len(header)}"
                    )
                for h, v in zip(header, row, strict=True):
                    values[h].append(v.strip())
                locations.append(f"line {reader.line_num}")
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise DataError(f"{path}: duplicate column(s) {dup} in the header")
        return _RawTable(str(path), header, values, locations)
    raise DataError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def _as_float(v: Any) -> float:
    """Convert one cell to float; '' / None -> NaN; raises ValueError on non-numbers."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        raise ValueError("boolean")
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        if s == "" or s.lower() in ("nan", "na", "null", "none"):
            return math.nan
        return float(s)
    raise ValueError(type(v).__name__)


def _as_int(v: Any) -> int:
    f = _as_float(v)
    if not math.isfinite(f) or f != int(f):
        raise ValueError("not an integer")
    return int(f)


def _period_label(v: Any) -> Any:
    if v is None or (isinstance(v, str) and not v.strip()):
        raise ValueError("empty")
    if isinstance(v, float) and math.isnan(v):
        raise ValueError("NaN")
    if isinstance(v, str):
        try:
            return _as_int(v)
        except ValueError:
            return v.strip()
    if isinstance(v, (int, np.integer)):
        return int(v)
    return v


def _where(table: _RawTable, i: int, column: str) -> str:
    return f"{table.source}: {table.locations[i]}, column {column!r}"


def _check_columns(table: _RawTable, required: Sequence[str], known: set[str], what: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(
            f"{table.source}: missing required column(s) {missing} for {what}; "
            f"found {table.columns}"
        )
    unknown = [c for c in table.columns if c not in known]
    if unknown:
        raise DataError(
            f"{table.source}: unknown column(s) {unknown}: not in dtwin.schema nor in the column "
            "roles; fix the name or declare them in ColumnRoles(ignore=...)"
        )


def _bounds_message(schema: CMSchema, name: str, value: float) -> str:
    p = schema[name]
    hint = " (wrong units?)" if abs(value) > 2 * max(abs(p.low), abs(p.high)) else ""
    return f"value {value:g} {p.unit} outside the CM schema's bounds [{p.low:g}, {p.high:g}]{hint}"


# --------------------------------------------------------------------------- cells.csv
def load_cells(
    path: str | Path,
    *,
    cm_columns: Sequence[str] = tuple(CM_COLUMNS),
    schema: CMSchema = DEFAULT_CM_SCHEMA,
) -> Cells:
    """Load and validate ``cells.csv`` (or a Parquet file with the same columns).

    Args:
        path: the file.
        cm_columns: the CM columns it must carry (the current CM per cell).
        schema: CM schema whose bounds the CM must respect.

    Returns:
        `Cells`, in file order.

    Raises:
        DataError: missing/unknown columns, non-numeric values, NaN, duplicate ``cell_id``,
            unknown ``area_type``, non-positive height/carrier/bandwidth, CM out of bounds;
            the message names file, line and column.
    """
    _check_cm_columns(cm_columns, schema, str(path))
    table = _read_table(path)
    required = [*CELL_COLUMNS, *cm_columns]
    _check_columns(table, required, set(required) | set(ALL_COLUMNS), "cells.csv")
    n = len(table.locations)
    if n == 0:
        raise DataError(f"{table.source}: no cells (no data rows)")
    ints = {c: np.zeros(n, np.int64) for c in ("cell_id", "site_id")}
    floats = {
        c: np.zeros(n, np.float64)
        for c in (
            "x_m",
            "y_m",
            "height_m",
            "azimuth_deg",
            "carrier_hz",
            "bandwidth_hz",
            *cm_columns,
        )
    }
    area = np.empty(n, dtype=object)
    seen: dict[int, int] = {}
    for i in range(n):
        for c in ints:
            try:
                ints[c][i] = _as_int(table.values[c][i])
            except ValueError:
                raise DataError(
                    f"{_where(table, i, c)}: expected an integer, got {table.values[c][i]!r}"
                ) from None
        for c in floats:
            try:
                v = _as_float(table.values[c][i])
            except ValueError:
                raise DataError(
                    f"{_where(table, i, c)}: expected a number, got {table.values[c][i]!r}"
                ) from None
            if not math.isfinite(v):
                raise DataError(f"{_where(table, i, c)}: missing or non-finite value")
            floats[c][i] = v
        for c in ("height_m", "carrier_hz", "bandwidth_hz"):
            if floats[c][i] <= 0:
                raise DataError(f"{_where(table, i, c)}: must be > 0, got {floats[c][i]:g}")
        for c in cm_columns:
            p = schema[c]
            if not p.low <= floats[c][i] <= p.high:
                raise DataError(
                    f"{_where(table, i, c)}: {_bounds_message(schema, c, floats[c][i])}"
                )
        a = str(table.values["area_type"][i]).strip().lower()
        if a not in AREA_TYPES:
            raise DataError(
                f"{_where(table, i, 'area_type')}: unknown area type {a!r}; "
                f"allowed {list(AREA_TYPES)}"
            )
        area[i] = a
        cid = int(ints["cell_id"][i])
        if not _INT32_MIN <= cid <= _INT32_MAX:
            raise DataError(
                f"{_where(table, i, 'cell_id')}: cell_id {cid} is outside the int32 range the "
                "surrogate holds cell ids in; renumber the cells (e.g. 1..n) in the cells file "
                "and the measurements"
            )
        if cid in seen:
            raise DataError(
                f"{_where(table, i, 'cell_id')}: duplicate cell_id {cid} "
                f"(first at {table.locations[seen[cid]]})"
            )
        seen[cid] = i
    _check_co_site(table, ints["site_id"], floats["x_m"], floats["y_m"])
    return Cells(
        source=table.source,
        cell_id=ints["cell_id"],
        site_id=ints["site_id"],
        x_m=floats["x_m"],
        y_m=floats["y_m"],
        height_m=floats["height_m"],
        azimuth_deg=floats["azimuth_deg"],
        carrier_hz=floats["carrier_hz"],
        bandwidth_hz=floats["bandwidth_hz"],
        area_type=area.astype(str),
        cm={c: floats[c] for c in cm_columns},
    )


def _check_co_site(table: _RawTable, site_id: np.ndarray, x_m: np.ndarray, y_m: np.ndarray) -> None:
    first: dict[int, int] = {}
    for i, s in enumerate(site_id):
        j = first.setdefault(int(s), i)
        if abs(x_m[i] - x_m[j]) > 1.0 or abs(y_m[i] - y_m[j]) > 1.0:
            raise DataError(
                f"{_where(table, i, 'x_m')}: site {int(s)} has position ({x_m[i]:g}, {y_m[i]:g}) m "
                f"but ({x_m[j]:g}, {y_m[j]:g}) m at {table.locations[j]}"
            )


def _check_cm_columns(cm_columns: Sequence[str], schema: CMSchema, source: str) -> None:
    bad = [c for c in cm_columns if c not in schema]
    if bad:
        raise DataError(
            f"{source}: CM column(s) {bad} are not parameters of the CM schema {list(schema.names)}"
        )


# --------------------------------------------------------------------------- measurements
def load_measurements(
    path: str | Path,
    cells: Cells | None = None,
    roles: ColumnRoles | None = None,
    *,
    schema: CMSchema = DEFAULT_CM_SCHEMA,
    drop_invalid: bool = False,
) -> Measurements:
    """Load and validate per-cell measurements (commercial PM export or twin sweep).

    Args:
        path: Parquet or CSV file, one row per cell per reporting period.
        cells: the topology (`load_cells`). ``None`` for twin files: the topology is then read
            from the geometry columns of the file (``site_id, x_m, y_m, height_m, azimuth_deg,
            area_type``, constant per cell).
        roles: column roles (default `ColumnRoles()`).
        schema: CM schema whose bounds the CM columns must respect.
        drop_invalid: exclude invalid rows and report them in `Measurements.report` instead of
            raising. File-level problems (missing/unknown columns) always raise.

    Returns:
        `Measurements`.

    Raises:
        DataError: naming file, row/line and column, for: missing or unknown columns, values of
            the wrong type (``bad_value``), a ``cell_id`` not in ``cells`` (``unknown_cell``),
            CM outside the schema's bounds (``cm_out_of_bounds``), NaN in a CM/state/prior
            column (``nan_input``) or in a target (``nan_target``), and duplicate
            (cell_id, period) rows (``duplicate``).
    """
    roles = ColumnRoles() if roles is None else roles
    table = _read_table(path)
    _check_cm_columns(roles.cm, schema, table.source)
    period = roles.period
    if period is None:
        period = next((c for c in ("timestamp", "snapshot_id") if c in table.columns), None)
        if period is None:
            raise DataError(
                f"{table.source}: missing required column 'timestamp' (commercial data) or "
                f"'snapshot_id' (twin data); found {table.columns}"
            )
    inputs = [*roles.cm, *roles.state, *roles.priors.values()]
    required = ["cell_id", period, *inputs, *roles.targets]
    if cells is None:
        required += [c for c in _TWIN_CELL_COLUMNS if c not in required]
    known = set(ALL_COLUMNS) | {"timestamp"} | set(required) | set(roles.ignore)
    _check_columns(table, required, known, "measurements")
    n = len(table.locations)
    if cells is None:
        cells = _cells_from_rows(table, roles.cm, schema)
    cell_pos = cells.index()

    reasons: list[str | None] = [None] * n
    messages: list[str | None] = [None] * n

    def _flag(i: int, reason: str, msg: str) -> None:
        if not drop_invalid:
            raise DataError(msg)
        if reasons[i] is None:
            reasons[i], messages[i] = reason, msg

    float_cols = [*inputs, *roles.targets]
    vals = {c: np.full(n, np.nan) for c in float_cols}
    cidx = np.full(n, -1, np.int64)
    plabel: list[Any] = [None] * n
    seen: dict[tuple[int, Any], int] = {}
    for i in range(n):
        try:
            cid = _as_int(table.values["cell_id"][i])
        except ValueError:
            _flag(
                i,
                "bad_value",
                f"{_where(table, i, 'cell_id')}: expected an integer, got "
                f"{table.values['cell_id'][i]!r}",
            )
            continue
        try:
            plabel[i] = _period_label(table.values[period][i])
        except ValueError as e:
            _flag(i, "bad_value", f"{_where(table, i, period)}: invalid period ({e})")
            continue
        bad = False
        for c in float_cols:
            try:
                vals[c][i] = _as_float(table.values[c][i])
            except ValueError:
                _flag(
                    i,
                    "bad_value",
                    f"{_where(table, i, c)}: expected a number, got {table.values[c][i]!r}",
                )
                bad = True
                break
        if bad:
            continue
        if cid not in cell_pos:
            _flag(
                i,
                "unknown_cell",
                f"{_where(table, i, 'cell_id')}: cell_id {cid} is not in {cells.source}",
            )
            continue
        cidx[i] = cell_pos[cid]
        for c in inputs:
            if not math.isfinite(vals[c][i]):
                _flag(i, "nan_input", f"{_where(table, i, c)}: missing or non-finite input value")
                bad = True
                break
        if bad:
            continue
        for c in roles.cm:
            p = schema[c]
            if not p.low <= vals[c][i] <= p.high:
                _flag(
                    i,
                    "cm_out_of_bounds",
                    f"{_where(table, i, c)}: {_bounds_message(schema, c, vals[c][i])}",
                )
                bad = True
                break
        if bad:
            continue
        for c in roles.targets:
            if not math.isfinite(vals[c][i]):
                _flag(i, "nan_target", f"{_where(table, i, c)}: target is NaN or missing")
                bad = True
                break
        if bad:
            continue
        key = (cid, plabel[i])
        if key in seen:
            _flag(
                i,
                "duplicate",
                f"{_where(table, i, 'cell_id')}: duplicate row for cell_id {cid}, "
                f"{period} {plabel[i]!r} (first at {table.locations[seen[key]]})",
            )
            continue
        seen[key] = i

    keep = np.array([r is None for r in reasons], bool)
    if not keep.any():
        raise DataError(f"{table.source}: no valid rows ({n} read)")
    counts = {r: 0 for r in DROP_REASONS}
    examples: dict[str, list[str]] = {r: [] for r in DROP_REASONS}
    for r, m in zip(reasons, messages, strict=True):
        if r is not None:
            counts[r] += 1
            if len(examples[r]) < 5:
                examples[r].append(m)
    report = DropReport(table.source, n, int(keep.sum()), counts, examples)
    kept_labels = [plabel[i] for i in range(n) if keep[i]]
    try:
        periods = sorted(set(kept_labels))
    except TypeError:
        raise DataError(
            f"{table.source}: column {period!r} mixes numbers and text; use one format"
        ) from None
    ppos = {p: j for j, p in enumerate(periods)}
    return Measurements(
        source=table.source,
        cells=cells,
        roles=roles,
        periods=np.array(periods, dtype=object),
        period_index=np.array([ppos[p] for p in kept_labels], np.int64),
        cell_index=cidx[keep],
        cm={c: vals[c][keep] for c in roles.cm},
        state={c: vals[c][keep] for c in roles.state},
        targets={c: vals[c][keep] for c in roles.targets},
        priors={t: vals[c][keep] for t, c in roles.priors.items()},
        location=np.array(table.locations, dtype=object)[keep],
        report=report,
    )


def _cells_from_rows(table: _RawTable, cm_columns: Sequence[str], schema: CMSchema) -> Cells:
    """Topology of a twin file: geometry columns, which must be constant per cell."""
    first: dict[int, int] = {}
    for i in range(len(table.locations)):
        try:
            cid = _as_int(table.values["cell_id"][i])
        except ValueError:
            raise DataError(
                f"{_where(table, i, 'cell_id')}: expected an integer, got "
                f"{table.values['cell_id'][i]!r}"
            ) from None
        j = first.setdefault(cid, i)
        if j != i:
            for c in _TWIN_CELL_COLUMNS:
                if str(table.values[c][i]) != str(table.values[c][j]):
                    raise DataError(
                        f"{_where(table, i, c)}: geometry of cell {cid} changes "
                        f"({table.values[c][i]!r} vs {table.values[c][j]!r} "
                        f"at {table.locations[j]})"
                    )
    rows = sorted(first.values())
    n = len(rows)
    out: dict[str, np.ndarray] = {}
    for c in ("x_m", "y_m", "height_m", "azimuth_deg"):
        arr = np.zeros(n)
        for k, i in enumerate(rows):
            try:
                arr[k] = _as_float(table.values[c][i])
            except ValueError:
                raise DataError(
                    f"{_where(table, i, c)}: expected a number, got {table.values[c][i]!r}"
                ) from None
            if not math.isfinite(arr[k]):
                raise DataError(f"{_where(table, i, c)}: missing or non-finite value")
        out[c] = arr
    site = np.zeros(n, np.int64)
    area = []
    for k, i in enumerate(rows):
        try:
            site[k] = _as_int(table.values["site_id"][i])
        except ValueError:
            raise DataError(f"{_where(table, i, 'site_id')}: expected an integer") from None
        a = str(table.values["area_type"][i]).strip().lower()
        if a not in AREA_TYPES:
            raise DataError(
                f"{_where(table, i, 'area_type')}: unknown area type {a!r}; "
                f"allowed {list(AREA_TYPES)}"
            )
        area.append(a)
    cell_id = np.array([_as_int(table.values["cell_id"][i]) for i in rows], np.int64)
    nan = np.full(n, np.nan)
    return Cells(
        source=table.source,
        cell_id=cell_id,
        site_id=site,
        x_m=out["x_m"],
        y_m=out["y_m"],
        height_m=out["height_m"],
        azimuth_deg=out["azimuth_deg"],
        carrier_hz=nan,
        bandwidth_hz=nan.copy(),
        area_type=np.array(area, dtype=str),
        cm={c: np.full(n, schema[c].default) for c in cm_columns},
    )


def measurements_from_columns(
    columns: Mapping[str, Sequence[Any]],
    path: str | Path,
    *,
    fmt: str = "parquet",
) -> Path:
    """Write a column mapping to ``path`` (Parquet or CSV) so it can be loaded back.

    A convenience for generators (tests, twin sweeps) that build tables in memory.
    """
    import pyarrow as pa

    path = Path(path)
    table = pa.table({k: list(v) for k, v in columns.items()})
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    else:
        raise ValueError(f"measurements_from_columns: fmt must be 'parquet' or 'csv', got {fmt!r}")
    return path
