"""``s2r``: the command line of the framework, one subcommand per stage of the pipeline.

Each subcommand is a thin wrapper that maps its flags and the TOML configuration
(``experiments/default.toml``, overridden by ``--config my.toml``, overridden by flags) onto the
library functions or the experiment scripts:

========== ===================================================================================
twin       CM-response data from the Digital Twin (`dtwin.sweep.run_sweep`), Parquet chunks
field      stand-in commercial data (`dtwin.field`): ``cells.csv`` + ``commercial.parquet``
calibrate  material / site calibration (``experiments.calibrate_materials``,
           ``experiments.calibration_38901``)
train      Sim2Real transfer with a chosen method (`sim2real.fit`), saved as a checkpoint
recommend  CM recommendations through a trained model (`opt.search`) -> ``recommendations.csv``
evaluate   the paper's experiments (table1, figure4, scarcity, field_trial)
report     ``results/report.html`` + ``report.md`` (`experiments.report`)
bench      every ``experiments/bench_*.py`` (`experiments.bench_all`)
main       the whole pipeline (``experiments.main``)
========== ===================================================================================

Bad input (a missing file, a wrong column, an unknown method or key) ends with a one-line
message naming the problem and exit status 2; ``--debug`` shows the traceback instead.
Heavy imports (JAX, the models) happen inside the subcommands, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
"""The source checkout (the experiments and their default configuration live there)."""

EVALUATE_EXPERIMENTS: tuple[str, ...] = ("table1", "figure4", "scarcity", "field_trial")
CALIBRATIONS: dict[str, str] = {"materials": "calibrate_materials", "38901": "calibration_38901"}
OBJECTIVES: tuple[str, ...] = ("mean_throughput", "cell_edge_throughput")


class CLIError(Exception):
    """A user-facing problem: printed as one line, exit status 2."""


def _ensure_experiments_importable() -> None:
    """Make the ``experiments`` package of the checkout importable (it is not installed)."""
    if str(REPO) not in sys.path and (REPO / "experiments" / "__init__.py").is_file():
        sys.path.insert(0, str(REPO))


def _config(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    _ensure_experiments_importable()
    from experiments.config import load_config

    return load_config(args.config)


def _section(args: argparse.Namespace, name: str, **flags: Any) -> dict[str, Any]:
    """The ``[name]`` section of the configuration with the given flags laid over it."""
    from experiments.config import apply_overrides

    return apply_overrides(_config(args), name, flags)


def _seed(args: argparse.Namespace) -> int:
    return int(args.seed) if args.seed is not None else int(_config(args)["run"]["seed"])


def _results_dir(args: argparse.Namespace) -> Path:
    d = args.results if args.results is not None else _config(args)["run"]["results_dir"]
    return Path(d)


def _csv_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _require_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{what} not found: {p}")
    return p


# --------------------------------------------------------------------------- experiment runner
def _experiment_path(name: str) -> Path:
    return REPO / "experiments" / f"{name}.py"


def _declares(name: str, flag: str) -> bool:
    """Whether the experiment script declares a command-line flag (read from its source)."""
    return f'"{flag}"' in _experiment_path(name).read_text()


def _experiment_command(
    name: str, *, small: bool, seed: int | None, results_dir: Path | None
) -> list[str]:
    """``python -m experiments.<name>`` with the standard flags the script declares."""
    if not _experiment_path(name).is_file():
        raise CLIError(
            f"experiment {name!r} is not available (experiments/{name}.py does not exist yet)"
        )
    cmd = [sys.executable, "-m", f"experiments.{name}"]
    if small:
        if not _declares(name, "--small"):
            raise CLIError(f"experiment {name!r} has no --small flag")
        cmd.append("--small")
    if seed is not None and _declares(name, "--seed"):
        cmd += ["--seed", str(seed)]
    # Experiments take --out as a directory, except benchmarks (a file); pass only directories.
    if results_dir is not None and not name.startswith("bench_") and _declares(name, "--out"):
        cmd += ["--out", str(Path(results_dir).resolve())]  # they run from the checkout
    return cmd


def _run_experiments(commands: list[list[str]], dry_run: bool) -> int:
    """Run the commands in order from the checkout; stop at the first failure."""
    for cmd in commands:
        shown = " ".join(cmd[1:])
        if dry_run:
            print(f"would run: python {shown}")
            continue
        print(f"running: python {shown}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=REPO).returncode
        if rc != 0:
            print(f"s2r: {shown} failed with exit status {rc}", file=sys.stderr)
            return rc
        print(f"done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


# --------------------------------------------------------------------------- twin
def cmd_twin(args: argparse.Namespace) -> int:
    """Generate CM-response data with the twin (`dtwin.sweep.run_sweep`)."""
    cfg = _section(
        args,
        "twin",
        out=args.out,
        snapshots=args.snapshots,
        areas=_csv_list(args.areas),
        n_sites=args.sites,
        ues_per_cell=args.ues_per_cell,
        cm_sampling=args.cm_sampling,
        chunk_size=args.chunk_size,
        snapshots_per_row=args.snapshots_per_row,
        ue_clustering=args.ue_clustering,
    )
    areas = list(cfg["areas"])
    if args.cells is not None:
        return _twin_on_cells(args, cfg)
    from dtwin.areas import area_type
    from dtwin.sweep import SweepConfig, run_sweep

    for a in areas:
        area_type(a)
    out = Path(cfg["out"])
    if (out / "sweep.json").exists() and not args.resume:
        raise CLIError(
            f"{out} already holds a sweep; pass --resume to continue it or choose another --out"
        )
    config = SweepConfig(
        n_snapshots=cfg["snapshots"],
        areas=tuple(areas),
        n_sites=cfg["n_sites"],
        ues_per_cell=cfg["ues_per_cell"],
        cm_sampling=cfg["cm_sampling"],
        local_max_steps=cfg["local_max_steps"],
        snapshots_per_row=cfg["snapshots_per_row"],
        ue_clustering=cfg["ue_clustering"],
        seed=_seed(args),
        chunk_size=cfg["chunk_size"],
    )
    if config.n_sites not in (1, 7, 19):
        raise CLIError(f"--sites must be 1, 7 or 19, got {config.n_sites}")
    t0 = time.perf_counter()
    run_sweep(config, out, progress=not args.quiet, max_chunks=args.max_chunks)
    parts = sorted(out.glob("part-*.parquet"))
    print(
        f"twin sweep in {out}: {len(parts)}/{config.n_chunks} chunks complete "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return 0


def _twin_on_cells(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    """``s2r twin --cells``: twin data on the file's own sites, boresights and heights
    (`dtwin.user_network`), one Parquet file per area type it contains."""
    path = _require_file(args.cells, "cells file")
    import numpy as np

    from dtwin.areas import area_type
    from dtwin.sweep import _write_parquet_atomic
    from dtwin.user_network import cells_by_area, network_from_cells, user_sweep_rows
    from sim2real.data import load_cells

    cells = load_cells(path)
    out = Path(cfg["out"])
    if any(out.glob("part-*.parquet")) and not args.resume:
        raise CLIError(f"{out} already holds twin data; pass --resume or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    topo = ("cell_id", "site_id", "x_m", "y_m", "azimuth_deg", "height_m", "area_type")
    cols = {k: np.asarray(getattr(cells, k)) for k in topo}
    t0 = time.perf_counter()
    for area, idx in cells_by_area(cols).items():
        target = out / f"part-cells-{area}.parquet"
        if target.exists():
            print(f"{target} exists; skipped (resume)")
            continue
        carriers = np.unique(np.asarray(cells.carrier_hz)[idx])
        bands = np.unique(np.asarray(cells.bandwidth_hz)[idx])
        if len(carriers) != 1 or len(bands) != 1:
            raise CLIError(
                f"{path}: the {area} cells use several carriers/bandwidths {carriers.tolist()} / "
                f"{bands.tolist()}; the twin models one carrier per area type"
            )
        try:
            user = network_from_cells(
                area_type(area),
                **{k: cols[k][idx] for k in topo[:-1]},
                carrier_hz=float(carriers[0]),
                bandwidth_hz=float(bands[0]),
            )
        except ValueError as e:
            raise CLIError(f"{path}: {e}") from None
        rows = user_sweep_rows(
            user,
            _seed(args),
            int(cfg["snapshots"]),
            ues_per_cell=int(cfg["ues_per_cell"]),
            cm_sampling=cfg["cm_sampling"],
            local_max_steps=int(cfg["local_max_steps"]),
            snapshots_per_row=int(cfg["snapshots_per_row"]),
            ue_clustering=float(cfg["ue_clustering"]),
            chunk_size=int(cfg["chunk_size"]),
            progress=not args.quiet,
        )
        _write_parquet_atomic(rows, target)
        print(f"{area}: {user.network.n_cells} cells x {cfg['snapshots']} snapshots -> {target}")
    print(f"twin data on {args.cells}'s geometry in {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


# --------------------------------------------------------------------------- field
def _write_csv(path: Path, cols: dict[str, Any]) -> None:
    import numpy as np

    names = list(cols)
    arrays = [np.asarray(cols[n]) for n in names]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for row in zip(*arrays, strict=True):
            w.writerow([v.item() if hasattr(v, "item") else v for v in row])


def cmd_field(args: argparse.Namespace) -> int:
    """Stand-in commercial data from the field network (`dtwin.field`)."""
    cfg = _section(
        args,
        "field",
        out=args.out,
        area=args.area,
        n_sites=args.sites,
        gap=args.gap,
        periods=args.periods,
        p_trial=args.p_trial,
        ues_per_cell=args.ues_per_cell,
        snapshots_per_period=args.snapshots_per_period,
    )
    import jax
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dtwin.areas import area_type
    from dtwin.cm import DEFAULT_CM_SCHEMA
    from dtwin.field import commercial_data, make_field_network
    from dtwin.schema import ALL_COLUMNS

    if cfg["periods"] < 1:
        raise CLIError(f"--periods must be >= 1, got {cfg['periods']}")
    if cfg["n_sites"] not in (1, 7, 19):
        raise CLIError(f"--sites must be 1, 7 or 19, got {cfg['n_sites']}")
    area = area_type(cfg["area"])
    k_net, k_data = jax.random.split(jax.random.PRNGKey(_seed(args)))
    field = make_field_network(k_net, area, cfg["n_sites"], gap=cfg["gap"])
    base_cm = DEFAULT_CM_SCHEMA.default(field.n_cells)
    t0 = time.perf_counter()
    cols = commercial_data(
        k_data,
        field,
        cfg["periods"],
        base_cm=base_cm,
        p_trial=cfg["p_trial"],
        ues_per_cell=cfg["ues_per_cell"],
        snapshots_per_period=cfg["snapshots_per_period"],
    )
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    extra = sorted(c for c in cols if c not in ALL_COLUMNS)
    kept = {k: v for k, v in cols.items() if k in ALL_COLUMNS}
    pq.write_table(pa.table({k: pa.array(v) for k, v in kept.items()}), out / "commercial.parquet")
    n = field.n_cells
    topo = field.network.topology
    site = np.asarray(topo.cell_site)
    xy = np.asarray(topo.site_xy_m)[site]
    cells = {
        "cell_id": np.arange(n),
        "site_id": site,
        "x_m": xy[:, 0],
        "y_m": xy[:, 1],
        "height_m": np.asarray(topo.bs_height_m),
        "azimuth_deg": np.asarray(topo.cell_azimuth_deg),
        "carrier_hz": np.full(n, float(field.network.carrier_hz)),
        "bandwidth_hz": np.full(n, float(field.network.bandwidth_hz)),
        "area_type": np.array([area.name] * n, dtype=object),
        **{k: np.asarray(v) for k, v in base_cm.items()},
    }
    _write_csv(out / "cells.csv", cells)
    meta = {
        "area": area.name,
        "n_sites": cfg["n_sites"],
        "gap": cfg["gap"],
        "seed": _seed(args),
        "periods": cfg["periods"],
        "p_trial": cfg["p_trial"],
        "synthetic": True,
        "columns_not_in_schema_left_out": extra,
    }
    (out / "field.json").write_text(json.dumps(meta, indent=2))
    print(
        f"field stand-in ({area.name}, {n} cells, gap {cfg['gap']}): "
        f"{len(kept['cell_id'])} rows -> {out / 'commercial.parquet'}, topology -> "
        f"{out / 'cells.csv'} ({time.perf_counter() - t0:.1f} s)"
    )
    if extra:
        print(f"note: columns not in dtwin.schema left out of the Parquet file: {extra}")
    return 0


# --------------------------------------------------------------------------- calibrate
def cmd_calibrate(args: argparse.Namespace) -> int:
    """Material / site calibration experiments."""
    cfg = _section(args, "calibrate", what=_csv_list(args.what))
    unknown = [w for w in cfg["what"] if w not in CALIBRATIONS]
    if unknown:
        raise CLIError(
            f"--what: unknown calibration(s) {unknown}; choose from {sorted(CALIBRATIONS)}"
        )
    seed, res = _seed(args), _results_dir(args)
    cmds = [
        _experiment_command(CALIBRATIONS[w], small=args.small, seed=seed, results_dir=res)
        for w in cfg["what"]
    ]
    return _run_experiments(cmds, args.dry_run)


# --------------------------------------------------------------------------- train
def _twin_file(path: Path, area: str, tmp_dir: Path) -> Path:
    """One Parquet file of twin rows of one area type (a sweep directory is concatenated)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if path.is_dir():
        from dtwin.sweep import read_sweep

        table = read_sweep(path)
    else:
        if path.suffix.lower() not in (".parquet", ".pq"):
            return path
        table = pq.read_table(path)
    if "area_type" not in table.column_names:
        raise CLIError(f"{path}: twin data has no 'area_type' column")
    present = sorted(set(table.column("area_type").to_pylist()))
    if area not in present:
        raise CLIError(f"{path}: twin data holds area types {present}, not {area!r} (--twin-area)")
    table = table.filter(pc.equal(table.column("area_type"), area))
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out = tmp_dir / f"twin_{area}.parquet"
    pq.write_table(table, out)
    return out


def _non_schema_columns(path: Path) -> list[str]:
    """Columns of a twin Parquet file that are not in `dtwin.schema` (e.g. ``load_converged``)."""
    from dtwin.schema import ALL_COLUMNS

    if path.suffix.lower() not in (".parquet", ".pq"):
        return []
    import pyarrow.parquet as pq

    return [c for c in pq.read_schema(path).names if c not in ALL_COLUMNS]


def _train_config(cfg: dict[str, Any], quiet: bool):
    from sim2real.transfer import TransferConfig

    return TransferConfig(
        n_models=cfg["n_models"],
        twin_steps=cfg["twin_steps"],
        commercial_steps=cfg["commercial_steps"],
        batch_snapshots=cfg["batch_snapshots"],
        progress=not quiet,
    )


def _import_sim2real():
    try:
        import sim2real
        from sim2real.transfer import METHODS
    except ImportError as e:  # pragma: no cover - depends on the checkout's state
        raise CLIError(f"sim2real is not importable yet ({e})") from None
    return sim2real, METHODS


def cmd_train(args: argparse.Namespace) -> int:
    """Train a surrogate ensemble with a transfer method and save it."""
    cfg = _section(
        args,
        "train",
        method=args.method,
        twin=args.twin,
        commercial=args.commercial,
        cells=args.cells,
        twin_area=args.twin_area,
        out=args.out,
        n_models=args.models,
        twin_steps=args.twin_steps,
        commercial_steps=args.commercial_steps,
        targets=_csv_list(args.targets),
        cell_levels=args.cell_levels,
    )
    s2r, methods = _import_sim2real()
    method = cfg["method"]
    if method not in methods:
        raise CLIError(f"unknown method {method!r}; choose one of {sorted(methods)}")
    import jax

    tconfig = _train_config(cfg, args.quiet)
    needs_twin = method != "commercial_only"
    needs_commercial = method != "twin_only"
    roles = s2r.ColumnRoles(targets=tuple(cfg["targets"]), state=tuple(cfg["state"]))
    cells = s2r.load_cells(_require_file(cfg["cells"], "cells file"))
    commercial = twin = None
    if needs_commercial:
        path = _require_file(cfg["commercial"], "commercial data")
        m = s2r.load_measurements(path, cells, roles)
        commercial = s2r.build_batch(m)
        print(f"commercial: {m.n_rows} rows, {len(m.periods)} periods, {cells.n_cells} cells")
    out = Path(cfg["out"])
    if needs_twin:
        areas = sorted(set(str(a) for a in cells.area_type))
        area = cfg["twin_area"] or (areas[0] if len(areas) == 1 else "")
        if not area:
            raise CLIError(f"the cells span area types {areas}; choose the twin's with --twin-area")
        path = _twin_file(_require_file(cfg["twin"], "twin data"), area, out / "_data")
        extra = _non_schema_columns(path)
        if extra:
            print(f"note: twin columns not in dtwin.schema ignored: {extra}")
        t = s2r.load_measurements(path, None, dataclasses.replace(roles, ignore=tuple(extra)))
        twin = s2r.build_batch(t)
        print(f"twin ({area}): {t.n_rows} rows, {len(t.periods)} snapshots")
    t0 = time.perf_counter()
    model = s2r.fit(method, jax.random.PRNGKey(_seed(args)), twin, commercial, tconfig)
    wall = time.perf_counter() - t0
    ref = commercial if commercial is not None else twin
    meta = {
        "method": method,
        "seed": _seed(args),
        "transfer_config": {k: v for k, v in vars(tconfig).items() if k != "progress"},
        "cells": str(cfg["cells"]),
        "commercial": str(cfg["commercial"]) if needs_commercial else None,
        "twin": str(cfg["twin"]) if needs_twin else None,
        "roles": {"targets": list(roles.targets), "state": list(roles.state)},
        "target_names": list(ref.target_names),
        "cm_names": list(ref.cm_names),
        "state_names": list(ref.state_names),
        "train_wall_time_s": wall,
    }
    meta["cell_levels"] = None
    if commercial is not None and cfg["cell_levels"]:  # each cell's persistent level
        levels = s2r.fit_cell_levels(model, commercial)
        levels.to_csv(out / "cell_levels.csv")
        meta["cell_levels"] = "cell_levels.csv"
        spread = ", ".join(
            f"{t} {float(v):.3f}"
            for t, v in zip(levels.target_names, levels.offset.std(axis=0), strict=True)
        )
        print(f"per-cell levels of {len(levels.cell_id)} cells (std, model domain: {spread})")
    s2r.save_checkpoint(out, 0, model, metadata=meta)
    (out / "model.json").write_text(json.dumps(meta, indent=2))
    print(f"trained {method} ensemble ({tconfig.n_models} members) in {wall:.1f} s -> {out}")
    return 0


# --------------------------------------------------------------------------- recommend
def _surrogate_predictor(ensemble, context):
    """Kept for callers of the former private adapter: the public one,
    `opt.ensemble_predictor` (KPIs under a CM averaged over the context
    snapshots' states; std = ensemble spread)."""
    _ensure_experiments_importable()
    from opt.predictor import ensemble_predictor

    return ensemble_predictor(ensemble, context)


def _area_share_table(measurements, idx, where_of_file: dict[int, int]):
    """The commercial rows of one area's cells as `opt.cell_ue_share`'s table (network order).

    Only periods that report every cell of the area enter (a share needs the whole area);
    returns ``(table, n_periods_used, n_periods_incomplete)``.
    """
    import numpy as np

    if "active_ues" not in measurements.state:
        raise CLIError(
            f"{measurements.source}: --calibrate-cells needs active_ues among the model's state "
            f"columns (it has {list(measurements.state)}); train with it in [train] state, or "
            "pass --no-calibrate-cells"
        )
    in_area = np.isin(measurements.cell_index, idx)
    period = measurements.period_index[in_area]
    cell = np.array([where_of_file[int(c)] for c in measurements.cell_index[in_area]], np.int64)
    per_period = np.bincount(period, minlength=len(measurements.periods))
    complete = per_period == len(idx)
    keep = complete[period]
    table = {
        "snapshot_id": period[keep],
        "cell_id": cell[keep],
        "active_ues": np.asarray(measurements.state["active_ues"], np.float64)[in_area][keep],
        **{k: np.asarray(v, np.float64)[in_area][keep] for k, v in measurements.cm.items()},
    }
    used = int(np.sum(complete))
    return table, used, int(np.sum((per_period > 0) & ~complete))


def _most_missing(measurements, idx, cell_ids, top: int = 5) -> str:
    """The cells of ``idx`` (file positions) absent from the most periods, for error messages."""
    import numpy as np

    n_periods = len(measurements.periods)
    seen = np.zeros(len(cell_ids), np.int64)
    np.add.at(seen, measurements.cell_index, 1)
    missing = {int(cell_ids[i]): n_periods - int(seen[i]) for i in idx}
    worst = sorted(missing.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"cell {c} in {k} of {n_periods}" for c, k in worst if k > 0)


def _cells_twin(cells, kpis, n_snapshots: int, seed: int, path, calibrate=None):
    """The twin of a cells file as one `opt` predictor over its cells (file order).

    One twin per area type (`dtwin.network_from_cells` on the file's own sites, boresights and
    heights; UE clustering as the twin data, `dtwin.DEFAULT_UE_CLUSTERING`), each simulated on
    ``n_snapshots`` snapshots of its own (`opt.twin_predictor`); areas do not interfere.

    With ``calibrate`` (the commercial `sim2real.Measurements`), each area's twin gets per-cell
    power offsets fitted so that it serves each cell's observed share of the area's UEs at the
    CM in force (`opt.cell_ue_share`, `opt.calibrate_power_offsets`; periods reporting every
    cell of the area). Returns ``(twin, fitted)``: ``fitted`` is ``{cell_id: (area, offset_db,
    rmse_before, rmse_after)}`` with ``calibrate``, else ``None``.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    import opt
    from dtwin.areas import area_type
    from dtwin.sweep import DEFAULT_UE_CLUSTERING
    from dtwin.user_network import cells_by_area, network_from_cells

    topo = ("cell_id", "site_id", "x_m", "y_m", "azimuth_deg", "height_m", "area_type")
    cols = {k: np.asarray(getattr(cells, k)) for k in topo}
    pos = cells.index()
    parts = []
    fitted: dict[int, tuple] | None = {} if calibrate is not None else None
    for i, (area, idx) in enumerate(cells_by_area(cols).items()):
        carriers = np.unique(np.asarray(cells.carrier_hz)[idx])
        bands = np.unique(np.asarray(cells.bandwidth_hz)[idx])
        if len(carriers) != 1 or len(bands) != 1 or not np.all(np.isfinite(carriers)):
            raise CLIError(
                f"{path}: the {area} cells need one carrier and bandwidth for the twin, got "
                f"{carriers.tolist()} / {bands.tolist()}"
            )
        try:
            user = network_from_cells(
                area_type(area),
                **{k: cols[k][idx] for k in topo[:-1]},
                carrier_hz=float(carriers[0]),
                bandwidth_hz=float(bands[0]),
            )
        except ValueError as e:
            raise CLIError(f"{path}: {e}") from None
        at = user.area.with_ue_clustering(DEFAULT_UE_CLUSTERING)
        twin = opt.twin_predictor(
            jax.random.fold_in(jax.random.PRNGKey(seed), i),
            user.network,
            at,
            n_snapshots,
            kpis=kpis,
        )
        # the network orders cells site-major: the file position of each of its cells
        where = np.array([pos[int(c)] for c in user.cell_id], np.int32)
        if calibrate is not None:
            twin = _calibrate_area(twin, calibrate, area, where, cells, path, fitted)
        parts.append((twin, jnp.asarray(where)))

    class CellsTwin(eqx.Module):
        parts: list
        n_cells: int = eqx.field(static=True)

        def __call__(self, cm):
            mean = {k: jnp.full((self.n_cells,), jnp.nan, jnp.float32) for k in kpis}
            for twin, where in self.parts:
                p = twin({n: v[where] for n, v in cm.items()})
                mean = {k: mean[k].at[where].set(p.mean[k]) for k in kpis}
            return opt.Prediction.deterministic(mean)

    return CellsTwin(parts, cells.n_cells), fitted


def _calibrate_area(twin, measurements, area, where, cells, path, fitted):
    """`_cells_twin`'s per-area calibration: the twin with fitted per-cell power offsets."""
    import numpy as np

    import opt

    table, used, incomplete = _area_share_table(
        measurements, where, {int(f): j for j, f in enumerate(where)}
    )
    current = {k: np.asarray(v, np.float64)[where] for k, v in cells.cm.items()}
    if used == 0:
        raise CLIError(
            f"{measurements.source}: --calibrate-cells: no period reports every {area} cell "
            f"({incomplete} incomplete period(s); missing most: "
            f"{_most_missing(measurements, where, cells.cell_id)}); the UE share of a cell "
            "needs the whole area (--no-calibrate-cells skips the calibration)"
        )
    try:
        log_share = opt.cell_ue_share(table, current, labels=np.asarray(cells.cell_id)[where])
        res = opt.calibrate_power_offsets(twin, log_share, current)
    except ValueError as e:
        raise CLIError(
            f"{measurements.source} ({area} cells of {path}): {e} (--no-calibrate-cells skips "
            "the calibration)"
        ) from None
    skipped = f", {incomplete} incomplete period(s) skipped" if incomplete else ""
    print(
        f"calibrated the {area} twin on {used} period(s){skipped}: log UE-share RMSE "
        f"{res.rmse_before:.3f} -> {res.rmse_after:.3f}, offsets "
        f"{float(np.min(res.offset_db)):+.1f} .. {float(np.max(res.offset_db)):+.1f} dB"
    )
    for j, f in enumerate(where):
        fitted[int(cells.cell_id[f])] = (
            area,
            float(res.offset_db[j]),
            res.rmse_before,
            res.rmse_after,
        )
    return res.predictor


def cmd_recommend(args: argparse.Namespace) -> int:
    """Recommend CMs per cell through a trained surrogate ensemble; writes a CSV."""
    cfg = _section(
        args,
        "recommend",
        cells=args.cells,
        commercial=args.commercial,
        model=args.model,
        out=args.out,
        objective=args.objective,
        trust_steps=args.trust_steps,
        twin_anchor=args.twin_anchor,
        twin_snapshots=args.twin_snapshots,
        twin_std=args.twin_std,
        calibrate_cells=args.calibrate_cells,
    )
    w = float(cfg["twin_anchor"])
    from opt.simulator import STD_MODES

    if cfg["twin_std"] not in STD_MODES:
        raise CLIError(f"--twin-std must be one of {list(STD_MODES)}, got {cfg['twin_std']!r}")
    if not 0.0 <= w <= 1.0:
        raise CLIError(f"--twin-anchor must be in [0, 1] (1 = the surrogate alone), got {w}")
    if int(cfg["twin_snapshots"]) < 1:
        raise CLIError(f"--twin-snapshots must be >= 1, got {cfg['twin_snapshots']}")
    if args.calibrate_cells and w >= 1.0:  # asked for on the command line, not by default
        raise CLIError("--calibrate-cells fits the twin of --twin-anchor < 1; it is 1 here")
    if cfg["objective"] not in OBJECTIVES:
        raise CLIError(f"unknown objective {cfg['objective']!r}; choose one of {list(OBJECTIVES)}")
    s2r, _ = _import_sim2real()
    try:
        import opt
    except ImportError as e:  # pragma: no cover
        raise CLIError(f"opt is not importable yet ({e})") from None
    import jax
    import numpy as np

    model_dir = _require_file(cfg["model"], "model directory")
    meta_path = model_dir / "model.json"
    if not meta_path.is_file():
        raise CLIError(f"{model_dir}: no model.json (train a model with `s2r train` first)")
    meta = json.loads(meta_path.read_text())
    cells = s2r.load_cells(_require_file(cfg["cells"], "cells file"))
    roles = s2r.ColumnRoles(**{k: tuple(v) for k, v in meta["roles"].items()})
    m = s2r.load_measurements(_require_file(cfg["commercial"], "commercial data"), cells, roles)
    batch = s2r.build_batch(m)
    if list(batch.target_names) != meta["target_names"]:
        raise CLIError(
            f"{cfg['commercial']}: targets {list(batch.target_names)} differ from the model's "
            f"{meta['target_names']}"
        )
    tc = meta["transfer_config"]
    template = s2r.make_ensemble(
        jax.random.PRNGKey(0),
        tc["n_models"],
        batch,
        embed=tc["embed"],
        hidden=tc["hidden"],
        depth=tc["depth"],
        n_message=tc["n_message"],
    )
    ensemble = s2r.restore_checkpoint(model_dir, template).ensemble
    if meta.get("cell_levels"):  # the per-cell levels `s2r train` read from its commercial data
        try:
            levels = s2r.CellLevels.from_csv(model_dir / meta["cell_levels"])
            batch = levels.apply(batch)
        except (OSError, ValueError) as e:
            raise CLIError(f"{model_dir}: cell levels: {e}") from None
        known = np.isin(np.asarray(batch.cell_id), np.asarray(levels.cell_id))
        if not known.all():
            print(
                f"note: {int(np.sum(~known))} cell(s) without a level from training get the "
                "common level"
            )
    n_ctx = min(int(cfg["context_periods"]), batch.n_snapshots)
    context = batch.take(np.arange(batch.n_snapshots - n_ctx, batch.n_snapshots))
    from opt.predictor import ensemble_predictor

    predictor = ensemble_predictor(ensemble, context)
    current = {n: np.asarray(cells.cm[n], np.float32) for n in cells.cm}
    if w < 1.0:  # the surrogate's level with a blend of its and the twin's CM response
        from dtwin.schema import TARGET_COLUMNS

        kpis = tuple(k for k in batch.target_names if k in TARGET_COLUMNS)
        calib = m if cfg["calibrate_cells"] else None
        twin, fitted = _cells_twin(
            cells, kpis, int(cfg["twin_snapshots"]), _seed(args), cfg["cells"], calibrate=calib
        )
        if fitted is not None:
            cal_path = Path(cfg["out"]).with_name(Path(cfg["out"]).stem + "_cell_calibration.csv")
            ids = [int(c) for c in cells.cell_id]
            _write_csv(
                cal_path,
                {
                    "cell_id": np.asarray(ids),
                    "area_type": np.asarray([fitted[c][0] for c in ids]),
                    "power_offset_db": np.asarray([fitted[c][1] for c in ids]),
                    "area_rmse_before": np.asarray([fitted[c][2] for c in ids]),
                    "area_rmse_after": np.asarray([fitted[c][3] for c in ids]),
                },
            )
            print(f"fitted per-cell twin power offsets -> {cal_path}")
        try:
            predictor = opt.AnchoredPredictor(predictor, twin, current, w, std_mode=cfg["twin_std"])
        except ValueError as e:  # e.g. "response" needs per-snapshot influences of one twin
            raise CLIError(f"--twin-std {cfg['twin_std']}: {e}") from None
    objective = {
        "mean_throughput": opt.mean_throughput,
        "cell_edge_throughput": opt.cell_edge_throughput,
    }[cfg["objective"]]()
    guardrails = tuple(g for g in opt.DEFAULT_GUARDRAILS if g.kpi in batch.target_names)
    safety = opt.SafetyConfig(trust_steps=cfg["trust_steps"], guardrails=guardrails)
    t0 = time.perf_counter()
    rec = opt.search(jax.random.PRNGKey(_seed(args)), predictor, current, objective, safety=safety)
    rows = opt.recommendation_to_rows(rec, cells.cell_id)
    out = Path(cfg["out"])
    _write_csv(out, rows)
    n_changed = int(np.sum(rows["changed"]))
    print(
        f"{n_changed}/{cells.n_cells} cells changed; objective "
        f"{float(rec.objective_before):.4g} -> {float(rec.objective_after):.4g} "
        f"({time.perf_counter() - t0:.1f} s) -> {out}"
    )
    return 0


# --------------------------------------------------------------------------- evaluate / main
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run the paper's experiments (tables and figures)."""
    cfg = _section(args, "evaluate", experiments=_csv_list(args.experiments))
    seed, res = _seed(args), _results_dir(args)
    cmds = [
        _experiment_command(n, small=args.small, seed=seed, results_dir=res)
        for n in cfg["experiments"]
    ]
    return _run_experiments(cmds, args.dry_run)


def cmd_main(args: argparse.Namespace) -> int:
    """The whole pipeline (``experiments.main``)."""
    cmd = _experiment_command(
        "main", small=args.small, seed=_seed(args), results_dir=_results_dir(args)
    )
    return _run_experiments([cmd], args.dry_run)


# --------------------------------------------------------------------------- report / bench
def cmd_report(args: argparse.Namespace) -> int:
    """Build the HTML + Markdown report from the results directory."""
    cfg = _section(args, "report", title=args.title)
    from experiments.report import build_report

    html_path, md_path = build_report(_results_dir(args), cfg["title"])
    print(f"wrote {html_path} and {md_path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run every benchmark and summarise them."""
    cfg = _section(args, "bench", small=True if args.small else None, timeout_s=args.timeout_s)
    from experiments import bench_all

    # Benchmarks write to the checkout's results/; read elsewhere only when asked to.
    argv = ["--timeout-s", str(cfg["timeout_s"])]
    argv += ["--results", str(Path(args.results).resolve())] if args.results else []
    argv += ["--small"] if cfg["small"] else []
    argv += ["--only", args.only] if args.only else []
    argv += ["--list"] if args.list else []
    if args.dry_run:
        print(f"would run: python -m experiments.bench_all {' '.join(argv)}")
        return 0
    return bench_all.main(argv)


# --------------------------------------------------------------------------- parser
def _common() -> argparse.ArgumentParser:
    """Options every subcommand accepts (also before the subcommand)."""
    p = argparse.ArgumentParser(add_help=False)
    S = argparse.SUPPRESS
    p.add_argument("--config", metavar="TOML", default=S, help="TOML file overriding the defaults")
    p.add_argument("--seed", type=int, default=S, help="PRNG seed (default: [run] seed)")
    p.add_argument(
        "--results", metavar="DIR", default=S, help="results directory ([run] results_dir)"
    )
    p.add_argument("--debug", action="store_true", default=S, help="show tracebacks")
    p.add_argument("--quiet", action="store_true", default=S, help="no progress bars")
    return p


_COMMON_DEFAULTS: dict[str, Any] = {
    "config": None,
    "seed": None,
    "results": None,
    "debug": False,
    "quiet": False,
}


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--small", action="store_true", help="CI-sized runs")
    p.add_argument("--dry-run", action="store_true", help="print the commands, do not run them")


def build_parser() -> argparse.ArgumentParser:
    """The ``s2r`` argument parser (subcommands in pipeline order)."""
    common = _common()
    ap = argparse.ArgumentParser(
        prog="s2r",
        description="Sim2Real for cellular networks: twin data, transfer, CM recommendation.",
        epilog="Defaults: experiments/default.toml; precedence: flags > --config TOML > defaults.",
        parents=[_common()],  # its own action objects: subparser defaults must not clobber
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=fn)
        return p

    p = add("twin", cmd_twin, "generate CM-response data with the Digital Twin (Parquet)")
    p.add_argument("--out", help="output directory ([twin] out)")
    p.add_argument(
        "--cells",
        help="cells.csv: sweep the file's own sites, boresights and heights (one Parquet file per "
        "area type it contains) instead of the hexagonal layouts",
    )
    p.add_argument("--areas", help="comma-separated built-in area types, e.g. metro,urban")
    p.add_argument("--snapshots", type=int, help="number of network snapshots")
    p.add_argument("--sites", type=int, choices=(1, 7, 19), help="hexagonal sites")
    p.add_argument("--ues-per-cell", type=int, help="UEs dropped per cell")
    p.add_argument(
        "--snapshots-per-row", type=int, help="snapshots aggregated into one row (a period)"
    )
    p.add_argument(
        "--cm-sampling", choices=("broad", "local", "mixed"), help="CM sampling (dtwin.sample_cm)"
    )
    p.add_argument(
        "--ue-clustering",
        type=float,
        help="largest pull of UEs toward random per-cell hotspots, 0-0.9 (0 = uniform drop)",
    )
    p.add_argument("--chunk-size", type=int, help="snapshots per Parquet chunk")
    p.add_argument("--max-chunks", type=int, help="stop after this many new chunks")
    p.add_argument("--resume", action="store_true", help="continue a sweep in --out")

    p = add("field", cmd_field, "stand-in commercial data from the synthetic field network")
    p.add_argument("--out", help="output directory: cells.csv + commercial.parquet")
    p.add_argument("--area", help="built-in area type (metro, urban, suburban, rural)")
    p.add_argument("--sites", type=int, choices=(1, 7, 19), help="hexagonal sites")
    p.add_argument("--gap", type=float, help="size of the hidden reality, 0-3")
    p.add_argument("--periods", type=int, help="reporting periods")
    p.add_argument("--p-trial", type=float, help="share of cells on a CM trial per period")
    p.add_argument("--snapshots-per-period", type=int, help="snapshots aggregated into one period")
    p.add_argument("--ues-per-cell", type=int, help="UEs dropped per cell")

    p = add("calibrate", cmd_calibrate, "calibrate materials (Sionna RT) and the 38.901 model")
    p.add_argument("--what", help=f"comma-separated subset of {','.join(CALIBRATIONS)}")
    _run_flags(p)

    p = add("train", cmd_train, "train a KPI surrogate ensemble with a Sim2Real transfer method")
    p.add_argument("--method", help="transfer method (sim2real.METHODS), e.g. sim2real, fine_tune")
    p.add_argument("--twin", help="twin data: sweep directory or Parquet/CSV file")
    p.add_argument("--commercial", help="commercial measurements (Parquet or CSV)")
    p.add_argument("--cells", help="cells.csv of the commercial network")
    p.add_argument("--twin-area", help="area type to take from a multi-area twin sweep")
    p.add_argument("--targets", help="comma-separated KPI columns to model ([train] targets)")
    p.add_argument("--out", help="model directory")
    p.add_argument("--models", type=int, help="ensemble members")
    p.add_argument("--twin-steps", type=int, help="optimisation steps on twin data")
    p.add_argument("--commercial-steps", type=int, help="optimisation steps on commercial data")
    p.add_argument(
        "--cell-levels",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read each cell's persistent level from the commercial data after training "
        "(sim2real.fit_cell_levels; cell_levels.csv in the model directory)",
    )

    p = add("recommend", cmd_recommend, "recommend CMs per cell with a trained model (CSV)")
    p.add_argument("--cells", help="cells.csv (topology + current CM)")
    p.add_argument("--commercial", help="commercial measurements (recent state of each cell)")
    p.add_argument("--model", help="model directory written by `s2r train`")
    p.add_argument("--out", help="recommendations CSV")
    p.add_argument("--objective", help=f"one of {', '.join(OBJECTIVES)}")
    p.add_argument("--trust-steps", type=int, help="largest change per parameter, in steps")
    p.add_argument(
        "--twin-anchor",
        type=float,
        help="surrogate's share of the CM response, the rest from the twin built on the cells "
        "file (opt.AnchoredPredictor; 1 = the surrogate alone)",
    )
    p.add_argument("--twin-snapshots", type=int, help="twin snapshots per area for --twin-anchor")
    p.add_argument(
        "--twin-std",
        help="uncertainty of the anchored prediction: blend (default), surrogate or response "
        "(opt.AnchoredPredictor std_mode)",
    )
    p.add_argument(
        "--calibrate-cells",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the twin's per-cell power offsets to each cell's share of the area's "
        "active_ues in the commercial data before anchoring (opt.calibrate_power_offsets; "
        "default on where the twin is used, [recommend] calibrate_cells)",
    )

    p = add("evaluate", cmd_evaluate, "run the evaluation experiments (tables and figures)")
    p.add_argument(
        "--experiments", help=f"comma-separated subset of {','.join(EVALUATE_EXPERIMENTS)}"
    )
    _run_flags(p)

    p = add("report", cmd_report, "build results/report.html and results/report.md")
    p.add_argument("--title", help="report title")

    p = add("bench", cmd_bench, "run every experiments/bench_*.py and summarise them")
    p.add_argument("--only", help="comma-separated subset, e.g. opt,sweep")
    p.add_argument("--timeout-s", type=float, help="per-benchmark time limit")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    _run_flags(p)

    p = add("main", cmd_main, "run the whole pipeline (experiments.main)")
    _run_flags(p)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``s2r``; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in _COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    _ensure_experiments_importable()
    from experiments.config import ConfigError

    try:
        return int(args.func(args))
    except (CLIError, ConfigError, ValueError, KeyError, OSError) as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, FileNotFoundError) and e.filename:
            msg = f"file not found: {e.filename}"
        print(f"s2r {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"s2r {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
