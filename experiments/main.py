"""The main job: from nothing to a site-specific twin, a transferred surrogate and recommended CM.

Steps (each an experiment script, run in-process in this order; every one writes its JSON and
figures to ``results/``):

1. ``calibration_38901``  TR 38.901 Phase-1 calibration of the channel statistics (CDFs vs 3GPP).
2. ``calibrate_materials`` site-specific channel: Sionna RT soundings of a bundled scene, material
   calibration by gradient descent, site-specific TR 38.901 parameters written to
   ``site_channel.json``; steps 5-7 build the urban twin on the channel fitted with the
   calibrated materials and the urban field stand-in on the one with the true materials
   (``--site-channel``), so the twin they train on is site-specific.
3. ``response_curve``      twin data: KPI response to one cell's tilt, with the twin's gradient.
4. ``proxy_vs_real``       the link-level throughput proxy against real 5G measurements.
   ``ue_behaviour``        UE mobility/traffic CVAE on real data and the closed loop.
   (both read ``../shared/data``; they are skipped with a note when it is absent)
5. ``table1``              Sim2Real vs the other transfer methods on the field stand-in.
6. ``figure4``             predicted vs true KPI across a cell's CM range, per method.
7. ``field_trial``         CM recommendation on three areas, applied to the field stand-in.
8. ``report``              ``results/report.html`` with every table and figure.

``--size small`` and ``default`` run every step at its CI size (``default`` adds a finer
response curve); ``full`` runs every script at its own default size, which is what the README's
results table was measured with (about two hours on a 2-core CPU; use a GPU). Each script also
takes ``--full`` for the reference study's sizes.

    python -m experiments.main [--size default] [--out results] [--only table1,field_trial]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

# (step, module, {size: extra argv})
SMALL = {"small": ["--small"], "default": ["--small"], "full": []}
STEPS: list[tuple[str, str, dict[str, list[str]]]] = [
    ("calibration_38901", "experiments.calibration_38901", SMALL),
    ("calibrate_materials", "experiments.calibrate_materials", SMALL),
    (
        "response_curve",
        "experiments.response_curve",
        {"small": ["--small"], "default": ["--snapshots", "16"], "full": []},
    ),
    ("proxy_vs_real", "experiments.proxy_vs_real", SMALL),
    ("ue_behaviour", "experiments.ue_behaviour", SMALL),
    ("table1", "experiments.table1", SMALL),
    ("figure4", "experiments.figure4", SMALL),
    ("field_trial", "experiments.field_trial", SMALL),
]


NEEDS_SHARED_DATA = {"proxy_vs_real", "ue_behaviour"}
USES_SITE_CHANNEL = {"table1", "figure4", "field_trial"}
"""Steps that take ``--site-channel`` (when ``calibrate_materials`` has written it)."""
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _run_step(module: str, argv: list[str]) -> None:
    mod = importlib.import_module(module)
    if not hasattr(mod, "main"):
        raise RuntimeError(f"{module} has no main(argv)")
    rc = mod.main(argv)
    if isinstance(rc, int) and rc != 0:
        raise RuntimeError(f"{module} exited with status {rc}")


def _summary(out: Path) -> list[str]:
    """A few headline numbers from the steps' JSON, for the console."""
    lines = []

    def load(name):
        p = out / f"{name}.json"
        return json.loads(p.read_text()) if p.exists() else None

    for name in ("table1", "field_trial", "calibration_38901", "response_curve"):
        d = load(name)
        if d is None:
            continue
        res = d.get("results", d)
        head = res.get("summary") or res.get("headline")
        if isinstance(head, dict):
            lines.append(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in list(head.items())[:6]))
        elif isinstance(head, str):
            lines.append(f"  {name}: {head}")
        else:
            lines.append(f"  {name}: see {out / (name + '.json')}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["small", "default", "full"], default="default")
    ap.add_argument("--out", default="results", help="results directory")
    ap.add_argument("--only", default="", help="comma-separated step names to run")
    ap.add_argument("--skip", default="", help="comma-separated step names to skip")
    ap.add_argument(
        "--nominal-channel",
        action="store_true",
        help="build the twin on the TR 38.901 tables, ignoring results/site_channel.json",
    )
    ap.add_argument(
        "--keep-going",
        action="store_true",
        help="run the remaining steps when one fails (exit status still 1)",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    known = {s for s, _, _ in STEPS} | {"report"}
    bad = (only | skip) - known
    if bad:
        ap.error(f"unknown step(s) {sorted(bad)}; known: {sorted(known)}")

    t_start = time.time()
    timings: dict[str, float] = {}
    failed: list[str] = []
    todo = [s for s in STEPS if (not only or s[0] in only) and s[0] not in skip]
    for i, (name, module, sizes) in enumerate(todo, 1):
        step_argv = sizes[args.size] + ["--out", str(out)]
        site = out / "site_channel.json"
        if name in USES_SITE_CHANNEL and site.is_file() and not args.nominal_channel:
            step_argv += ["--site-channel", str(site)]
        print(f"\n=== [{i}/{len(todo)}] {name} ({' '.join(step_argv)}) ===", flush=True)
        if name in NEEDS_SHARED_DATA and not SHARED_DATA.is_dir():
            print(f"--- {name}: skipped, it needs the real data in {SHARED_DATA}", flush=True)
            continue
        t0 = time.time()
        try:
            _run_step(module, step_argv)
        except Exception:  # noqa: BLE001 - report and go on when asked
            traceback.print_exc()
            failed.append(name)
            if not args.keep_going:
                break
        finally:
            timings[name] = time.time() - t0
            print(f"--- {name}: {timings[name]:.0f} s", flush=True)

    if (not only or "report" in only) and "report" not in skip:
        from experiments.report import build_report

        build_report(out)
    total = time.time() - t_start
    (out / "main.json").write_text(
        json.dumps(
            {"size": args.size, "step_seconds": timings, "total_seconds": total, "failed": failed},
            indent=2,
        )
    )
    print(
        f"\nmain job ({args.size}) finished in {total / 60:.1f} min; report: {out / 'report.html'}"
    )
    for line in _summary(out):
        print(line)
    if failed:
        print(f"FAILED steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
