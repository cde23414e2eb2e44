"""Benchmark: links per second for coupling loss + geometry SINR, ours (JAX) vs Sionna 2.2 (torch).

Workload: the TR 38.901 Phase-1 UMi 6 GHz configuration, 57 cells × 570 UEs per drop, many
drops. Each side does the whole pipeline per drop: UE drop, LOS state, basic pathloss, O2I loss,
shadow fading, BS array gain (12° tilt, 10-element column), serving cell and geometry SINR.
Ours is ``jax.jit(jax.vmap(dtwin.links.phase1_drop))`` timed after a warm-up call with
``block_until_ready``; Sionna is :func:`experiments.calibration_38901.sionna_phase1` (Sionna's
multi-cell drop and UMi scenario; its O(UE²) LSP spatial filter skipped, which only makes it
faster). Both in the same process on the same machine.

Run: ``python -m experiments.bench_channel [--small]``; writes ``results/bench_channel.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINKS_PER_DROP = 570 * 57


def bench_ours(scenario: str, carrier_hz: float, drops_per_call: int, repeats: int) -> dict:
    import jax

    from dtwin.links import phase1_drop

    fn = jax.jit(jax.vmap(partial(phase1_drop, scenario_name=scenario, carrier_hz=carrier_hz)))
    keys = jax.random.split(jax.random.PRNGKey(0), drops_per_call)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys))
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        keys = jax.random.split(jax.random.PRNGKey(r + 1), drops_per_call)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(keys))
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "drops_per_call": drops_per_call,
        "repeats": repeats,
        "compile_and_first_call_s": round(compile_s, 3),
        "call_times_s": [round(t, 4) for t in times],
        "links_per_s": drops_per_call * LINKS_PER_DROP / best,
        "links_per_s_median": drops_per_call * LINKS_PER_DROP / sorted(times)[len(times) // 2],
    }


def bench_sionna(scenario: str, carrier_hz: float, drops: int, batch: int) -> dict:
    import torch

    from experiments.calibration_38901 import sionna_phase1

    sionna_phase1(scenario, carrier_hz, 1, 0, batch=1, progress=False)  # warm-up
    t0 = time.perf_counter()
    sionna_phase1(scenario, carrier_hz, drops, 1, batch=batch, progress=False)
    wall = time.perf_counter() - t0
    return {
        "drops": drops,
        "batch": batch,
        "wall_s": round(wall, 3),
        "links_per_s": drops * LINKS_PER_DROP / wall,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run")
    parser.add_argument("--drops", type=int, default=64, help="drops per jitted call (ours)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sionna-drops", type=int, default=16)
    parser.add_argument("--sionna-batch", type=int, default=4)
    parser.add_argument("--scenario", default="UMi", choices=("UMi", "UMa"))
    parser.add_argument("--carrier-hz", type=float, default=6e9)
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if args.small:
        args.drops, args.repeats, args.sionna_drops, args.sionna_batch = 4, 2, 2, 2

    import jax

    t0 = time.perf_counter()
    ours = bench_ours(args.scenario, args.carrier_hz, args.drops, args.repeats)
    sionna = bench_sionna(args.scenario, args.carrier_hz, args.sionna_drops, args.sionna_batch)
    report = {
        "experiment": "bench_channel",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seed": 0,
        "links_per_drop": LINKS_PER_DROP,
        "device": str(jax.devices()[0]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "jax_devices": [str(d) for d in jax.devices()],
        },
        "ours": ours,
        "sionna": sionna,
        "speedup_ours_over_sionna": ours["links_per_s"] / sionna["links_per_s"],
        "wall_time_s": round(time.perf_counter() - t0, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_channel.json").write_text(json.dumps(report, indent=1))
    print(f"ours   {ours['links_per_s']:.3e} links/s ({args.drops} drops/call)")
    print(f"sionna {sionna['links_per_s']:.3e} links/s")
    print(f"speed-up {report['speedup_ours_over_sionna']:.1f}x on {report['device']}")
    return report


if __name__ == "__main__":
    main()
