"""Data interface: cells.csv / measurement loading, validation errors, drop report, batching."""

from __future__ import annotations

import csv
from pathlib import Path

import chex
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA
from sim2real import (
    DEMO_CELLS,
    ColumnRoles,
    DataError,
    build_batch,
    load_cells,
    load_measurements,
)

CELL_HEADER = [
    "cell_id", "site_id", "x_m", "y_m", "height_m", "azimuth_deg", "carrier_hz",
    "bandwidth_hz", "area_type", "tilt_deg", "tx_power_dbm", "cio_db",
]  # fmt: skip


def _cell_rows() -> list[dict]:
    rows = []
    for s, (x, area) in enumerate([(0.0, "urban"), (500.0, "suburban")]):
        for j, az in enumerate((30.0, 150.0, 270.0)):
            rows.append(
                dict(cell_id=10 + 3 * s + j, site_id=s, x_m=x, y_m=0.0, height_m=25.0,
                     azimuth_deg=az, carrier_hz=3.5e9, bandwidth_hz=1e8, area_type=area,
                     tilt_deg=6.0, tx_power_dbm=46.0, cio_db=0.0)
            )  # fmt: skip
    return rows


def _write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _meas_rows(cells: list[dict], n_periods: int = 3) -> list[dict]:
    rows = []
    for t in range(n_periods):
        for c in cells:
            rows.append(
                dict(cell_id=c["cell_id"], timestamp=f"2024-01-01T0{t}:00", tilt_deg=6.0 + t,
                     tx_power_dbm=46.0, cio_db=0.0, hour=t, active_ues=5 + t,
                     offered_load_mbps=40.0 + c["cell_id"], dl_throughput_mbps=30.0 + t)
            )  # fmt: skip
    return rows


@pytest.fixture
def cells_file(tmp_path) -> Path:
    return _write_csv(tmp_path / "cells.csv", _cell_rows())


# ------------------------------------------------------------------ cells.csv
def test_demo_cells_load():
    cells = load_cells(DEMO_CELLS)
    assert 24 <= cells.n_cells <= 80
    assert {"metro", "urban", "suburban"} <= set(cells.area_type)
    # three sectors per site, boresights 30/150/270 deg
    for s in np.unique(cells.site_id):
        np.testing.assert_array_equal(
            np.sort(cells.azimuth_deg[cells.site_id == s]), [30, 150, 270]
        )
    DEFAULT_CM_SCHEMA.validate(cells.cm, n_cells=cells.n_cells)


@pytest.mark.parametrize(
    "mutate, line, column, words",
    [
        (lambda r: r[2].update(tilt_deg=120.0), 4, "tilt_deg", "wrong units"),
        (lambda r: r[1].update(cell_id=10), 3, "cell_id", "duplicate"),
        (lambda r: r[1].update(cell_id=2**31), 3, "cell_id", "int32"),  # e.g. a 36-bit NCI
        (lambda r: r[0].update(x_m="abc"), 2, "x_m", "number"),
        (lambda r: r[4].update(area_type="jungle"), 6, "area_type", "area type"),
        (lambda r: r[3].update(height_m=""), 5, "height_m", "missing"),
    ],
)
def test_cells_bad_values_name_file_line_column(tmp_path, mutate, line, column, words):
    rows = _cell_rows()
    mutate(rows)
    path = _write_csv(tmp_path / "cells.csv", rows)
    with pytest.raises(DataError) as e:
        load_cells(path)
    msg = str(e.value)
    assert str(path) in msg and f"line {line}" in msg and repr(column) in msg and words in msg


def test_cells_missing_and_unknown_columns(tmp_path):
    rows = _cell_rows()
    path = _write_csv(tmp_path / "a.csv", rows, [h for h in CELL_HEADER if h != "azimuth_deg"])
    with pytest.raises(DataError, match=r"missing required column\(s\) \['azimuth_deg'\]"):
        load_cells(path)
    for r in rows:
        r["tilt"] = 3
    path = _write_csv(tmp_path / "b.csv", rows)
    with pytest.raises(DataError, match=r"unknown column\(s\) \['tilt'\]"):
        load_cells(path)


# ------------------------------------------------------------------ measurements
def test_measurements_load_csv_and_parquet(tmp_path, cells_file):
    cells = load_cells(cells_file)
    rows = _meas_rows(_cell_rows())
    m_csv = load_measurements(_write_csv(tmp_path / "m.csv", rows), cells)
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    pq.write_table(table, tmp_path / "m.parquet")
    m_pq = load_measurements(tmp_path / "m.parquet", cells)
    for m in (m_csv, m_pq):
        assert m.n_rows == 18 and len(m.periods) == 3
        np.testing.assert_allclose(m.cm["tilt_deg"], [r["tilt_deg"] for r in rows])
        np.testing.assert_allclose(
            m.targets["dl_throughput_mbps"], [r["dl_throughput_mbps"] for r in rows]
        )
        assert m.report.n_dropped == 0


BAD_ROWS = [
    # (mutation on row index 4 -> file line 6, reason, column, words)
    (dict(cell_id=999), "unknown_cell", "cell_id", "not in"),
    (dict(tilt_deg=120.0), "cm_out_of_bounds", "tilt_deg", "wrong units"),
    (dict(tx_power_dbm=20.0), "cm_out_of_bounds", "tx_power_dbm", "outside"),
    (dict(dl_throughput_mbps="nan"), "nan_target", "dl_throughput_mbps", "NaN"),
    (dict(active_ues="many"), "bad_value", "active_ues", "number"),
    (dict(hour=""), "nan_input", "hour", "missing"),
    (dict(cell_id=10, timestamp="2024-01-01T00:00"), "duplicate", "cell_id", "duplicate"),
]


@pytest.mark.parametrize("change, reason, column, words", BAD_ROWS)
def test_measurement_errors_name_file_line_column(
    tmp_path, cells_file, change, reason, column, words
):
    cells = load_cells(cells_file)
    rows = _meas_rows(_cell_rows())
    rows[4].update(change)
    path = _write_csv(tmp_path / "m.csv", rows)
    with pytest.raises(DataError) as e:
        load_measurements(path, cells)
    msg = str(e.value)
    assert str(path) in msg and "line 6" in msg and repr(column) in msg and words in msg, msg
    m = load_measurements(path, cells, drop_invalid=True)
    assert m.report.counts[reason] == 1
    assert sum(m.report.counts.values()) == 1 == m.report.n_dropped
    assert m.n_rows == len(rows) - 1
    assert "line 6" in m.report.examples[reason][0]


def test_drop_report_counts_several_reasons(tmp_path, cells_file):
    cells = load_cells(cells_file)
    rows = _meas_rows(_cell_rows())
    rows[0]["cell_id"] = 5
    rows[1]["cell_id"] = 6
    rows[2]["tilt_deg"] = 99
    rows[7]["dl_throughput_mbps"] = ""
    rows[8].update(cell_id=rows[9]["cell_id"], timestamp=rows[9]["timestamp"])
    m = load_measurements(_write_csv(tmp_path / "m.csv", rows), cells, drop_invalid=True)
    assert m.report.counts == {
        "bad_value": 0, "unknown_cell": 2, "cm_out_of_bounds": 1, "nan_input": 0,
        "nan_target": 1, "duplicate": 1,
    }  # fmt: skip
    assert m.n_rows == len(rows) - 5


def test_measurement_missing_unknown_columns(tmp_path, cells_file):
    cells = load_cells(cells_file)
    rows = _meas_rows(_cell_rows())
    header = [h for h in rows[0] if h != "dl_throughput_mbps"]
    with pytest.raises(DataError, match=r"missing required column\(s\) \['dl_throughput_mbps'\]"):
        load_measurements(_write_csv(tmp_path / "a.csv", rows, header), cells)
    header = [h for h in rows[0] if h != "timestamp"]
    with pytest.raises(DataError, match="'timestamp'"):
        load_measurements(_write_csv(tmp_path / "b.csv", rows, header), cells)
    for r in rows:
        r["dl_thruput"] = 1.0
    path = _write_csv(tmp_path / "c.csv", rows)
    with pytest.raises(DataError, match=r"unknown column\(s\) \['dl_thruput'\]"):
        load_measurements(path, cells, drop_invalid=True)
    m = load_measurements(path, cells, ColumnRoles(ignore=("dl_thruput",)))
    assert m.n_rows == len(rows)


def test_custom_roles_and_prior(tmp_path, cells_file):
    cells = load_cells(cells_file)
    rows = _meas_rows(_cell_rows())
    for r in rows:
        r["analytic_tput"] = 25.0
        r["mean_sinr_db"] = 7.0
    roles = ColumnRoles(
        state=("hour", "offered_load_mbps"),
        targets=("dl_throughput_mbps", "mean_sinr_db"),
        priors={"dl_throughput_mbps": "analytic_tput"},
    )
    m = load_measurements(_write_csv(tmp_path / "m.csv", rows), cells, roles)
    b = build_batch(m, k=2)
    assert b.target_names == ("dl_throughput_mbps", "mean_sinr_db")
    assert b.log_targets == (True, False)
    np.testing.assert_allclose(b.prior[..., 0], np.log(25.0), rtol=1e-6)
    np.testing.assert_allclose(b.prior[..., 1], 0.0)
    with pytest.raises(ValueError, match="not targets"):
        ColumnRoles(priors={"coverage": "x"})


def test_twin_file_without_cells(tmp_path):
    rows = _meas_rows(_cell_rows())
    geo = {c["cell_id"]: c for c in _cell_rows()}
    for r in rows:
        g = geo[r["cell_id"]]
        r.update(snapshot_id=int(r.pop("timestamp")[12]), site_id=g["site_id"], x_m=g["x_m"],
                 y_m=g["y_m"], height_m=25.0, azimuth_deg=g["azimuth_deg"],
                 area_type=g["area_type"], isd_m=500.0)  # fmt: skip
    path = _write_csv(tmp_path / "twin.csv", rows)
    m = load_measurements(path)
    assert m.cells.n_cells == 6 and list(m.periods) == [0, 1, 2]
    rows[7]["x_m"] = 123.0
    with pytest.raises(DataError, match="geometry of cell"):
        load_measurements(_write_csv(tmp_path / "twin2.csv", rows))


def test_build_batch_scatters_rows(tmp_path, cells_file):
    cells = load_cells(cells_file)
    rows = _meas_rows(_cell_rows())
    del rows[5]  # cell 15 missing in period 0
    m = load_measurements(_write_csv(tmp_path / "m.csv", rows), cells)
    b = build_batch(m, k=2)
    chex.assert_shape(b.state, (3, 6, 4))  # hour -> sin, cos; 2 x log1p
    chex.assert_shape(b.cm_unit, (3, 6, 3))
    chex.assert_shape(b.targets, (3, 6, 1))
    chex.assert_shape(b.graph.index, (6, 4))  # 2 co-site + 2 nearest
    chex.assert_type([b.state, b.cm_unit, b.targets], np.float32)
    assert not bool(b.mask[0, 5]) and int(b.mask.sum()) == 17
    # period 2 (tilt 8 deg) of cell 12 -> unit (8 - 0) / 15
    np.testing.assert_allclose(b.cm_unit[2, 2, 0], 8.0 / 15.0, rtol=1e-6)
    np.testing.assert_allclose(b.targets[1, 3, 0], 31.0)
    np.testing.assert_allclose(b.state[1, 0, 2], np.log1p(6.0), rtol=1e-6)
    np.testing.assert_allclose(
        b.state[1, 0, :2], [np.sin(2 * np.pi / 24), np.cos(2 * np.pi / 24)], rtol=1e-5
    )


def test_build_batch_local_state_is_the_neighbourhood_mean(tmp_path, cells_file):
    """Default roles feed ``active_ues`` / ``offered_load_mbps`` as their mean over the cell and
    its graph neighbours; ``local_state=()`` keeps the per-cell counters."""
    from sim2real import ColumnRoles

    cells = load_cells(cells_file)
    m = load_measurements(_write_csv(tmp_path / "m.csv", _meas_rows(_cell_rows())), cells)
    b = build_batch(m, k=2)
    assert b.state_names == (
        "hour_sin", "hour_cos", "log1p_local_active_ues", "log1p_local_offered_load_mbps"
    )  # fmt: skip
    # cell 10: co-site 11, 12 and the two nearest others (13, 14 at 500 m; stable order)
    # offered load 40 + cell_id -> mean(50, 51, 52, 53, 54) = 52
    np.testing.assert_allclose(b.state[1, 0, 3], np.log1p(52.0), rtol=1e-6)
    per_cell = load_measurements(tmp_path / "m.csv", cells, roles=ColumnRoles(local_state=()))
    b2 = build_batch(per_cell, k=2)
    np.testing.assert_allclose(b2.state[1, 0, 3], np.log1p(50.0), rtol=1e-6)
    assert b2.state_names[2] == "log1p_active_ues"


def test_neighbourhood_mean_closed_form():
    from sim2real.graph import neighbour_graph, neighbourhood_mean

    # three single-cell sites on a line, k=1: 0 <-> 1, 1 -> 0 (tie broken by order), 2 -> 1
    g = neighbour_graph(np.array([0.0, 100.0, 250.0]), np.zeros(3), np.zeros(3), np.arange(3), k=1)
    v = np.array([[1.0, 3.0, 8.0]])
    np.testing.assert_allclose(neighbourhood_mean(v, g), [[2.0, 2.0, 5.5]])
    present = np.array([[True, False, True]])
    np.testing.assert_allclose(neighbourhood_mean(v, g, present), [[1.0, 1.0, 8.0]])
