"""Real-data check of the link-level throughput proxy on the UCC 5G production data set.

Fits the few free parameters of SINR/CQI/RSRP -> throughput proxies (`dtwin.throughput`) on a
training split of sessions (split by file, never by row) and reports the held-out error against
naive baselines (median throughput per SNR bin of the training split; global median).

The proxies, each ``pred = k * SE(...)`` with ``k`` in Mbps per bit/s/Hz (an effective
bandwidth ``k = alpha * B * bandwidth_share * (1 - overhead)``: from throughput alone these four
factors are identifiable only as their product):

* ``shannon_snr``: truncated Shannon ``log2(1 + SNR + offset)`` with fitted offset and cap;
* ``cqi256_snr``: CQI Table 2 staircase (smooth) of ``SNR + offset``;
* ``cqi64_reported``: CQI Table 1 efficiency of the *reported* CQI (LTE Table 7.2.3-1 of TS 36.213
  is identical to NR Table 5.2.2.1-2); only ``k`` is fitted;
* ``shannon_rsrp``: truncated Shannon of ``RSRP + offset`` (offset ~ minus the noise+interference
  power in dBm);
* ``shannon_snr_rsrp_speed``: ``shannon_snr`` times ``exp(c_r (RSRP + 90) / 10 + c_v speed / 50)``.

All are fitted by minimising the training MAE (Adam on the L1 loss; the MAE-optimal predictor is
the conditional median, which is what the per-bin median baseline estimates directly).

Run: ``python -m experiments.proxy_vs_real [--small] [--splits 5] [--folders Download-Driving]``.
Writes ``results/proxy_vs_real.json`` and ``results/proxy_vs_real.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from dtwin import throughput as tp
from dtwin.realdata import DEFAULT_ROOT, load_ucc_sessions, split_sessions

RESULTS = Path("results")
SNR_BIN_DB = 2.0
MIN_ACTUAL_FOR_PCT_MBPS = 1.0


# --------------------------------------------------------------------------- proxies
def _shannon(x_db, cap):
    return tp.shannon_se_smooth(x_db, alpha=1.0, sinr_min_db=-10.0, se_max=cap, temperature_db=1.0)


def _pred_shannon_snr(p, f):
    return jnp.exp(p["log_k"]) * _shannon(f["snr_db"] + p["offset_db"], jnp.exp(p["log_cap"]))


def _pred_cqi256_snr(p, f):
    return jnp.exp(p["log_k"]) * tp.cqi_se_smooth(f["snr_db"] + p["offset_db"], "cqi256", 1.0)


def _pred_cqi64_reported(p, f):
    _, _, se = tp.cqi_table("cqi64")
    return jnp.exp(p["log_k"]) * se[f["cqi"].astype(jnp.int32)]


def _pred_shannon_rsrp(p, f):
    return jnp.exp(p["log_k"]) * _shannon(f["rsrp_dbm"] + p["offset_db"], jnp.exp(p["log_cap"]))


def _pred_shannon_snr_rsrp_speed(p, f):
    corr = jnp.exp(
        p["c_rsrp"] * (f["rsrp_dbm"] + 90.0) / 10.0 + p["c_speed"] * f["speed_kmh"] / 50.0
    )
    return _pred_shannon_snr(p, f) * corr


PROXIES = {
    "shannon_snr": (_pred_shannon_snr, {"log_k": 3.0, "offset_db": 0.0, "log_cap": 1.5}),
    "cqi256_snr": (_pred_cqi256_snr, {"log_k": 3.0, "offset_db": 0.0}),
    "cqi64_reported": (_pred_cqi64_reported, {"log_k": 3.0}),
    "shannon_rsrp": (_pred_shannon_rsrp, {"log_k": 3.0, "offset_db": 100.0, "log_cap": 1.5}),
    "shannon_snr_rsrp_speed": (
        _pred_shannon_snr_rsrp_speed,
        {"log_k": 3.0, "offset_db": 0.0, "log_cap": 1.5, "c_rsrp": 0.0, "c_speed": 0.0},
    ),
}


def _features(d: dict[str, np.ndarray]) -> dict[str, jnp.ndarray]:
    return {k: jnp.asarray(d[k], jnp.float32) for k in ("snr_db", "cqi", "rsrp_dbm", "speed_kmh")}


def fit_proxy(name: str, train: dict[str, np.ndarray], steps: int = 600, lr: float = 0.05):
    """Fit one proxy's parameters by Adam on the training MAE; returns (params, train_mae)."""
    fn, init = PROXIES[name]
    f = _features(train)
    y = jnp.asarray(train["dl_mbps"], jnp.float32)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in init.items()}
    # initial scale: median ratio of throughput to the proxy's SE at k = 1
    se0 = fn({**params, "log_k": jnp.asarray(0.0)}, f)
    params["log_k"] = jnp.log(jnp.maximum(jnp.median(y) / jnp.maximum(jnp.median(se0), 1e-3), 1e-3))
    opt = optax.adam(lr)

    def loss(p):
        return jnp.mean(jnp.abs(fn(p, f) - y))

    @jax.jit
    def step(p, s):
        val, g = jax.value_and_grad(loss)(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, val

    state = opt.init(params)
    for _ in range(steps):
        params, state, _ = step(params, state)
    return params, float(loss(params))


def predict(name: str, params, data: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(PROXIES[name][0](params, _features(data)), np.float64)


# --------------------------------------------------------------------------- baselines
def binned_median_baseline(train_x, train_y, test_x, bin_width):
    """Median of ``train_y`` per bin of ``train_x``; global median for bins unseen in training."""
    glob = float(np.median(train_y))
    tb = np.floor(train_x / bin_width).astype(int)
    med = {b: float(np.median(train_y[tb == b])) for b in np.unique(tb)}
    return np.array([med.get(b, glob) for b in np.floor(test_x / bin_width).astype(int)])


# --------------------------------------------------------------------------- metrics
def _rank(a):
    r = np.empty(a.size)
    r[np.argsort(a, kind="stable")] = np.arange(a.size)
    return r


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MAE (Mbps), median abs % error over rows with actual >= 1 Mbps, Pearson/Spearman r."""
    err = np.abs(pred - y)
    big = y >= MIN_ACTUAL_FOR_PCT_MBPS
    const = np.std(pred) < 1e-9
    return {
        "mae_mbps": float(np.mean(err)),
        "median_abs_pct_error": float(np.median(err[big] / y[big]) * 100) if big.any() else None,
        "pearson_r": None if const else float(np.corrcoef(pred, y)[0, 1]),
        "spearman_r": None if const else float(np.corrcoef(_rank(pred), _rank(y))[0, 1]),
    }


def run(
    root: Path = DEFAULT_ROOT,
    folders: tuple[str, ...] = ("Download-Driving",),
    n_splits: int = 5,
    test_fraction: float = 0.3,
    steps: int = 600,
    seed: int = 0,
    max_sessions: int | None = None,
    proxies: tuple[str, ...] = tuple(PROXIES),
    progress: bool = True,
) -> dict:
    """Load, split by session ``n_splits`` times, fit every proxy, evaluate on held-out sessions."""
    data, report = load_ucc_sessions(root, folders)
    if max_sessions is not None:
        keep = np.isin(data["session"], np.unique(data["session"])[:max_sessions])
        data = {k: (v[keep] if k != "files" else v) for k, v in data.items()}
    y_all = data["dl_mbps"]
    feature_corr = {
        c: float(np.corrcoef(data[c], y_all)[0, 1])
        for c in ("snr_db", "cqi", "rsrp_dbm", "speed_kmh")
    }
    per_split = []
    for s in tqdm(range(n_splits), desc="splits", disable=not progress):
        train, test = split_sessions(data, test_fraction, seed + s)
        y = test["dl_mbps"]
        res = {
            "train_sessions": int(np.unique(train["session"]).size),
            "test_sessions": int(np.unique(test["session"]).size),
            "train_rows": int(train["dl_mbps"].size),
            "test_rows": int(y.size),
            "models": {},
        }
        res["models"]["baseline_global_median"] = metrics(
            np.full(y.size, np.median(train["dl_mbps"])), y
        )
        res["models"]["baseline_median_per_snr_bin"] = metrics(
            binned_median_baseline(train["snr_db"], train["dl_mbps"], test["snr_db"], SNR_BIN_DB), y
        )
        res["models"]["baseline_median_per_cqi"] = metrics(
            binned_median_baseline(train["cqi"], train["dl_mbps"], test["cqi"], 1.0), y
        )
        res["params"] = {}
        for name in proxies:
            params, train_mae = fit_proxy(name, train, steps)
            m = metrics(predict(name, params, test), y)
            m["train_mae_mbps"] = train_mae
            res["models"][name] = m
            res["params"][name] = {k: float(v) for k, v in params.items()}
        per_split.append(res)

    summary = {}
    for model in per_split[0]["models"]:
        summary[model] = {}
        for key in ("mae_mbps", "median_abs_pct_error", "pearson_r", "spearman_r"):
            vals = [
                r["models"][model][key] for r in per_split if r["models"][model][key] is not None
            ]
            summary[model][key] = (
                {"mean": float(np.mean(vals)), "std": float(np.std(vals))} if vals else None
            )
    base = summary["baseline_median_per_snr_bin"]["mae_mbps"]["mean"]
    for model in summary:
        summary[model]["mae_ratio_to_snr_bin_baseline"] = summary[model]["mae_mbps"]["mean"] / base
    return {
        "data_report": report.as_dict(),
        "feature_pearson_r_with_dl_mbps": feature_corr,
        "rows": int(y_all.size),
        "dl_mbps_median": float(np.median(y_all)),
        "dl_mbps_mean": float(np.mean(y_all)),
        "summary": summary,
        "per_split": per_split,
        "_data": data,
    }


def _figure(out: dict, path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = out["_data"]
    train, test = split_sessions(data, 0.3, seed)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    rng = np.random.default_rng(0)
    idx = rng.choice(test["snr_db"].size, min(4000, test["snr_db"].size), replace=False)
    ax.scatter(
        test["snr_db"][idx] + rng.uniform(-0.4, 0.4, idx.size),
        test["dl_mbps"][idx],
        s=3,
        alpha=0.3,
        color="gray",
        label="held-out sessions (1 s samples)",
    )
    grid = np.arange(-20, 36, 1.0)
    bins = np.floor(train["snr_db"] / SNR_BIN_DB)
    centers = np.unique(bins)
    ax.plot(
        centers * SNR_BIN_DB + SNR_BIN_DB / 2,
        [np.median(train["dl_mbps"][bins == b]) for b in centers],
        "k.-",
        label="train median per 2 dB bin (baseline)",
    )
    for name in ("shannon_snr", "cqi256_snr"):
        p = out["per_split"][0]["params"][name]
        f = {
            "snr_db": grid,
            "cqi": np.zeros_like(grid),
            "rsrp_dbm": np.zeros_like(grid),
            "speed_kmh": np.zeros_like(grid),
        }
        ax.plot(
            grid,
            np.asarray(PROXIES[name][0]({k: jnp.asarray(v) for k, v in p.items()}, _features(f))),
            label=f"proxy {name}",
        )
    ax.set_xlabel("reported SNR (dB)")
    ax.set_ylabel("DL throughput (Mbps)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=7)
    ax.set_title("UCC 5G production, download while driving (5G NSA)")
    ax = axes[1]
    names = [m for m in out["summary"]]
    maes = [out["summary"][m]["mae_mbps"]["mean"] for m in names]
    errs = [out["summary"][m]["mae_mbps"]["std"] for m in names]
    ax.barh(
        names, maes, xerr=errs, color=["gray" if n.startswith("baseline") else "C0" for n in names]
    )
    ax.set_xlabel("held-out MAE (Mbps), mean +- std over session splits")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--folders", nargs="+", default=["Download-Driving"])
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="CI size: 2 splits, 150 steps")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.small:
        args.splits, args.steps = 2, 150
    t0 = time.time()
    out = run(args.root, tuple(args.folders), args.splits, 0.3, args.steps, args.seed)
    wall = time.time() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    _figure(out, args.out / "proxy_vs_real.png", args.seed)
    out.pop("_data")
    record = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seed": args.seed,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax_devices": [str(d) for d in jax.devices()],
        },
        "wall_time_s": wall,
        **out,
    }
    with open(args.out / "proxy_vs_real.json", "w") as fh:
        json.dump(record, fh, indent=1)
    print(
        json.dumps(
            {
                "feature_r": out["feature_pearson_r_with_dl_mbps"],
                "summary": {
                    m: {
                        "mae": round(v["mae_mbps"]["mean"], 2),
                        "mdape": v["median_abs_pct_error"]
                        and round(v["median_abs_pct_error"]["mean"], 1),
                        "ratio": round(v["mae_ratio_to_snr_bin_baseline"], 3),
                    }
                    for m, v in out["summary"].items()
                },
            },
            indent=1,
        )
    )
    return record


if __name__ == "__main__":
    main()
