"""Loader for the UCC 5G production data set (per-second UE measurements, commercial network).

Raca, Leahy, Sreenan, Quinlan, "Beyond Throughput, The Next Generation: A 5G Dataset with
Channel and Context Metrics", ACM MMSys 2020 (public repository ``uccmisl/5Gdataset``, GPL-3.0;
read it from its location, never copy it into this repository). One CSV per session, about one
row per second, columns ``Timestamp, Longitude, Latitude, Speed, Operatorname, CellID,
NetworkMode, RSRP, RSRQ, SNR, CQI, RSSI, DL_bitrate, UL_bitrate, State, ...``; ``-`` = missing.

`load_ucc_sessions` validates the header of every file, parses the columns used here, and
excludes rows for explicit, counted reasons (missing value, network mode, activity state,
physically impossible value); nothing is dropped silently: the `LoadReport` lists every
exclusion by reason and by file. Units are converted at this boundary: ``DL_bitrate`` (kbit/s)
becomes ``dl_mbps``.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REQUIRED_COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "Speed",
    "CellID",
    "NetworkMode",
    "RSRP",
    "RSRQ",
    "SNR",
    "CQI",
    "DL_bitrate",
    "State",
)
"""Columns every session file must have (header check)."""

NUMERIC_COLUMNS: dict[str, tuple[str, float, float]] = {
    # source column -> (output name, lowest valid, highest valid)
    "SNR": ("snr_db", -30.0, 50.0),
    "CQI": ("cqi", 0.0, 15.0),
    "RSRP": ("rsrp_dbm", -156.0, -31.0),  # TS 38.133 / 36.133 reporting range
    "RSRQ": ("rsrq_db", -43.0, 20.0),
    "Speed": ("speed_kmh", 0.0, 400.0),
    "DL_bitrate": ("dl_kbps", 0.0, 5.0e6),
}
"""Parsed numeric columns with their valid ranges (rows outside are excluded and counted)."""

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ucc-5g-production"


@dataclass
class LoadReport:
    """What `load_ucc_sessions` read and why rows were excluded."""

    files: int = 0
    rows_read: int = 0
    rows_kept: int = 0
    excluded: Counter = field(default_factory=Counter)
    """reason -> rows, e.g. ``"mode=LTE"``, ``"state=I"``, ``"missing:SNR"``, ``"range:RSRP"``."""
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)
    """file (relative to the root) -> {"read": n, "kept": n}."""

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_excluded": self.rows_read - self.rows_kept,
            "excluded_by_reason": dict(sorted(self.excluded.items())),
            "per_file": self.per_file,
        }


def _to_float(text: str) -> float:
    t = text.strip()
    if t in ("", "-"):
        return math.nan
    return float(t)


def load_ucc_sessions(
    root: str | Path = DEFAULT_ROOT,
    folders: tuple[str, ...] = ("Download-Driving",),
    network_modes: tuple[str, ...] | None = ("5G",),
    states: tuple[str, ...] | None = ("D",),
    required: tuple[str, ...] = ("SNR", "CQI", "RSRP", "Speed", "DL_bitrate"),
) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Read and validate the session CSVs under ``root/<folder>/**.csv``.

    Row exclusion, in this order (each row counted once, under the first reason):
    ``mode=<X>`` (``NetworkMode`` not in ``network_modes``), ``state=<X>`` (``State`` not in
    ``states``, e.g. ``I`` = idle), ``missing:<col>`` (a ``required`` column is ``-``/empty),
    ``range:<col>`` (outside `NUMERIC_COLUMNS`'s valid range, e.g. RSRP = -200 dBm sentinels).

    Args:
        root: the data set folder (holding ``Download-Driving/`` etc.).
        folders: sub-folders to read (recursively).
        network_modes: modes kept (None = all).
        states: activity states kept (None = all).
        required: source columns that must be present on a kept row.

    Returns:
        ``(data, report)``: ``data`` maps ``snr_db, cqi, rsrp_dbm, rsrq_db, speed_kmh, dl_kbps,
        dl_mbps`` (float64), ``cell_id`` (int64), ``session`` (int64 index into
        ``data["files"]``), ``files`` (array of file paths relative to ``root``) to arrays.

    Raises:
        FileNotFoundError: ``root`` or a folder is missing, or no CSV is found.
        ValueError: a file lacks a required column (names the file and column), or a cell
            holds non-numeric text (names file, line and column).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"UCC data set folder not found: {root}")
    paths: list[Path] = []
    for folder in folders:
        d = root / folder
        if not d.is_dir():
            raise FileNotFoundError(f"folder {folder!r} not found under {root}")
        paths += sorted(d.rglob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no CSV files under {root} / {list(folders)}")
    unknown = [c for c in required if c not in NUMERIC_COLUMNS]
    if unknown:
        raise ValueError(f"required: unknown column(s) {unknown}; known {list(NUMERIC_COLUMNS)}")

    report = LoadReport(files=len(paths))
    cols: dict[str, list] = {v[0]: [] for v in NUMERIC_COLUMNS.values()}
    cols["cell_id"], cols["session"] = [], []
    for s_idx, path in enumerate(paths):
        rel = str(path.relative_to(root))
        n_read = n_kept = 0
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ValueError(f"{rel}: empty file (no header)") from None
            missing_cols = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing_cols:
                raise ValueError(f"{rel}: missing column(s) {missing_cols}; header is {header}")
            idx = {c: header.index(c) for c in header}
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                n_read += 1
                if len(row) < len(header):
                    report.excluded["short_row"] += 1
                    continue
                mode, state = row[idx["NetworkMode"]].strip(), row[idx["State"]].strip()
                if network_modes is not None and mode not in network_modes:
                    report.excluded[f"mode={mode}"] += 1
                    continue
                if states is not None and state not in states:
                    report.excluded[f"state={state}"] += 1
                    continue
                vals = {}
                for src in NUMERIC_COLUMNS:
                    try:
                        vals[src] = _to_float(row[idx[src]]) if src in idx else math.nan
                    except ValueError:
                        raise ValueError(
                            f"{rel}, line {line_no}, column {src!r}: not a number: "
                            f"{row[idx[src]]!r}"
                        ) from None
                reason = next((f"missing:{c}" for c in required if math.isnan(vals[c])), None)
                if reason is None:
                    for src, (_, lo, hi) in NUMERIC_COLUMNS.items():
                        v = vals[src]
                        if not math.isnan(v) and not lo <= v <= hi:
                            reason = f"range:{src}"
                            break
                if reason is not None:
                    report.excluded[reason] += 1
                    continue
                for src, (name, _, _) in NUMERIC_COLUMNS.items():
                    cols[name].append(vals[src])
                try:
                    cols["cell_id"].append(int(row[idx["CellID"]]))
                except ValueError:
                    cols["cell_id"].append(-1)
                cols["session"].append(s_idx)
                n_kept += 1
        report.per_file[rel] = {"read": n_read, "kept": n_kept}
        report.rows_read += n_read
        report.rows_kept += n_kept
    data = {
        k: np.asarray(v, np.float64) for k, v in cols.items() if k not in ("cell_id", "session")
    }
    data["dl_mbps"] = data["dl_kbps"] / 1000.0
    data["cell_id"] = np.asarray(cols["cell_id"], np.int64)
    data["session"] = np.asarray(cols["session"], np.int64)
    data["files"] = np.asarray([str(p.relative_to(root)) for p in paths])
    return data, report


def split_sessions(
    data: dict[str, np.ndarray], test_fraction: float = 0.3, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split rows by session (file), never by row, so that test sessions are unseen.

    Only sessions that have kept rows are split; at least one goes to each side.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    sessions = np.unique(data["session"])
    if sessions.size < 2:
        raise ValueError(f"need at least 2 sessions with data to split, got {sessions.size}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(sessions)
    n_test = min(max(1, round(test_fraction * sessions.size)), sessions.size - 1)
    test_ids = perm[:n_test]
    is_test = np.isin(data["session"], test_ids)
    row_keys = [k for k, v in data.items() if k != "files" and v.shape == is_test.shape]

    def take(mask):
        out = {k: data[k][mask] for k in row_keys}
        out["files"] = data["files"]
        return out

    return take(~is_test), take(is_test)


__all__ = [
    "LoadReport",
    "NUMERIC_COLUMNS",
    "REQUIRED_COLUMNS",
    "load_ucc_sessions",
    "split_sessions",
]
