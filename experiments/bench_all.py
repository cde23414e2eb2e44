"""Run every ``experiments/bench_*.py`` as a subprocess and collect their JSON.

Each benchmark runs as ``python -m experiments.bench_<x> [--small]`` from the repository root
(so it writes ``results/bench_<x>.json`` itself); a failing or timed-out benchmark is recorded
with its exit status and the tail of its output, and the others still run. Writes
``results/bench_summary.json`` (metadata, one entry per benchmark: status, wall time, the timings
and scalar numbers its JSON reports) and ``results/bench_summary.md`` (one Markdown table).

    python -m experiments.bench_all [--small] [--only opt,sweep] [--results results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .meta import write_result
from .report import META_KEYS, _flatten, fmt

REPO = Path(__file__).resolve().parents[1]


def discover(experiments_dir: Path = REPO / "experiments") -> list[str]:
    """Module names of every ``bench_*.py`` (sorted), ``bench_all`` itself excepted."""
    return sorted(p.stem for p in experiments_dir.glob("bench_*.py") if p.stem != "bench_all")


def _headline(record: dict[str, Any]) -> dict[str, Any]:
    """The scalar numbers of a benchmark's JSON: its ``timings_s`` and ``results`` (flattened)."""
    out: dict[str, Any] = {}
    for part in ("timings_s", "results"):
        if isinstance(record.get(part), dict):
            out.update({f"{part}.{k}": v for k, v in _flatten(record[part]).items()})
    if not out:
        out = _flatten(
            {k: v for k, v in record.items() if k not in META_KEYS or k == "wall_time_s"}
        )
    return {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_benchmark(
    name: str, *, small: bool, results_dir: Path, timeout_s: float, extra: list[str] | None = None
) -> dict[str, Any]:
    """Run one benchmark module and read its JSON; never raises for a failing benchmark."""
    cmd = [
        sys.executable,
        "-m",
        f"experiments.{name}",
        *(["--small"] if small else []),
        *(extra or []),
    ]
    t0 = time.perf_counter()
    entry: dict[str, Any] = {"command": " ".join(cmd[1:])}
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
        entry["returncode"] = proc.returncode
        entry["status"] = "ok" if proc.returncode == 0 else "failed"
        if proc.returncode != 0:
            entry["output_tail"] = (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        entry.update(returncode=None, status="timeout")
    entry["wall_time_s"] = time.perf_counter() - t0
    path = results_dir / f"{name}.json"
    if entry["status"] == "ok":
        if path.is_file():
            record = json.loads(path.read_text())
            entry["json"] = str(path)
            entry["numbers"] = _headline(record)
        else:
            entry["status"] = "no_json"
    return entry


def summary_markdown(benchmarks: dict[str, dict[str, Any]]) -> str:
    """One row per benchmark: status, wall time and its headline numbers."""
    lines = ["| benchmark | status | wall time (s) | numbers |", "|---|---|---|---|"]
    for name, e in benchmarks.items():
        nums = ", ".join(f"{k} = {fmt(v)}" for k, v in list(e.get("numbers", {}).items())[:8])
        lines.append(f"| {name} | {e['status']} | {fmt(e['wall_time_s'])} | {nums or '—'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.bench_all", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--small", action="store_true", help="pass --small to every benchmark")
    ap.add_argument("--only", default="", help="comma-separated subset, e.g. 'opt,sweep'")
    ap.add_argument("--results", type=Path, default=REPO / "results", help="results directory")
    ap.add_argument("--timeout-s", type=float, default=3600.0, help="per-benchmark limit")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    names = discover()
    if args.only:
        wanted = [w if w.startswith("bench_") else f"bench_{w}" for w in args.only.split(",") if w]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            ap.error(f"--only: unknown benchmark(s) {unknown}; available: {names}")
        names = [n for n in names if n in wanted]
    if args.list:
        print("\n".join(names))
        return 0
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = lambda x, **_: x  # noqa: E731
    benchmarks = {}
    for name in tqdm(names, desc="benchmarks", unit="bench"):
        benchmarks[name] = run_benchmark(
            name, small=args.small, results_dir=args.results, timeout_s=args.timeout_s
        )
    write_result(
        args.results / "bench_summary.json",
        {"benchmarks": benchmarks},
        config={
            "small": args.small,
            "only": args.only,
            "timeout_s": args.timeout_s,
            "benchmarks": names,
        },
        seed=None,
        t0=t0,
    )
    md = summary_markdown(benchmarks)
    (args.results / "bench_summary.md").write_text(md)
    print(md)
    return 0 if all(e["status"] == "ok" for e in benchmarks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
