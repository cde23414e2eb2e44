"""Commercial-data scarcity on the field stand-in: Table 1's metrics vs the commercial sample size.

The reference study compares 1k, 10k and 100k commercial samples (rows = cell x period). Every
method is retrained on the first ``n`` commercial periods of one data set (nested subsets, one
shared held-out test set, one twin data set and one twin pre-training per size); the twin size
is fixed. ``--scale`` divides the sample sizes (default 10: 100, 1k, 10k rows, which runs in about
10 minutes on a 2-core CPU); ``--scale 1`` is the full study. ``--small`` is the CI size.

Writes ``<out>/scarcity.json`` and ``<out>/scarcity.png`` (metric vs samples, one line per method).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import jax

from experiments import table1 as T
from experiments.meta import write_result
from sim2real.transfer import pretrain_twin

FULL_SIZES: tuple[int, ...] = (1_000, 10_000, 100_000)
"""The reference study's commercial sample sizes (rows)."""

METRICS: tuple[tuple[str, str], ...] = (
    ("in_range_exact_mape_pct", "in-range MAPE vs exact KPI (%)"),
    ("out_of_range_mape_pct", "out-of-range MAPE (%, log scale)"),
    ("response_spearman", "response Spearman"),
)
"""Plotted metrics: the in-range one against the field's exact KPI (defined for every row,
including the method's, which has no per-period prediction), out of range on a log axis (an
extrapolating method can reach 10^9 % at 100 rows)."""

METHOD_ROW = "anchored_relative"
"""The framework's method (Sim2Real level + the twin's relative response), drawn thickest."""


def plot(sizes: list[int], rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(rows[0]["methods"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4))
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        for m in methods:
            y = [r["methods"][m][key] for r in rows]
            lw = {"sim2real": 2.0, METHOD_ROW: 2.5}.get(m, 1.2)
            name = f"{m} (the method)" if m == METHOD_ROW else m
            ax.plot(sizes, y, "-o", lw=lw, label=name)
        ax.set_xscale("log")
        if key == "out_of_range_mape_pct":
            ax.set_yscale("log")
        ax.set_xlabel("commercial samples (rows)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Commercial-data scarcity (synthetic field stand-in)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.add_common_flags(ap, twin=3 * 21 * 64, commercial=FULL_SIZES[-1])
    ap.add_argument("--scale", type=float, default=10.0, help="divide the sample sizes by this")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        raise SystemExit(f"--scale must be > 0, got {args.scale}")
    T.apply_small(args)
    methods = T.methods_of(args)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scale = args.scale if not args.small else max(args.scale, FULL_SIZES[-1] / (3 * 32))
    sizes = [max(2 * 3, int(round(s / scale))) for s in FULL_SIZES]
    setup = T.prepare(args, max_commercial_samples=max(sizes))
    n = setup["n_cells"]
    key = jax.random.PRNGKey(args.seed)
    pretrained = None
    if any(m != "commercial_only" for m in methods):  # one twin pre-training for every size
        pretrained = pretrain_twin(
            jax.random.split(key)[0], setup["twin_batch"], T.transfer_config(args)
        )
    rows = []
    for i, size in enumerate(sizes):
        periods = max(2, math.ceil(size / n))
        comm = T.train_rows(setup["train"], periods)
        metrics, sim = T.run_methods(
            args, setup, comm, methods, jax.random.fold_in(key, i), pretrained=pretrained
        )
        rows.append(
            {
                "samples": int(len(comm["cell_id"])),
                "periods": periods,
                "similarity_pct": sim,
                "methods": metrics,
            }
        )
        print(
            f"{size} samples (in-range exact / out-of-range MAPE): "
            + ", ".join(
                f"{m} {v['in_range_exact_mape_pct']:.1f}/{v['out_of_range_mape_pct']:.1f}%"
                for m, v in metrics.items()
            ),
            flush=True,
        )
    actual = [r["samples"] for r in rows]
    plot(actual, rows, out / "scarcity.png")
    config = {**vars(args), "sizes": sizes, "transfer": T.P.config_dict(T.transfer_config(args))}
    write_result(
        out / "scarcity.json",
        {
            "sizes": actual,
            "reference_sizes": list(FULL_SIZES),
            "rows": rows,
            "synthetic_field": True,
        },
        config=config,
        seed=args.seed,
        t0=t0,
    )
    return {"sizes": actual, "rows": rows}


if __name__ == "__main__":
    main()
