"""The ``s2r`` command line: help, config/flag precedence, clear one-line errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dtwin import cli

SUBCOMMANDS = (
    "twin",
    "field",
    "calibrate",
    "train",
    "recommend",
    "evaluate",
    "report",
    "bench",
    "main",
)
CELLS_HEADER = "cell_id,site_id,x_m,y_m,height_m,azimuth_deg,carrier_hz,bandwidth_hz,area_type"


def test_help_lists_subcommands_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "dtwin.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cli.REPO,
    )
    assert out.returncode == 0, out.stderr
    for name in SUBCOMMANDS:
        assert f"    {name} " in out.stdout, name


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: s2r {name}" in text and "--config" in text and "--seed" in text


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


# --------------------------------------------------------------------------- config + flags
def _lines(capsys):
    return [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("would run:")]


def test_evaluate_maps_toml_and_flags(tmp_path, capsys):
    R, S = Path("R").resolve(), Path("S").resolve()  # relative to the user's directory
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[run]\nseed = 4\nresults_dir = "R"\n[evaluate]\nexperiments = ["calibration_38901"]\n'
    )
    assert cli.main(["evaluate", "--config", str(cfg), "--small", "--dry-run"]) == 0
    (line,) = _lines(capsys)
    assert line == f"would run: python -m experiments.calibration_38901 --small --seed 4 --out {R}"
    # A flag beats the TOML, before or after the subcommand.
    assert cli.main(["--seed", "9", "evaluate", "--config", str(cfg), "--dry-run"]) == 0
    assert _lines(capsys) == [
        f"would run: python -m experiments.calibration_38901 --seed 9 --out {R}"
    ]
    assert (
        cli.main(
            [
                "evaluate",
                "--config",
                str(cfg),
                "--results",
                "S",
                "--seed",
                "1",
                "--experiments",
                "calibration_38901,proxy_vs_real",
                "--dry-run",
            ]
        )
        == 0
    )
    assert _lines(capsys) == [
        f"would run: python -m experiments.calibration_38901 --seed 1 --out {S}",
        f"would run: python -m experiments.proxy_vs_real --seed 1 --out {S}",
    ]


def test_calibrate_and_bench_dry_run(capsys):
    assert cli.main(["calibrate", "--what", "38901", "--small", "--dry-run"]) == 0
    (line,) = _lines(capsys)
    assert (
        f"experiments.calibration_38901 --small --seed 0 --out {Path('results').resolve()}" in line
    )
    assert cli.main(["bench", "--small", "--only", "opt", "--dry-run"]) == 0
    (line,) = _lines(capsys)
    assert "experiments.bench_all" in line and "--small" in line and "--only opt" in line


def test_main_dry_run(capsys):
    rc = cli.main(["main", "--small", "--dry-run"])
    if (cli.REPO / "experiments" / "main.py").is_file():
        assert rc == 0 and "experiments.main --small" in _lines(capsys)[0]
    else:
        assert rc == 2 and "experiments/main.py" in capsys.readouterr().err


def test_report_subcommand(tmp_path, capsys):
    assert cli.main(["report", "--results", str(tmp_path), "--title", "Hello"]) == 0
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "report.md").read_text().startswith("# Hello")


# --------------------------------------------------------------------------- bad input -> exit 2
def _fails(argv, capsys, *words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"s2r {argv[0]}: error:"), err
    for w in words:
        assert w in err, (w, err)
    return err


def test_missing_input_file(tmp_path, capsys):
    _fails(
        ["twin", "--cells", str(tmp_path / "cells.csv"), "--out", str(tmp_path / "t")],
        capsys,
        "not found",
        "cells.csv",
    )


def test_wrong_column(tmp_path, capsys):
    p = tmp_path / "cells.csv"
    p.write_text(f"{CELLS_HEADER},tilt,tx_power_dbm,cio_db\n1,1,0,0,25,30,3.5e9,1e8,urban,6,46,0\n")
    _fails(["twin", "--cells", str(p), "--out", str(tmp_path / "t")], capsys, "tilt")


def test_unknown_method(tmp_path, capsys):
    _fails(["train", "--method", "magic", "--out", str(tmp_path)], capsys, "'magic'", "sim2real")


def test_unknown_toml_key(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nmethods = 'x'\n")
    _fails(["train", "--config", str(cfg)], capsys, "'methods'", "[train]", str(cfg))


def test_unknown_area_and_experiment_and_calibration(tmp_path, capsys):
    _fails(["twin", "--areas", "mars", "--out", str(tmp_path / "t")], capsys, "'mars'")
    _fails(
        ["evaluate", "--experiments", "nope", "--dry-run"], capsys, "'nope'", "experiments/nope.py"
    )
    _fails(["calibrate", "--what", "sky"], capsys, "sky", "materials")


def test_existing_sweep_needs_resume(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text("{}")
    _fails(["twin", "--out", str(tmp_path), "--snapshots", "4"], capsys, "--resume")


def test_recommend_without_model(tmp_path, capsys):
    _fails(["recommend", "--model", str(tmp_path / "m")], capsys, "model directory not found")
    (tmp_path / "m").mkdir()
    _fails(["recommend", "--model", str(tmp_path / "m"), "--objective", "fun"], capsys, "'fun'")


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(cli.CLIError, match="magic"):
        cli.main(["train", "--method", "magic", "--debug"])


# --------------------------------------------------------------------------- recommend's predictor
@pytest.mark.slow
def test_surrogate_predictor_matches_ensemble():
    """The CM -> Prediction adapter used by `s2r recommend` equals the ensemble's own prediction
    (averaged over the context snapshots) at the CM in the data, and is differentiable."""
    import chex
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sim2real import batch_from_arrays, make_ensemble, predict

    rng = np.random.default_rng(0)
    n_s, n_c = 4, 3
    cm = {"tilt_deg": np.array([4.0, 6.0, 8.0]), "tx_power_dbm": np.array([40.0, 43.0, 46.0])}
    batch = batch_from_arrays(
        x_m=np.zeros(n_c),
        y_m=np.zeros(n_c),
        azimuth_deg=np.array([30.0, 150.0, 270.0]),
        site_id=np.zeros(n_c, int),
        area_type=["urban"] * n_c,
        height_m=np.full(n_c, 25.0),
        cm={k: np.broadcast_to(v, (n_s, n_c)) for k, v in cm.items()},
        state={"hour": rng.integers(0, 24, (n_s, n_c)).astype(float)},
        targets={
            "dl_throughput_mbps": rng.uniform(5, 50, (n_s, n_c)),
            "coverage": rng.uniform(0.5, 1, (n_s, n_c)),
        },
    )
    ens = make_ensemble(jax.random.PRNGKey(1), 2, batch)
    with pytest.warns(UserWarning, match="no active_ues"):  # so the plain mean over snapshots
        predictor = cli._surrogate_predictor(ens, batch)
    cm_j = {k: jnp.asarray(v, jnp.float32) for k, v in cm.items()}
    pred = eqx.filter_jit(lambda p, c: p(c))(predictor, cm_j)
    mean, std = predict(ens, batch)
    for i, name in enumerate(batch.target_names):
        chex.assert_shape(pred.mean[name], (n_c,))
        chex.assert_type(pred.mean[name], jnp.float32)
        np.testing.assert_allclose(pred.mean[name], np.mean(mean[..., i], 0), rtol=1e-5)
        np.testing.assert_allclose(pred.std[name], np.mean(std[..., i], 0), rtol=1e-4, atol=1e-6)
    g = jax.grad(lambda c: jnp.sum(predictor(c).mean["dl_throughput_mbps"]))(cm_j)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in g.values())


@pytest.mark.slow
def test_twin_on_the_cells_file_geometry(tmp_path, capsys):
    """``s2r twin --cells``: rows carry the file's cell ids and site positions, for every
    snapshot; the UEs of each cell are dropped around its own site (served RSRP finite)."""
    import numpy as np
    import pyarrow.parquet as pq

    rows = [  # two 2-sector urban sites 420 m apart, ids and azimuths of our own choosing
        (71, 7, 100.0, -50.0, 28.0, 90.0),
        (72, 7, 100.0, -50.0, 28.0, 270.0),
        (81, 8, 520.0, -50.0, 22.0, 45.0),
        (82, 8, 520.0, -50.0, 22.0, 225.0),
    ]
    lines = [CELLS_HEADER + ",tilt_deg,tx_power_dbm,cio_db"]
    for c, s, x, y, h, az in rows:
        lines.append(f"{c},{s},{x},{y},{h},{az},3.5e9,1e8,urban,6,46,0")
    cells = tmp_path / "cells.csv"
    cells.write_text("\n".join(lines) + "\n")
    out = tmp_path / "twin"
    argv = ["twin", "--cells", str(cells), "--out", str(out), "--snapshots", "3", "--quiet"]
    assert cli.main(argv + ["--chunk-size", "2"]) == 0
    t = pq.read_table(out / "part-cells-urban.parquet").to_pydict()
    assert len(t["cell_id"]) == 3 * 4
    assert sorted(set(t["cell_id"])) == [71, 72, 81, 82]
    for c, s, x, _y, h, az in rows:
        i = [k for k, v in enumerate(t["cell_id"]) if v == c]
        assert len(i) == 3
        np.testing.assert_allclose([t["x_m"][k] for k in i], x)
        np.testing.assert_allclose([t["height_m"][k] for k in i], h)
        np.testing.assert_allclose([t["azimuth_deg"][k] for k in i], az)
        assert {t["site_id"][k] for k in i} == {s}
    assert np.all(np.isfinite(t["mean_rsrp_dbm"]) | (np.asarray(t["active_ues"]) == 0))
    assert cli.main(argv) == 2  # existing output needs --resume
    assert "--resume" in capsys.readouterr().err


def test_recommend_twin_anchor_bounds(tmp_path, capsys):
    _fails(["recommend", "--twin-anchor", "1.5"], capsys, "--twin-anchor")
    _fails(["recommend", "--twin-snapshots", "0"], capsys, "--twin-snapshots")
    _fails(["recommend", "--twin-std", "ensemble"], capsys, "--twin-std")


def test_cells_twin_maps_each_area_to_file_order():
    """`s2r recommend --twin-anchor`'s twin of a cells file: per cell (file order) the KPI of the
    twin built on that cell's area type alone, with the CM of the right cells."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import opt
    from dtwin.areas import area_type
    from dtwin.sweep import DEFAULT_UE_CLUSTERING
    from dtwin.user_network import network_from_cells
    from sim2real.data import load_cells

    path = Path(__file__).resolve().parents[1] / "sim2real" / "demo" / "cells.csv"
    cells = load_cells(path)
    kpis = ("dl_throughput_mbps",)
    twin, fitted = cli._cells_twin(cells, kpis, 2, 5, path)
    assert fitted is None  # no calibration asked for
    rng = np.random.default_rng(0)
    cm = {n: np.asarray(v, np.float32) for n, v in cells.cm.items()}
    cm["tilt_deg"] = cm["tilt_deg"] + rng.integers(-2, 3, cells.n_cells).astype(np.float32)
    call = eqx.filter_jit(lambda predictor, c: predictor(c).mean[kpis[0]])  # jit: 65 -> 28 s
    got = np.asarray(call(twin, {n: jnp.asarray(v) for n, v in cm.items()}))
    assert got.shape == (cells.n_cells,) and np.all(np.isfinite(got))
    areas = list(dict.fromkeys(np.asarray(cells.area_type).astype(str).tolist()))
    assert len(areas) == 3  # the demo file mixes metro, urban and suburban cells
    topo = ("cell_id", "site_id", "x_m", "y_m", "azimuth_deg", "height_m")
    for i, area in enumerate(areas):  # `cells_by_area` order: first appearance
        idx = np.flatnonzero(np.asarray(cells.area_type).astype(str) == area)
        user = network_from_cells(
            area_type(area),
            **{k: np.asarray(getattr(cells, k))[idx] for k in topo},
            carrier_hz=float(cells.carrier_hz[idx][0]),
            bandwidth_hz=float(cells.bandwidth_hz[idx][0]),
        )
        ref_twin = opt.twin_predictor(
            jax.random.fold_in(jax.random.PRNGKey(5), i),
            user.network,
            user.area.with_ue_clustering(DEFAULT_UE_CLUSTERING),
            2,
            kpis=kpis,
        )
        where = [int(np.flatnonzero(cells.cell_id == c)[0]) for c in user.cell_id]
        ref = np.asarray(call(ref_twin, {n: jnp.asarray(v[where]) for n, v in cm.items()}))
        np.testing.assert_allclose(got[where], ref, rtol=1e-5)


def test_area_share_table_keeps_complete_periods_only():
    """`s2r recommend --calibrate-cells`' table of one area: network order, complete periods."""
    from types import SimpleNamespace

    # file cells 0..3; the area holds file cells 3 and 1 (network order: 3 first, then 1)
    m = SimpleNamespace(
        source="m.csv",
        periods=np.array([10, 11, 12]),
        period_index=np.array([0, 0, 0, 1, 1, 2, 2, 2]),
        cell_index=np.array([1, 3, 0, 1, 0, 3, 1, 2]),
        state={"active_ues": np.array([5.0, 7.0, 1.0, 2.0, 1.0, 9.0, 4.0, 1.0])},
        cm={"tilt_deg": np.array([6.0, 7.0, 6.0, 6.0, 6.0, 7.0, 5.0, 6.0])},
    )
    table, used, incomplete = cli._area_share_table(m, np.array([3, 1]), {3: 0, 1: 1})
    assert (used, incomplete) == (2, 1)  # period 11 lacks file cell 3
    assert table["snapshot_id"].tolist() == [0, 0, 2, 2]
    assert table["cell_id"].tolist() == [1, 0, 0, 1]
    assert table["active_ues"].tolist() == [5.0, 7.0, 9.0, 4.0]
    assert table["tilt_deg"].tolist() == [6.0, 7.0, 7.0, 5.0]
    m.state = {"offered_load_mbps": m.state["active_ues"]}
    with pytest.raises(cli.CLIError, match="active_ues"):
        cli._area_share_table(m, np.array([3, 1]), {3: 0, 1: 1})


def test_recommend_calibrate_cells_end_to_end(tmp_path, capsys):
    """field -> train -> recommend, on cell ids that are neither positions nor in order (the
    stand-in's cells renumbered 1000 + 7 k and the cells file shuffled): ``train`` writes each
    cell's level, ``recommend`` multiplies the surrogate's prediction by exp(level) of the right
    cell; by default (``--calibrate-cells``) it writes zero-mean per-cell offsets of the twin
    with a smaller share error than the uncalibrated twin; recommendations in bounds."""
    import csv
    import json

    import pyarrow.parquet as pq

    from dtwin.cm import DEFAULT_CM_SCHEMA

    data, model = tmp_path / "field", tmp_path / "model"
    common = ["--quiet", "--seed", "3"]
    field = ["field", "--out", str(data), "--area", "urban", "--sites", "1", "--periods", "6"]
    assert cli.main(field + common) == 0
    with open(data / "cells.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["cell_id"] = str(1000 + 7 * int(r["cell_id"]))
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    cells, comm = str(tmp_path / "cells.csv"), str(tmp_path / "commercial.parquet")
    with open(cells, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    t = pq.read_table(data / "commercial.parquet")
    i = t.schema.get_field_index("cell_id")
    t = t.set_column(i, "cell_id", pc_renumber(t.column("cell_id")))
    pq.write_table(t, comm)
    ids = [r["cell_id"] for r in rows]
    train = ["train", "--method", "commercial_only", "--commercial", comm, "--cells", cells]
    train += ["--out", str(model), "--models", "1", "--commercial-steps", "3"]
    assert cli.main(train + common) == 0
    with open(model / "cell_levels.csv") as f:  # each cell's level from the commercial rows
        levels = list(csv.DictReader(f))
    assert levels[0]["cell_id"] == "common"
    level = {r["cell_id"]: float(r["level_dl_throughput_mbps"]) for r in levels[1:]}
    assert sorted(level) == sorted(ids) and all(int(r["n_rows"]) == 6 for r in levels[1:])
    assert np.std(list(level.values())) > 0.01

    def recommend(out, *extra):
        argv = ["recommend", "--cells", cells, "--commercial", comm, "--model", str(model)]
        assert cli.main(argv + ["--out", str(tmp_path / out), *extra] + common) == 0
        with open(tmp_path / out) as f:
            return list(csv.DictReader(f))

    with_levels = recommend("a.csv", "--twin-anchor", "1")
    meta = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**meta, "cell_levels": None}))
    without = recommend("b.csv", "--twin-anchor", "1")
    (model / "model.json").write_text(json.dumps(meta))
    assert [r["cell_id"] for r in with_levels] == ids == [r["cell_id"] for r in without]
    ratio = [
        float(a["dl_throughput_mbps_before"]) / float(b["dl_throughput_mbps_before"])
        for a, b in zip(with_levels, without, strict=True)
    ]
    np.testing.assert_allclose(ratio, [np.exp(level[c]) for c in ids], rtol=1e-4)

    argv = ["recommend", "--cells", cells, "--commercial", comm, "--model", str(model)]
    _fails(argv + ["--calibrate-cells", "--twin-anchor", "1"], capsys, "--calibrate-cells")
    rec = recommend("rec.csv", "--twin-snapshots", "2")  # calibrated by default
    out = capsys.readouterr().out
    assert "calibrated the urban twin on 6 period(s)" in out, out
    with open(tmp_path / "rec_cell_calibration.csv") as f:
        cal = list(csv.DictReader(f))
    assert [r["cell_id"] for r in cal] == ids
    off = np.array([float(r["power_offset_db"]) for r in cal])
    assert np.all(np.isfinite(off)) and np.all(np.abs(off) <= 10)
    if np.all(np.abs(off) < 10):  # not clipped: the offsets are centred
        assert abs(off.mean()) < 1e-4
    before, after = float(cal[0]["area_rmse_before"]), float(cal[0]["area_rmse_after"])
    assert after <= before
    assert [r["cell_id"] for r in rec] == ids
    for p in DEFAULT_CM_SCHEMA.params:
        v = np.array([float(r[f"{p.name}_recommended"]) for r in rec])
        assert np.all((v >= p.low - 1e-6) & (v <= p.high + 1e-6)), p.name


def pc_renumber(col):
    """A Parquet cell_id column renumbered 1000 + 7 k (as the test's cells file)."""
    import pyarrow as pa

    return pa.array(1000 + 7 * np.asarray(col.to_numpy(), np.int64))
