from pathlib import Path

import numpy as np
import pytest

from dtwin.ue.cvae import N_UE_FEATURES
from dtwin.ue.data import (
    build_ue_training_set,
    cluster_area_types,
    load_c2tm,
    load_ucc_trace,
    load_ucc_traces,
    pooled_mobility,
    split_traces,
)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "c2tm-city-traffic").exists(), reason="needs ../shared/data"
)

C2TM_HEADER = "bs,thour,users,packets,bytes\n"
UCC_HEADER = "Timestamp,Longitude,Latitude,Speed,Operatorname\n"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_c2tm_grid_and_demand(tmp_path):
    p = _write(
        tmp_path,
        "t.csv",
        C2TM_HEADER
        + "a,2012-08-16 10:00:00+08:00,10,1,3600000000\n"
        + "a,2012-08-16 12:00:00+08:00,20,1,0\n"
        + "b,2012-08-16 11:00:00+08:00,1,1,450\n",
    )
    t = load_c2tm(p)
    assert t.cluster_ids == ("a", "b")
    assert t.users.shape == (2, 3)
    assert np.isnan(t.users[0, 1]) and t.users[1, 1] == 1
    assert t.hour_of_day.tolist() == [10, 11, 12]
    assert t.day_of_week[0] == 3  # 2012-08-16 was a Thursday
    # 3.6e9 bytes by 10 users in an hour = 3.6e8 B * 8 / 3600 s = 0.8 Mbps per user.
    np.testing.assert_allclose(t.per_user_demand_mbps(1.0)[0, 0], 0.8)


@pytest.mark.parametrize(
    "body, match",
    [
        ("a,2012-08-16 10:00:00+08:00,-1,1,5\n", "row 2, column 'users'"),
        ("a,notatime,1,1,5\n", "row 2, column 'thour'"),
        ("a,2012-08-16 10:00:00+08:00,1,1,x\n", "row 2, column 'bytes'"),
        (
            "a,2012-08-16 10:00:00+08:00,1,1,5\na,2012-08-16 10:00:00+08:00,1,1,5\n",
            "row 3: duplicate",
        ),
    ],
)
def test_c2tm_errors_name_row_and_column(tmp_path, body, match):
    with pytest.raises(ValueError, match=match):
        load_c2tm(_write(tmp_path, "t.csv", C2TM_HEADER + body))


def test_c2tm_missing_column_and_file(tmp_path):
    with pytest.raises(ValueError, match="missing column"):
        load_c2tm(_write(tmp_path, "t.csv", "bs,thour,users\n"))
    with pytest.raises(FileNotFoundError, match="shared/data"):
        load_c2tm(tmp_path / "absent.csv")


def test_ucc_heading_closed_form(tmp_path):
    # East 1e-4 deg of longitude, a repeated fix, a skipped row, then north.
    rows = [
        "2019.11.25_15.34.34,0.0000,0.0000,10,B",
        "2019.11.25_15.34.35,0.0001,0.0000,10,B",
        "2019.11.25_15.34.36,0.0001,0.0000,10,B",
        "2019.11.25_15.34.37,0.0002,0.0000,-,B",
        "2019.11.25_15.34.38,0.0001,0.0001,10,B",
    ]
    tr = load_ucc_trace(_write(tmp_path, "s.csv", UCC_HEADER + "\n".join(rows) + "\n"), "driving")
    assert tr.t_s.tolist() == [0, 1, 2, 4]  # the '-' row is skipped
    np.testing.assert_allclose(tr.heading_deg(), [0.0, 0.0, 0.0, 90.0], atol=1e-6)
    assert tr.start_hour == 15


def test_ucc_errors(tmp_path):
    bad = _write(
        tmp_path,
        "b.csv",
        UCC_HEADER + "2019.11.25_15.34.34,0,0,-3,B\n2019.11.25_15.34.35,0,0,1,B\n",
    )
    with pytest.raises(ValueError, match="row 2, column 'Speed'"):
        load_ucc_trace(bad, "driving")
    with pytest.raises(ValueError, match="mode"):
        load_ucc_trace(bad, "walking")
    with pytest.raises(ValueError, match="missing column"):
        load_ucc_trace(_write(tmp_path, "c.csv", "Timestamp,Longitude\n"), "static")


@needs_data
@pytest.mark.data
@pytest.mark.slow
def test_real_data_loads_and_builds_training_set():
    t = load_c2tm()
    assert len(t.cluster_ids) == 159
    assert int(np.isfinite(t.users).sum()) == 60893  # rows of the source file (SOURCE.md)
    assert np.isfinite(t.users).any(axis=0).sum() == 404
    areas = cluster_area_types(t)
    assert np.bincount(areas, minlength=4).min() >= 39  # quartiles
    traces = load_ucc_traces()
    train, test = split_traces(traces)
    assert {tr.mode for tr in traces} == {"driving", "static"} and len(test) > 0
    speed_d, _ = pooled_mobility(traces, "driving")
    speed_s, _ = pooled_mobility(traces, "static")
    assert np.median(speed_d) > 10 * max(np.median(speed_s), 1.0)
    ts = build_ue_training_set(0, t, train, n_cluster_hours=50, ues_per_cluster_hour=4)
    assert ts.x.shape == (200, N_UE_FEATURES) and ts.c.shape == (200, 10)
    assert np.isfinite(ts.x).all() and np.isfinite(ts.c).all()
