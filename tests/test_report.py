"""The results report (HTML + Markdown) and the benchmark runner."""

from __future__ import annotations

import base64
import json
import struct
import sys
import zlib

import pytest

from experiments import bench_all, report


def _png(width: int = 2, height: int = 1) -> bytes:
    """A valid RGB PNG built by hand (PNG spec, ISO/IEC 15948: signature, IHDR, IDAT, IEND)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


FAKE = {
    "experiment": "table1",
    "config": {"small": True, "steps": 10},
    "seed": 7,
    "machine": {"platform": "TestOS", "devices": ["cpu:0"]},
    "versions": {"jax": "9.9.9"},
    "wall_time_s": 12.5,
    "results": {
        "n_cells": 57,
        "best_method": "sim2real",
        "curve": list(range(100)),
        "methods": {
            "fine_tune": {"mape": 0.2345678, "auc": 0.7},
            "sim2real": {"mape": 0.1234567, "auc": 0.9},
        },
        "misc": {"a": {"b": 1.5}, "c": "x|y"},
    },
}


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "table1.json").write_text(json.dumps(FAKE))
    (tmp_path / "table1.png").write_bytes(_png())
    (tmp_path / "table1_extra.png").write_bytes(_png(1, 1))
    (tmp_path / "my_study.json").write_text(json.dumps({"score": 3, "seed": 1}))
    (tmp_path / "my_study_plot.png").write_bytes(_png())
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "ue_behaviour_small.json").write_text(json.dumps({"results": {"elbo": 1.25}}))
    (tmp_path / "ue_behaviour_map.png").write_bytes(_png(3, 1))
    return tmp_path


def test_report_from_results(results_dir):
    html_path, md_path = report.build_report(results_dir, title="T")
    html = html_path.read_text()
    md = md_path.read_text()
    # Figures embedded as base64 (the HTML is self-contained), linked in the Markdown.
    assert base64.b64encode(_png()).decode() in html
    assert base64.b64encode(_png(1, 1)).decode() in html
    assert "src='table1.png'" not in html and "![table1.png](table1.png)" in md
    # Key numbers: top-level scalars, a 2-D method x metric table, flattened nested dicts.
    for text in ("n_cells", "57", "best_method", "0.2346", "0.1235", "misc", "a.b", "1.5"):
        assert text in html, text
    assert "| sim2real | 0.1235 | 0.9 |" in md
    assert "x\\|y" in md  # Markdown cells escape the pipe
    assert "| curve |" not in md  # long lists are left to the figures
    # Run metadata.
    assert "| seed | 7 |" in md and "9.9.9" in md and "TestOS" in md
    # Unknown experiments get their own section with their figure; bad JSON does not crash.
    assert "my_study" in md and "![my_study_plot.png](my_study_plot.png)" in md
    assert "broken.json could not be read" in md
    # A CI-sized run written as <name>_small.json fills its experiment's section.
    assert "## UE behaviour model (CI-sized run)" in md and "| elbo | 1.25 |" in md
    assert (
        "![ue_behaviour_map.png](ue_behaviour_map.png)" in md and "## ue_behaviour_small" not in md
    )
    # Known experiments without JSON say so.
    assert "not run: results/figure4.json is missing" in md
    assert html.count("not run") >= len(report.EXPERIMENTS) - 1


def test_report_empty_dir(tmp_path):
    html_path, md_path = report.build_report(tmp_path / "new")
    md = md_path.read_text()
    for name in report.EXPERIMENTS:
        assert f"not run: results/{name}.json is missing" in md
    assert "<img" not in html_path.read_text()


def test_figure_owner_longest_prefix(tmp_path):
    from pathlib import Path

    names = ["bench", "bench_opt", "table1"]
    assert report._figure_owner(Path("bench_opt_latency.png"), names) == "bench_opt"
    assert report._figure_owner(Path("bench_x.png"), names) == "bench"
    assert report._figure_owner(Path("table10.png"), names) is None


def test_fmt():
    assert report.fmt(0.000123456) == "0.0001235"
    assert report.fmt(None) == "—" and report.fmt(True) == "true"
    assert report.fmt([1, 2.5]) == "[1, 2.5]"


def test_report_main_writes(tmp_path):
    assert report.main(["--results", str(tmp_path), "--title", "X"]) == 0
    assert (tmp_path / "report.md").read_text().startswith("# X")


# --------------------------------------------------------------------------- bench_all
def test_discover_lists_bench_scripts():
    found = bench_all.discover()
    on_disk = sorted(p.stem for p in (bench_all.REPO / "experiments").glob("bench_*.py"))
    assert found == [n for n in on_disk if n != "bench_all"]


def test_failing_benchmark_is_recorded(tmp_path):
    e = bench_all.run_benchmark(
        "bench_does_not_exist", small=True, results_dir=tmp_path, timeout_s=60
    )
    assert e["status"] == "failed" and e["returncode"] != 0
    assert "No module named" in e["output_tail"]
    assert "--small" in e["command"] and sys.executable not in e["command"]


def test_headline_and_markdown():
    rec = {
        "timings_s": {"run_median": 3.3, "all": [1, 2]},
        "results": {"n": 5, "r": {"ok": 1}},
        "config": {"x": 1},
    }
    nums = bench_all._headline(rec)
    assert nums == {"timings_s.run_median": 3.3, "results.n": 5, "results.r.ok": 1}
    md = bench_all.summary_markdown(
        {"bench_x": {"status": "ok", "wall_time_s": 1.0, "numbers": nums}}
    )
    assert "| bench_x | ok | 1 | timings_s.run_median = 3.3" in md
