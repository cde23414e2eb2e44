"""Benchmark: network snapshots per second of the twin sweep, and how cost grows with cells x UEs.

Each snapshot = UE drop + channel draw + CM sample + load-coupling fixed point + KPIs, hard
association (the sweep's evaluation path, :func:`dtwin.sweep.make_batch_fn`), jit + vmap. Timed
after a warm-up call (compile time reported separately), ``block_until_ready`` on the outputs.
Besides wall time, the process CPU time per batch is recorded (``snapshots_per_cpu_s``): on a
machine shared with other jobs it is the steadier measure of the work per snapshot.

    python -m experiments.bench_sweep            # 57 cells x 10 UEs/cell + scaling grid
    python -m experiments.bench_sweep --small    # CI-sized
    python -m experiments.bench_sweep --batch 128 256 512   # main case at several batch sizes
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from dtwin.areas import area_type
from dtwin.sweep import _snapshot_keys, make_batch_fn


def _rate(area: str, n_sites: int, ues_per_cell: int, batch: int, repeats: int) -> dict:
    network, fn = make_batch_fn(area_type(area), n_sites, ues_per_cell)
    keys = _snapshot_keys(0, np.arange(batch, dtype=np.int32))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys))
    compile_s = time.perf_counter() - t0
    times, cpu_times = [], []
    for r in range(repeats):
        keys = _snapshot_keys(r + 1, np.arange(batch, dtype=np.int32))
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(keys))
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    best = float(np.median(times))
    cpu = float(np.median(cpu_times))
    return {
        "area": area,
        "cells": network.n_cells,
        "ues_per_cell": ues_per_cell,
        "links_per_snapshot": network.n_cells * ues_per_cell * network.n_cells,
        "batch": batch,
        "compile_s": compile_s,
        "median_batch_s": best,
        "snapshots_per_s": batch / best,
        "median_batch_cpu_s": cpu,
        "snapshots_per_cpu_s": batch / cpu,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="CI-sized run")
    ap.add_argument("--out", default="results")
    ap.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[256],
        help="snapshots per call; with several, the main case is timed at each and the fastest "
        "is reported (and used for the scaling grid)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()  # write_result's wall time is perf_counter() - t_start
    batches = [16] if args.small else args.batch
    repeats = 1 if args.small else args.repeats
    by_batch = [_rate("urban", 19, 10, b, repeats) for b in batches]
    main_case = max(by_batch, key=lambda r: r["snapshots_per_s"])
    batch = main_case["batch"]
    target_snapshots = 100_000
    projected_s = target_snapshots / main_case["snapshots_per_s"]
    grid = [(1, 10), (7, 10), (19, 5), (19, 20)] if not args.small else [(1, 10), (7, 10)]
    scaling = [_rate("urban", s, u, batch, repeats) for s, u in grid]
    results = {
        "main_case": main_case,
        "projected_seconds_for_100k_snapshots": projected_s,
        "target_seconds_for_100k_snapshots": 600.0,
        "meets_target": bool(projected_s < 600.0),
        "main_case_by_batch": by_batch,
        "scaling": scaling,
    }
    _write(args.out, "bench_sweep", results, vars(args), t_start)
    print(
        f"57 cells x 10 UEs/cell: {main_case['snapshots_per_s']:.1f} snapshots/s on "
        f"{jax.devices()[0].platform} (batch {batch}; "
        f"{main_case['snapshots_per_cpu_s']:.1f} per CPU-second) -> 100k snapshots in "
        f"{projected_s / 60:.1f} min"
    )
    return results


def _write(out: str, name: str, results: dict, config: dict, t_start: float) -> Path:
    from experiments.meta import write_result

    return write_result(Path(out) / f"{name}.json", results, config=config, seed=0, t0=t_start)


if __name__ == "__main__":
    main()
