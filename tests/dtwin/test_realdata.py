"""Tests of dtwin.realdata (loader validation on synthetic files) and the real-data check
experiment (on ../shared/data, skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dtwin.realdata import load_ucc_sessions, split_sessions

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ucc-5g-production"

HEADER = (
    "Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,CQI,"
    "RSSI,DL_bitrate,UL_bitrate,State"
)


def _write(tmp_path: Path, name: str, rows: list[str], header: str = HEADER) -> None:
    d = tmp_path / "Download-Driving"
    d.mkdir(exist_ok=True)
    (d / name).write_text("\n".join([header, *rows]) + "\n")


def _row(mode="5G", state="D", snr="10.0", cqi="12", rsrp="-90", speed="30", dl="20000"):
    return (
        f"2019.12.14_10.16.30,-8.4,51.9,{speed},B,3,{mode},{rsrp},-11,{snr},{cqi},-60,{dl},5,"
        f"{state}"
    )


def test_loader_counts_exclusions(tmp_path):
    _write(
        tmp_path,
        "a.csv",
        [
            _row(),
            _row(mode="LTE"),
            _row(state="I"),
            _row(snr="-"),
            _row(rsrp="-200"),
            _row(dl="1500", speed="0"),
        ],
    )
    _write(tmp_path, "b.csv", [_row(cqi="-"), _row(), _row(cqi="16")])
    data, rep = load_ucc_sessions(tmp_path)
    assert rep.files == 2 and rep.rows_read == 9 and rep.rows_kept == 3
    assert rep.excluded == {
        "mode=LTE": 1,
        "state=I": 1,
        "missing:SNR": 1,
        "range:RSRP": 1,
        "missing:CQI": 1,
        "range:CQI": 1,
    }
    assert rep.per_file["Download-Driving/a.csv"] == {"read": 6, "kept": 2}
    np.testing.assert_allclose(data["dl_mbps"], [20.0, 1.5, 20.0])
    np.testing.assert_array_equal(data["session"], [0, 0, 1])
    d = rep.as_dict()
    assert d["rows_excluded"] == 6
    # None = keep every mode
    _, rep2 = load_ucc_sessions(tmp_path, network_modes=None)
    assert rep2.rows_kept == 4


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_ucc_sessions(tmp_path / "nope")
    _write(tmp_path, "bad.csv", [_row()], header=HEADER.replace(",SNR", ",SINR"))
    with pytest.raises(ValueError, match=r"bad.csv: missing column\(s\) \['SNR'\]"):
        load_ucc_sessions(tmp_path)
    (tmp_path / "Download-Driving" / "bad.csv").unlink()
    _write(tmp_path, "txt.csv", [_row(), _row(snr="ten")])
    with pytest.raises(ValueError, match="txt.csv, line 3, column 'SNR': not a number: 'ten'"):
        load_ucc_sessions(tmp_path)


def test_split_by_session(tmp_path):
    for i in range(5):
        _write(tmp_path, f"s{i}.csv", [_row(snr=str(i))] * (i + 1))
    data, _ = load_ucc_sessions(tmp_path)
    tr, te = split_sessions(data, 0.4, seed=1)
    assert set(np.unique(tr["session"])).isdisjoint(np.unique(te["session"]))
    assert tr["snr_db"].size + te["snr_db"].size == data["snr_db"].size == 15
    with pytest.raises(ValueError, match="test_fraction"):
        split_sessions(data, 1.0)


@pytest.mark.data
@pytest.mark.slow
def test_proxy_vs_real_small():
    if not DATA.is_dir():
        pytest.skip("../shared/data/ucc-5g-production not available")
    from experiments.proxy_vs_real import run

    out = run(
        DATA, n_splits=1, steps=80, proxies=("shannon_rsrp",), max_sessions=10, progress=False
    )
    rep = out["data_report"]
    assert rep["rows_kept"] > 1000
    assert rep["rows_read"] == rep["rows_kept"] + sum(rep["excluded_by_reason"].values())
    # the documented weak per-second correlation of SNR with throughput
    assert abs(out["feature_pearson_r_with_dl_mbps"]["snr_db"]) < 0.3
    for model, s in out["summary"].items():
        assert np.isfinite(s["mae_mbps"]["mean"]), model
    # Honest bar: a 3-parameter proxy is within 10 % of the MAE of the median-per-SNR-bin
    # baseline on held-out sessions (measured on the full data: ratio ~0.98).
    assert out["summary"]["shannon_rsrp"]["mae_ratio_to_snr_bin_baseline"] < 1.1
