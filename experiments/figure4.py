"""Figure 4 of the reference study on the field stand-in: predicted vs true KPI response curves.

One cell's electrical tilt (and, in a second panel, its transmit power) is swept across its whole
range (`dtwin.cm.DEFAULT_CM_SCHEMA` grid) with every other parameter and cell at the default CM.
Each transfer method's predicted KPI of that cell (ensemble mean over the states of held-out
commercial periods, ± the ensemble spread), and the framework's method (the Sim2Real level with
the twin simulation's relative CM response, Table 1's ``anchored_relative``), are drawn beside
the field's exact KPI
(`experiments.pipeline.field_truth`, common random numbers). The commercial data explores only
±1 step around the default, so most of each curve is out of range.

Writes ``<out>/figure4.json`` and ``<out>/figure4.png``. ``--small`` is the CI size.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dtwin.cm import DEFAULT_CM_SCHEMA
from experiments import pipeline as P
from experiments import table1 as T
from experiments.meta import write_result
from opt.predictor import predict_candidates

SWEPT: tuple[str, ...] = ("tilt_deg", "tx_power_dbm")

METHOD_CURVE = "anchored_relative"
"""The framework's method (Table 1's row): the Sim2Real surrogate's level with the twin
simulation's relative CM response (`experiments.table1.anchored_predictors`); drawn unless
``--no-anchored`` or ``sim2real`` is not among the methods."""


def sweep_cms(n_cells: int, cell: int, param: str) -> dict[str, np.ndarray]:
    """``[grid, cells]`` CMs: the default CM with ``param`` of ``cell`` on every grid value."""
    p = DEFAULT_CM_SCHEMA[param]
    grid = p.low + p.step * np.arange(p.n_steps + 1)
    base = {k: np.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(n_cells).items()}
    cms = {k: np.repeat(v[None], len(grid), 0) for k, v in base.items()}
    cms[param][:, cell] = grid
    return cms


def curves(
    ensembles,
    setup,
    cell: int,
    truth_snapshots: int,
    seed: int,
    cell_levels=None,
    predictors=None,
) -> dict[str, Any]:
    """Predicted (mean, std) and true KPI of ``cell`` along each swept parameter.

    ``cell_levels``: method -> `sim2real.CellLevels` added to the context (`P.fit_levels`).
    ``predictors``: further curves from any `opt` predictor (name -> predictor, e.g. the
    method's `opt.AnchoredPredictor`), drawn by their mean only (std NaN)."""
    target = P.DEFAULT_TARGETS[0]
    levels = dict(cell_levels or {})
    tb = setup["test_batch"]
    contexts = {m: levels[m].apply(tb) if m in levels else tb for m in ensembles}
    out: dict[str, Any] = {}
    for param in SWEPT:
        cms = sweep_cms(setup["n_cells"], cell, param)
        truth = P.field_truth(setup["field"], cms, n_snapshots=truth_snapshots, seed=seed)
        rec: dict[str, Any] = {
            "values": cms[param][:, cell].tolist(),
            "truth": truth[target][:, cell].tolist(),
            "methods": {},
        }
        for name, ens in ensembles.items():
            pred = P.ensemble_predictor(ens, contexts[name])
            fn = jax.jit(jax.vmap(lambda c: pred(c)))  # noqa: B023
            res = fn({k: jnp.asarray(v) for k, v in cms.items()})
            mean = np.asarray(res.mean[target])[:, cell]
            std = np.asarray(res.std[target])[:, cell]
            rec["methods"][name] = _curve(mean, std, np.asarray(truth[target])[:, cell])
        for name, p in (predictors or {}).items():
            mean = np.asarray(predict_candidates(p, cms, chunk=8)[target])[:, cell]
            nan = np.full_like(mean, np.nan)
            rec["methods"][name] = _curve(mean, nan, np.asarray(truth[target])[:, cell])
        out[param] = rec
    return out


def _curve(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """One predicted curve (Mbps) with its MAPE (%) and Spearman against the field's."""
    ok = np.isfinite(truth)
    return {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "mape_pct": float(100 * np.mean(np.abs(mean[ok] - truth[ok]) / np.abs(truth[ok]))),
        "spearman": float(_spearman(mean[ok], truth[ok])),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def plot(res: dict[str, Any], path: Path, cell: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SWEPT), figsize=(6 * len(SWEPT), 4.2))
    for ax, param in zip(np.atleast_1d(axes), SWEPT, strict=True):
        r = res[param]
        x = np.asarray(r["values"])
        ax.plot(x, r["truth"], "k-o", lw=2.5, ms=4, label="field (exact)", zorder=5)
        for name, m in r["methods"].items():
            mean, std = np.asarray(m["mean"]), np.asarray(m["std"])
            lw = {"sim2real": 2.0, METHOD_CURVE: 2.5}.get(name, 1.2)
            label = f"{name} (the method)" if name == METHOD_CURVE else name
            (line,) = ax.plot(x, mean, lw=lw, label=label)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.12)
        d = DEFAULT_CM_SCHEMA[param]
        ax.axvspan(
            d.default - d.step,
            d.default + d.step,
            color="grey",
            alpha=0.15,
            label="commercial range",
        )
        ax.set_xlabel(param)
        ax.set_ylabel(f"cell {cell} {P.DEFAULT_TARGETS[0]}")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Predicted vs true KPI response (synthetic field stand-in)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    T.add_common_flags(ap, twin=3 * 21 * 64, commercial=3 * 21 * 64)
    ap.add_argument("--cell", type=int, default=0, help="cell whose CM is swept")
    args = ap.parse_args(argv)
    T.apply_small(args)
    args.candidates = max(2, min(args.candidates, 2))  # figure 4 needs no broad candidates
    methods = T.methods_of(args)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = T.prepare(args)
    if not 0 <= args.cell < setup["n_cells"]:
        raise SystemExit(f"--cell must be in [0, {setup['n_cells'] - 1}], got {args.cell}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, comm_batch = P.batches(None, setup["train"])
    ens = P.train_all(
        methods,
        jax.random.PRNGKey(args.seed),
        setup["twin_batch"],
        comm_batch,
        T.transfer_config(args),
    )
    levels = P.fit_levels(ens, comm_batch) if args.cell_levels else {}
    extra = {}
    if args.anchored and "sim2real" in ens:  # the method: Sim2Real level + twin response
        tb = setup["test_batch"]
        context = levels["sim2real"].apply(tb) if "sim2real" in levels else tb
        anchored = T.anchored_predictors(args, setup, ens["sim2real"], context)
        extra = {METHOD_CURVE: anchored[METHOD_CURVE]}
    res = curves(ens, setup, args.cell, args.truth_snapshots, args.seed + 5, levels, extra)
    plot(res, out / "figure4.png", args.cell)
    config = {**vars(args), "transfer": P.config_dict(T.transfer_config(args))}
    write_result(
        out / "figure4.json",
        {"cell": args.cell, "curves": res, "synthetic_field": True},
        config=config,
        seed=args.seed,
        t0=t0,
    )
    for param in SWEPT:
        summary = {m: round(v["mape_pct"], 1) for m, v in res[param]["methods"].items()}
        print(f"{param}: curve MAPE % {summary}")
    return res


if __name__ == "__main__":
    main()
