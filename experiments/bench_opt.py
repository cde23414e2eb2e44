"""Benchmark: latency of gradient CM search for ~1,000 cells on this machine.

The network is ``ceil(cells / 3)`` independent 3-cell areas (a site's sectors interact; areas do
not), each with its own state, optimised jointly per area and vectorised over areas by
`opt.search_areas` in one jit-compiled call. The predictor stands in for the Sim2Real surrogate
ensemble: a concave response around a state-dependent optimum plus the output of a deep ensemble
of small random MLPs on ``[own CM, neighbours' mean CM, state]`` (their spread is the std), with
coverage and cell-edge KPIs for the default guardrails.

``--predictor twin`` times instead the search the field trial runs through the Digital Twin
itself (`opt.twin_predictor`: one area of ``--sites`` sites, the twin simulation over
``--twin-snapshots`` snapshots as the predictor): there compilation, not the run, dominates.

Writes ``results/bench_opt.json`` (configuration, seed, machine, compile and run times, results).

    python -m experiments.bench_opt                     # 1,000 cells, surrogate-like ensemble
    python -m experiments.bench_opt --small             # CI-sized
    python -m experiments.bench_opt --predictor twin    # one 7-site area through the twin
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from experiments.meta import LOADED_COMMIT
from opt import REASON_NAMES, Prediction, SafetyConfig, SearchConfig, search, search_areas

N_FEATURES = 2


class EnsemblePredictor(eqx.Module):
    """A surrogate-like predictor for one area (array leaves may carry a leading area axis)."""

    state: jnp.ndarray  # [cells, features]
    members: eqx.nn.MLP  # stacked over ensemble members

    def __call__(self, cm):
        u = SCHEMA.to_vector(SCHEMA.to_unit(cm))  # [cells, params]
        n = u.shape[0]
        neigh = (jnp.sum(u, 0, keepdims=True) - u) / max(n - 1, 1)
        target = 0.2 + 0.6 * jnp.concatenate([self.state, self.state[:, :1]], -1)
        base = 20.0 - 20.0 * jnp.sum((u - target) ** 2, -1) - 5.0 * jnp.sum((u - neigh) ** 2, -1)
        feats = jnp.concatenate([u, neigh, self.state], -1)
        out = eqx.filter_vmap(lambda m: jax.vmap(m)(feats))(self.members)  # [members, cells, 2]
        tp = base + 2.0 * jnp.tanh(out[..., 0])
        cov = 0.9 + 0.05 * jnp.tanh(out[..., 1]) - 0.1 * jnp.sum((u - target) ** 2, -1)
        mean = {
            "dl_throughput_mbps": jnp.mean(tp, 0),
            "cell_edge_throughput_mbps": jnp.mean(tp, 0) / 5.0,
            "coverage": jnp.mean(cov, 0),
        }
        std = {
            "dl_throughput_mbps": jnp.std(tp, 0),
            "cell_edge_throughput_mbps": jnp.std(tp, 0) / 5.0,
            "coverage": jnp.std(cov, 0),
        }
        return Prediction(mean, std)


def build(key, n_areas: int, cells_per_area: int, n_members: int):
    k_state, k_mlp, k_cm = jax.random.split(key, 3)
    state = jax.random.uniform(k_state, (n_areas, cells_per_area, N_FEATURES))
    members = eqx.filter_vmap(
        lambda k: eqx.nn.MLP(2 * len(SCHEMA) + N_FEATURES, 2, 32, 2, activation=jax.nn.gelu, key=k)
    )(jax.random.split(k_mlp, n_members))
    # the ensemble is shared; give every array leaf the area axis search_areas vmaps over
    members = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (n_areas, *a.shape)) if eqx.is_array(a) else a, members
    )
    current = SCHEMA.sample_local(k_cm, shape=(n_areas,), n_cells=cells_per_area, max_steps=2)
    return EnsemblePredictor(state, members), current


def build_twin(key, area: str, n_sites: int, n_snapshots: int):
    """One area's twin simulation as the predictor, and the default CM (`opt.twin_predictor`)."""
    from dtwin.areas import area_type, network_for_area
    from opt import twin_predictor

    at = area_type(area)
    net = network_for_area(at, n_sites)
    return twin_predictor(key, net, at, n_snapshots), SCHEMA.default(net.n_cells)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cells", type=int, default=1000, help="number of cells (rounded up to areas)")
    ap.add_argument("--cells-per-area", type=int, default=3)
    ap.add_argument("--members", type=int, default=5, help="ensemble members of the predictor")
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--refine-sweeps", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs after compilation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--predictor",
        choices=("ensemble", "twin"),
        default="ensemble",
        help="ensemble: ~1,000 cells of a surrogate-like ensemble (search_areas); twin: one "
        "area through the twin simulation (opt.search), as the field trial's searches",
    )
    ap.add_argument("--area", default="urban", help="twin: the area type")
    ap.add_argument("--sites", type=int, default=7, help="twin: sites of the area (3 cells each)")
    ap.add_argument("--twin-snapshots", type=int, default=64, help="twin: simulated snapshots")
    ap.add_argument("--small", action="store_true", help="CI-sized run (60 cells, 1 repeat)")
    ap.add_argument("--out", type=Path, default=Path("results/bench_opt.json"))
    args = ap.parse_args(argv)
    if args.small:
        args.cells, args.repeats = 60, 1
        args.sites, args.twin_snapshots = 1, 4
    if args.cells < 1 or args.cells_per_area < 1 or args.repeats < 1:
        ap.error("--cells, --cells-per-area and --repeats must be >= 1")
    if args.sites < 1 or args.twin_snapshots < 1:
        ap.error("--sites and --twin-snapshots must be >= 1")

    key = jax.random.key(args.seed)
    safety = SafetyConfig()  # defaults: 2-step trust region, κ = 1, guardrails, z = 1
    config = SearchConfig(
        n_starts=args.starts, n_steps=args.steps, refine_sweeps=args.refine_sweeps
    )
    if args.predictor == "twin":
        n_areas, cells_per_area = 1, 3 * args.sites
        predictor, current = build_twin(
            jax.random.PRNGKey(args.seed), args.area, args.sites, args.twin_snapshots
        )

        def run(k):
            return jax.tree.map(
                lambda x: x[None],  # one area: the same shapes as search_areas' output
                jax.block_until_ready(search(k, predictor, current, safety=safety, config=config)),
            )
    else:
        n_areas, cells_per_area = math.ceil(args.cells / args.cells_per_area), args.cells_per_area
        predictor, current = build(key, n_areas, cells_per_area, args.members)

        def run(k):
            return jax.block_until_ready(
                search_areas(k, predictor, current, safety=safety, config=config)
            )

    t0 = time.perf_counter()
    run(jax.random.key(args.seed + 1))
    first_s = time.perf_counter() - t0
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        rec = run(jax.random.key(args.seed + 2 + i))
        times.append(time.perf_counter() - t0)
    run_s = float(np.median(times))

    reasons = np.asarray(rec.reason).ravel()
    result = {
        "experiment": "bench_opt",
        "config": vars(args) | {"out": str(args.out), "n_areas": n_areas},
        "seed": args.seed,
        "git_commit": LOADED_COMMIT,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15min": list(os.getloadavg()),
        },
        "timings_s": {
            "first_call_incl_compile": first_s,
            "compile_estimate": first_s - run_s,
            "run_median": run_s,
            "run_all": times,
            "per_cell_ms": 1e3 * run_s / (n_areas * cells_per_area),
        },
        "results": {
            "n_cells": n_areas * cells_per_area,
            "objective_before_mean": float(jnp.mean(rec.objective_before)),
            "objective_after_mean": float(jnp.mean(rec.objective_after)),
            "changed_share": float(np.mean(np.asarray(rec.changed))),
            "reasons": {REASON_NAMES[r]: int(np.sum(reasons == r)) for r in np.unique(reasons)},
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["timings_s"], indent=2))
    print(json.dumps(result["results"], indent=2))
    return result


if __name__ == "__main__":
    main()
