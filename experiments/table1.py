"""Table 1 of the reference study on the field stand-in: accuracy of every transfer method.

One row per method (`sim2real.METHODS`): in-range MAPE/MAE on held-out commercial periods,
out-of-range MAPE/MAE for broad CMs (evaluated exactly on the synthetic field with
`experiments.pipeline.field_truth`), and response fidelity (per-cell Spearman and sign accuracy
across the CM candidates vs the field's exact response), plus the twin/commercial similarity.
The reference numbers (commercial-only 12.8 %, twin-only 31.0 %, Sim2Real 13.0 % in-range MAPE at
~39 % similarity) are shown beside ours.

Sizes: the reference study used 100,000 twin and 100,000 commercial samples (rows = cell x
snapshot); at 21 cells per snapshot that is::

    python -m experiments.table1 --twin-samples 100000 --commercial-samples 100000 \
        --twin-steps 3000 --commercial-steps 1000 --n-models 5

The defaults run in about 10 minutes on a 2-core CPU; ``--small`` is the CI size (~1 minute).
Writes ``<out>/table1.json`` and ``<out>/table1.md``.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from dtwin.sweep import DEFAULT_UE_CLUSTERING
from experiments import pipeline as P
from experiments.meta import write_result
from sim2real.transfer import METHODS, TransferConfig

ALL_METHODS = tuple(METHODS)


def add_common_flags(ap: argparse.ArgumentParser, *, twin: int, commercial: int) -> None:
    """Flags shared by the offline experiments (table1, scarcity)."""
    ap.add_argument("--area", default="urban", help="area type of the field and the twin")
    ap.add_argument("--n-sites", type=int, default=7, choices=(1, 7, 19))
    ap.add_argument("--gap", type=float, default=1.0, help="field's hidden reality, 0-3")
    ap.add_argument("--twin-samples", type=int, default=twin, help="twin rows (cells x snapshots)")
    ap.add_argument(
        "--commercial-samples",
        type=int,
        default=commercial,
        help="commercial training rows (cells x periods)",
    )
    ap.add_argument(
        "--test-periods",
        type=int,
        default=48,
        help="held-out commercial periods (consecutive hours; also the prediction context, so "
        "whole days keep every hour in it: 48 = two days; 32 before 2026-12-03)",
    )
    ap.add_argument("--candidates", type=int, default=24, help="broad CM candidates (out of range)")
    ap.add_argument(
        "--truth-snapshots",
        type=int,
        default=256,
        help="snapshots per exact KPI, hours stratified (64 before 2026-12-03; 256 stratified: "
        "about 4 %% per cell from a 2048-snapshot judge, 64: about 6 %%)",
    )
    ap.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated methods")
    ap.add_argument("--n-models", type=int, default=3, help="ensemble members")
    ap.add_argument("--twin-steps", type=int, default=800)
    ap.add_argument("--commercial-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--site-channel",
        default=None,
        help="site_channel.json from calibrate_materials: the twin (calibrated RT materials) and "
        "the field (true materials) of a matching area use the site-specific channel",
    )
    ap.add_argument(
        "--no-anchored",
        dest="anchored",
        action="store_false",
        help="skip the rows of the Sim2Real surrogate anchored to the twin's simulation",
    )
    ap.add_argument("--anchor-weight", type=float, default=0.5, help="surrogate share (0-1)")
    ap.add_argument(
        "--twin-sim-snapshots", type=int, default=32, help="twin snapshots of the anchored rows"
    )
    ap.add_argument(
        "--calibrate-ue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="calibrate the twin's UE clustering to the commercial mean SINR at the default CM "
        "(experiments.pipeline.calibrate_ue_clustering) before generating the twin data "
        "(default since 2026-12-03; default size, seed 0: the method's out-of-range MAPE "
        "30.4 -> 21.2 %%)",
    )
    ap.add_argument(
        "--cell-levels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add each cell's persistent level read from the commercial training rows "
        "(sim2real.fit_cell_levels) to every method trained on commercial data",
    )
    ap.add_argument(
        "--calibrate-cells",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="calibrate the anchored rows' twin simulation to each cell's commercial UE share "
        "(opt.calibrate_power_offsets, as the field trial's method does; default size: "
        "out-of-range MAPE 25.3 -> 24.6 %%)",
    )
    ap.add_argument("--small", action="store_true", help="CI size (about a minute)")
    ap.add_argument("--out", default="results", help="output directory")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")


def apply_small(args: argparse.Namespace) -> None:
    """Shrink every size for CI (``--small``)."""
    if args.small:
        args.n_sites = 1
        args.twin_sim_snapshots = min(args.twin_sim_snapshots, 8)
        args.twin_samples = min(args.twin_samples, 3 * 48)
        args.commercial_samples = min(args.commercial_samples, 3 * 32)
        args.test_periods = min(args.test_periods, 8)
        args.candidates = min(args.candidates, 6)
        args.truth_snapshots = min(args.truth_snapshots, 4)
        args.n_models = min(args.n_models, 2)
        args.twin_steps = min(args.twin_steps, 40)
        args.commercial_steps = min(args.commercial_steps, 20)


def methods_of(args: argparse.Namespace) -> list[str]:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    return methods


def transfer_config(args: argparse.Namespace) -> TransferConfig:
    return TransferConfig(
        n_models=args.n_models,
        twin_steps=args.twin_steps,
        commercial_steps=args.commercial_steps,
        eval_every=10 if args.small else 25,
        progress=not args.quiet,
    )


def prepare(args: argparse.Namespace, max_commercial_samples: int | None = None) -> dict[str, Any]:
    """Field, twin batch, commercial train/test tables, evaluation CMs and their exact truth."""
    site_twin, site_field = P.site_channels_for(getattr(args, "site_channel", None), args.area)
    field = P.field_for_area(
        args.area, n_sites=args.n_sites, seed=args.seed, gap=args.gap, site_channel=site_field
    )
    n = field.n_cells
    n_twin = max(2, math.ceil(args.twin_samples / n))
    n_train = max(2, math.ceil((max_commercial_samples or args.commercial_samples) / n))
    comm = P.commercial_table(field, n_train + args.test_periods, seed=args.seed)
    ids = np.asarray(comm["snapshot_id"])
    test_rows = ids >= n_train
    train = {k: np.asarray(v)[~test_rows] for k, v in comm.items()}
    test = {k: np.asarray(v)[test_rows] for k, v in comm.items()}
    clustering, calibration = DEFAULT_UE_CLUSTERING, None
    if getattr(args, "calibrate_ue", False):  # from the commercial training rows only
        clustering, calibration = P.calibrate_ue_clustering(
            args.area,
            train,
            n_sites=args.n_sites,
            seed=args.seed + 40_000,
            site_channel=site_twin,
            n_snapshots=8 if args.small else 128,
        )
    twin = P.twin_table(
        args.area,
        n_twin,
        n_sites=args.n_sites,
        seed=args.seed + 1,
        progress=not args.quiet,
        site_channel=site_twin,
        ue_clustering=clustering,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # masked no-UE rows are expected on the twin's broad CMs
        twin_batch, test_batch = P.batches(twin, test)
    cms = P.evaluation_cms(jax.random.PRNGKey(args.seed + 2), n, args.candidates)
    truth = P.field_truth(field, cms, n_snapshots=args.truth_snapshots, seed=args.seed + 3)
    near = P.narrow_cms(jax.random.PRNGKey(args.seed + 6), n, args.candidates)
    near_truth = P.field_truth(field, near, n_snapshots=args.truth_snapshots, seed=args.seed + 3)
    return dict(
        field=field,
        twin_batch=twin_batch,
        train=train,
        test_batch=test_batch,
        cms=cms,
        truth=truth,
        near_cms=near,
        near_truth=near_truth,
        n_cells=n,
        ue_clustering=clustering,
        ue_calibration=calibration,
    )


def train_rows(train: dict[str, np.ndarray], n_periods: int) -> dict[str, np.ndarray]:
    """The first ``n_periods`` commercial periods (a smaller commercial data set)."""
    keep = np.asarray(train["snapshot_id"]) < n_periods
    return {k: np.asarray(v)[keep] for k, v in train.items()}


ANCHORED = {"anchored_relative": "relative", "anchored_additive": "additive"}
"""Extra rows: the Sim2Real surrogate anchored to the twin's simulated CM response
(`opt.AnchoredPredictor`, surrogate share ``--anchor-weight``), in both blending modes."""


def anchored_predictors(args, setup, ensemble, context) -> dict[str, Any]:
    """The `ANCHORED` predictors of a Sim2Real ensemble: its level with the twin's response."""
    import jax.numpy as jnp

    import opt
    from dtwin.areas import area_type, network_for_area
    from dtwin.cm import DEFAULT_CM_SCHEMA
    from opt.predictor import ensemble_predictor

    site_twin, _ = P.site_channels_for(getattr(args, "site_channel", None), args.area)
    clustering = setup["ue_clustering"]
    at = area_type(args.area).with_site_channel(site_twin).with_ue_clustering(clustering)
    twin = opt.twin_predictor(
        jax.random.PRNGKey(args.seed + 30_000),
        network_for_area(at, args.n_sites),
        at,
        args.twin_sim_snapshots,
        kpis=(P.DEFAULT_TARGETS[0],),
    )
    sur = ensemble_predictor(ensemble, context)
    cur = {
        k: jnp.asarray(v, jnp.float32)
        for k, v in DEFAULT_CM_SCHEMA.default(setup["n_cells"]).items()
    }
    if getattr(args, "calibrate_cells", False):  # as the field trial's method: from the
        # commercial training rows' UE share per cell only (opt.calibrate_power_offsets)
        share = opt.cell_ue_share(setup["train"], cur)
        twin = opt.calibrate_power_offsets(twin, share, cur).predictor
    return {
        name: opt.AnchoredPredictor(sur, twin, cur, args.anchor_weight, mode=mode)
        for name, mode in ANCHORED.items()
    }


def run_methods(args, setup, commercial_cols, methods, key, pretrained=None) -> tuple[dict, float]:
    """Train every method on the given commercial rows and evaluate; returns (metrics, sim %).

    With ``args.anchored`` and ``sim2real`` among the methods, the `ANCHORED` rows are added."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, comm_batch = P.batches(None, commercial_cols)
    ens = P.train_all(
        methods, key, setup["twin_batch"], comm_batch, transfer_config(args), pretrained=pretrained
    )
    levels = P.fit_levels(ens, comm_batch) if getattr(args, "cell_levels", True) else {}
    metrics = P.evaluate_methods(
        ens,
        cell_levels=levels,
        test_batch=setup["test_batch"],
        cms=setup["cms"],
        truth=setup["truth"],
        in_range_cms=setup["near_cms"],
        in_range_truth=setup["near_truth"],
    )
    if getattr(args, "anchored", False) and "sim2real" in ens:
        tb = setup["test_batch"]
        tb = levels["sim2real"].apply(tb) if "sim2real" in levels else tb
        context = tb.take(np.arange(min(64, tb.n_snapshots)))  # as evaluate_methods
        metrics.update(
            P.evaluate_predictors(
                anchored_predictors(args, setup, ens["sim2real"], context),
                cms=setup["cms"],
                truth=setup["truth"],
                in_range_cms=setup["near_cms"],
                in_range_truth=setup["near_truth"],
            )
        )
    sim = P.similarity_pct(jax.random.PRNGKey(args.seed + 4), setup["twin_batch"], comm_batch)
    return metrics, sim


def _num(v: float, spec: str = ".2f") -> str:
    return "-" if v is None or not np.isfinite(v) else format(v, spec)


def markdown_table(metrics: dict[str, dict[str, float]], similarity: float) -> str:
    """Table 1 as Markdown, with the reference study's numbers beside ours."""
    ref = P.REFERENCE_TABLE1["in_range_mape_pct"]
    lines = [
        f"Twin/commercial similarity: {similarity:.1f} % (reference ~"
        f"{P.REFERENCE_TABLE1['similarity_pct']:.0f} %)",
        "",
        "In-range rows: held-out commercial periods (noisy per-period KPIs); in-range exact: "
        "narrow CMs vs the field's exact expected KPI; out-of-range: broad CMs vs exact KPI.",
        "",
        "| method | in-range MAPE % (rows) | in-range MAPE % (exact) | ref. % | "
        "out-of-range MAPE % | Spearman | sign acc. | in-range MAE Mbps | out-of-range MAE Mbps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, r in metrics.items():
        rv = f"{ref[m]:.1f}" if m in ref else "-"
        ex = r.get("in_range_exact_mape_pct", float("nan"))
        rows = r["in_range_mape_pct"]
        rows = "-" if not np.isfinite(rows) else f"{rows:.1f}"
        lines.append(
            f"| {m} | {rows} | {ex:.1f} | {rv} | "
            f"{r['out_of_range_mape_pct']:.1f} | "
            f"{r['response_spearman']:.2f} | {r['response_sign_accuracy']:.2f} | "
            f"{_num(r['in_range_mae'])} | {r['out_of_range_mae']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(ap, twin=3 * 21 * 64, commercial=3 * 21 * 64)
    args = ap.parse_args(argv)
    apply_small(args)
    methods = methods_of(args)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = prepare(args)
    metrics, sim = run_methods(args, setup, setup["train"], methods, jax.random.PRNGKey(args.seed))
    md = markdown_table(metrics, sim)
    (out / "table1.md").write_text(md)
    results = {
        "similarity_pct": sim,
        "methods": metrics,
        "reference": P.REFERENCE_TABLE1,
        "n_cells": setup["n_cells"],
        "twin_rows": int(np.asarray(setup["twin_batch"].mask).size),
        "commercial_train_rows": int(len(setup["train"]["cell_id"])),
        "twin_ue_clustering": setup["ue_clustering"],
        "ue_calibration": setup["ue_calibration"],
        "synthetic_field": True,
    }
    config = {**vars(args), "transfer": P.config_dict(transfer_config(args))}
    write_result(out / "table1.json", results, config=config, seed=args.seed, t0=t0)
    print(md)
    return results


if __name__ == "__main__":
    main()
