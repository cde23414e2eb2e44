"""UE behaviour from a conditional VAE trained on real data, refined through the network twin.

Runs the four stages of `dtwin.ue` end to end and writes ``results/ue_behaviour.json`` and PNGs:

1. Real data (``<repo>/../shared/data``, GPL-3.0, read in place): UCC 5G traces (speed, heading)
   and C2TM hourly cluster traffic (per-user demand). Split: C2TM hours from 2012-10-04 on and
   every 4th UCC session are held out.
2. CVAE (`dtwin.ue.cvae`) trained on the per-UE training set (`dtwin.ue.data.build_ue_training_set`;
   positions come from the documented TR 38.901 drop prior, not from data). Reported on the
   held-out set: -ELBO and importance-weighted NLL (nats/UE) vs a context-free factorised
   Gaussian; speed Wasserstein-1 / KS; diurnal demand-profile error; demand spread across
   clusters. Baseline: uniform drop + mean diurnal profile (train days) + empirical-mean speed.
3. Day-ahead demand predictor (`dtwin.ue.traffic`) vs seasonal-naive (previous day; previous week
   where available) on the held-out days.
4. Closed loop (`dtwin.ue.closed_loop`): targets from the twin with a known different UE
   distribution (UEs pushed to the cell edge, 2x demand) and other random draws; refine the
   decoder head on 2/3 of the cells; relative KPI error before/after on trained and held-out cells.

Usage: ``python -m experiments.ue_behaviour [--small] [--seed 0] [--out results]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy import stats  # noqa: E402

from dtwin.ue import closed_loop as cl  # noqa: E402
from dtwin.ue.cvae import CVAE, fit_cvae, log_likelihood_iw, mean_negative_elbo, sample_features  # noqa: E402
from dtwin.ue.data import (  # noqa: E402
    build_ue_training_set,
    cluster_area_types,
    load_c2tm,
    load_ucc_traces,
    split_traces,
)
from dtwin.ue.traffic import (  # noqa: E402
    DemandPredictor,
    fit_demand_predictor,
    mae_log,
    make_windows,
    predict,
    smape,
)

HELD_OUT_FROM = np.datetime64("2012-10-04T00")


def _gaussian_baseline_nll(x_train: np.ndarray, x_test: np.ndarray) -> float:
    """NLL (nats/UE) of a context-free model: Gaussians on entries 0-5, Bernoulli on 6."""
    mu, sd = x_train[:, :6].mean(0), x_train[:, :6].std(0)
    p = np.clip(x_train[:, 6].mean(), 1e-6, 1 - 1e-6)
    g = -stats.norm.logpdf(x_test[:, :6], mu, sd).sum(1)
    b = -(x_test[:, 6] * np.log(p) + (1 - x_test[:, 6]) * np.log(1 - p))
    return float(np.mean(g + b))


def _speed_of(x):
    return np.maximum(np.expm1(np.asarray(x)[:, 2]), 0.0)


def _cvae_stage(args, key, traffic, traces):
    train_tr, test_tr = split_traces(traces)
    held = traffic.hours >= HELD_OUT_FROM
    n_ch = 300 if args.small else 4000
    train = build_ue_training_set(
        args.seed, traffic, train_tr, hour_mask=~held, n_cluster_hours=n_ch
    )
    test = build_ue_training_set(
        args.seed + 1, traffic, test_tr, hour_mask=held, n_cluster_hours=n_ch // 4
    )
    k_init, k_fit, k_eval, k_iw, k_gen = jr.split(key, 5)
    model = CVAE(k_init, latent_size=4, width=64)
    steps = 300 if args.small else 4000
    t0 = time.time()
    model, losses = fit_cvae(k_fit, model, jnp.asarray(train.x), jnp.asarray(train.c), steps=steps)
    fit_s = time.time() - t0
    xt, ct = jnp.asarray(test.x), jnp.asarray(test.c)
    neg_elbo = float(mean_negative_elbo(k_eval, model, xt, ct))
    n_iw = min(2000, xt.shape[0])
    iw = eqx.filter_jit(jax.vmap(log_likelihood_iw, (0, None, 0, 0, None)))(
        jr.split(k_iw, n_iw), model, xt[:n_iw], ct[:n_iw], 64
    )
    base_nll = _gaussian_baseline_nll(train.x, test.x)

    # Generate one UE per held-out record, with that record's context.
    gen = eqx.filter_jit(jax.vmap(lambda k, c: sample_features(k, model, c, 1, 0.1)))(
        jr.split(k_gen, ct.shape[0]), ct
    )
    u_gen, indoor_gen = gen[0][:, 0, :], gen[1][:, 0]
    speed_real, speed_gen = _speed_of(test.x), _speed_of(u_gen)
    speed_base = np.full_like(speed_real, _speed_of(train.x).mean())
    demand_real_ue, demand_gen = np.exp(test.x[:, 5]), np.exp(np.asarray(u_gen[:, 5]))

    # Diurnal profile: geometric-mean per-user demand by hour of day (robust to the heavy tail).
    per_user = traffic.per_user_demand_mbps()
    log_pu = np.log(np.where(per_user > 0, per_user, np.nan))
    hod = traffic.hour_of_day
    test_hod = hod[test.hour_index]

    def geo_profile(log_values, hours, mask=None):
        prof = np.full(24, np.nan)
        for h in range(24):
            sel = hours == h if mask is None else (hours == h) & mask
            if np.any(sel):
                prof[h] = np.exp(np.nanmean(log_values[..., sel]))
        return prof

    real_prof = geo_profile(log_pu, hod, held)
    base_prof = geo_profile(log_pu, hod, ~held)
    gen_prof = geo_profile(np.log(demand_gen), test_hod)
    rec_prof = geo_profile(np.log(demand_real_ue), test_hod)
    ok = np.isfinite(real_prof) & np.isfinite(gen_prof) & np.isfinite(rec_prof)

    def spread(log_values, clusters):
        means = [np.mean(log_values[clusters == k]) for k in np.unique(clusters)]
        return float(np.std(means))

    # Spread across clusters: std over clusters of the cluster's mean log per-user demand.
    spread_real = spread(log_pu[test.cluster, test.hour_index], test.cluster)
    spread_gen = spread(np.log(demand_gen), test.cluster)
    # Baseline per-UE demand = mean diurnal profile of the train days (no cell dependence).
    spread_base = spread(np.log(base_prof[test_hod]), test.cluster)
    indoor_share_real = float(test.x[:, 6].mean())
    res = {
        "train_records": int(train.x.shape[0]),
        "test_records": int(test.x.shape[0]),
        "fit_steps": steps,
        "fit_seconds": fit_s,
        "final_train_loss_nats": float(np.mean(np.asarray(losses[-50:]))),
        "held_out_neg_elbo_nats_per_ue": neg_elbo,
        "held_out_iw_nll_nats_per_ue": float(-jnp.mean(iw)),
        "baseline_factorised_gaussian_nll_nats_per_ue": base_nll,
        "speed_w1_kmh": {
            "cvae": float(stats.wasserstein_distance(speed_gen, speed_real)),
            "baseline_mean_speed": float(stats.wasserstein_distance(speed_base, speed_real)),
        },
        "speed_ks": {
            "cvae": float(stats.ks_2samp(speed_gen, speed_real).statistic),
            "baseline_mean_speed": float(stats.ks_2samp(speed_base, speed_real).statistic),
        },
        "diurnal_profile_mean_abs_log_error": {
            "hours_compared": int(ok.sum()),
            "cvae_vs_real_held_out_days": float(np.mean(np.abs(np.log(gen_prof / real_prof))[ok])),
            "baseline_mean_profile_vs_real_held_out_days": float(
                np.mean(np.abs(np.log(base_prof / real_prof))[ok])
            ),
            "cvae_vs_held_out_records": float(np.mean(np.abs(np.log(gen_prof / rec_prof))[ok])),
        },
        "demand_spread_across_clusters_std_log": {
            "real": spread_real,
            "cvae": spread_gen,
            "baseline": spread_base,
        },
        "indoor_share": {
            "real": indoor_share_real,
            "cvae": float(np.mean(np.asarray(indoor_gen) > 0.5)),
        },
        "positions": "prior only (TR 38.901 uniform drop + hotspot); no positional data to compare",
    }
    plots = dict(
        speed_real=speed_real,
        speed_gen=speed_gen,
        speed_base=float(speed_base[0]),
        demand_real=demand_real_ue,
        demand_gen=demand_gen,
        real_prof=real_prof,
        base_prof=base_prof,
        gen_prof=gen_prof,
        losses=np.asarray(losses),
    )
    return model, res, plots, test


def _traffic_stage(args, key, traffic):
    held = traffic.hours >= HELD_OUT_FROM
    demand = traffic.per_user_demand_mbps() * traffic.users
    area = cluster_area_types(traffic)
    train = make_windows(demand, traffic.day_of_week, area, ~held, stride_h=6 if args.small else 1)
    test = make_windows(demand, traffic.day_of_week, area, held, stride_h=24)
    steps = 300 if args.small else 3000
    model, _ = fit_demand_predictor(key, DemandPredictor(jr.fold_in(key, 1)), train, steps=steps)
    y = jnp.asarray(test.target)
    pred = predict(model, test)
    naive = jnp.asarray(test.history)
    # Weekly naive where the same hours one week earlier were recorded.
    idx = test.start[:, None] - 168 + np.arange(24)[None, :]
    week = np.where(idx >= 0, demand[test.cell[:, None], np.maximum(idx, 0)], np.nan)
    ok = np.isfinite(week).all(1) & (week > 0).all(1)
    res = {
        "train_windows": int(train.history.shape[0]),
        "test_windows": int(test.history.shape[0]),
        "model": {"mae_log": float(mae_log(pred, y)), "smape": float(smape(pred, y))},
        "seasonal_naive_day": {
            "mae_log": float(mae_log(naive, y)),
            "smape": float(smape(naive, y)),
        },
    }
    if ok.any():
        w, yw, pw = jnp.asarray(week[ok]), y[ok], pred[ok]
        res["seasonal_naive_week"] = {
            "windows": int(ok.sum()),
            "mae_log": float(mae_log(w, yw)),
            "smape": float(smape(w, yw)),
            "model_on_same_windows_mae_log": float(mae_log(pw, yw)),
        }
    return res, dict(pred=np.asarray(pred[0]), target=np.asarray(y[0]), naive=np.asarray(naive[0]))


def _closed_loop_stage(args, key, model, test):
    from dtwin.channel import UMa
    from dtwin.geometry import hex_topology
    from dtwin.network import Network

    isd = 500.0
    r_m = isd / np.sqrt(3.0)
    topo = hex_topology(7, isd, 25.0)
    n_cells = topo.n_cells
    net = Network(topo, UMa())
    cm = {
        "tilt_deg": jnp.full(n_cells, 6.0),
        "tx_power_dbm": jnp.full(n_cells, 46.0),
        "cio_db": jnp.zeros(n_cells),
    }
    ctx = jnp.asarray(test.c[np.linspace(0, test.c.shape[0] - 1, n_cells).astype(int)])
    n_ues = 4 if args.small else 10
    k_truth, k_fit, k_eval, k_ch = jr.split(key, 4)
    n_snap = 1 if args.small else 3
    fns = [cl.network_kpi_fn(net, cm, k) for k in jr.split(k_ch, n_snap + 1)]

    def truth(b):  # known distortion: UEs pushed to the edge (r -> sqrt r), 2x demand
        r = (b.distance_2d_m - 10.0) / (r_m - 10.0)
        return eqx.tree_at(
            lambda b: (b.distance_2d_m, b.demand_mbps),
            b,
            (10.0 + (r_m - 10.0) * jnp.sqrt(r), 2.0 * b.demand_mbps),
        )

    def kpis(m, k, fn, tr=None):
        return eqx.filter_jit(
            lambda m: cl.evaluate(
                k, m, topo, ctx, fn, n_ues_per_cell=n_ues, cell_range_m=r_m, transform=tr
            )
        )(m)

    # Targets: mean over independent UE draws and channel snapshots of the distorted generator.
    n_avg = 2 if args.small else 4
    tks = jr.split(k_truth, n_avg)
    per = [kpis(model, tks[i], fns[i % len(fns)], truth) for i in range(n_avg)]
    targets = {k: jnp.mean(jnp.stack([p[k] for p in per]), 0) for k in per[0]}
    train_cells = jnp.arange(n_cells) % 3 != 2
    steps = 30 if args.small else 100
    t0 = time.time()
    res = cl.refine(
        k_fit,
        model,
        topo,
        ctx,
        targets,
        fns[:n_snap],
        train_cells,
        n_ues_per_cell=n_ues,
        cell_range_m=r_m,
        steps=steps,
        learning_rate=5e-3,
    )
    fit_s = time.time() - t0
    # Evaluate on fresh UE draws and the held-back channel snapshot, averaged.
    eks = jr.split(k_eval, n_avg)

    def mean_kpis(m):
        ps = [kpis(m, eks[i], fns[-1]) for i in range(n_avg)]
        return {k: jnp.mean(jnp.stack([p[k] for p in ps]), 0) for k in ps[0]}

    before, after = mean_kpis(model), mean_kpis(res.model)
    out = {
        "cells": n_cells,
        "ues_per_cell": n_ues,
        "steps": steps,
        "refine_seconds": fit_s,
        "loss_first_last": [float(res.losses[0]), float(res.losses[-1])],
    }
    for name, mask in (("train_cells", train_cells), ("held_out_cells", ~train_cells)):
        out[name] = {
            "relative_error_before": {
                k: float(v) for k, v in cl.relative_kpi_error(before, targets, mask).items()
            },
            "relative_error_after": {
                k: float(v) for k, v in cl.relative_kpi_error(after, targets, mask).items()
            },
            "loss_before": float(cl.kpi_loss(before, targets, mask)),
            "loss_after": float(cl.kpi_loss(after, targets, mask)),
        }
    return out, dict(
        before=before,
        after=after,
        targets=targets,
        losses=np.asarray(res.losses),
        train=np.asarray(train_cells),
    )


def _figures(out: Path, cv, tr, clp):
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    bins = np.linspace(0, 120, 41)
    ax[0].hist(cv["speed_real"], bins, density=True, alpha=0.5, label="real (held-out)")
    ax[0].hist(cv["speed_gen"], bins, density=True, alpha=0.5, label="CVAE")
    ax[0].axvline(cv["speed_base"], color="k", ls="--", label="baseline (mean)")
    ax[0].set(xlabel="speed (km/h)", ylabel="density", title="UE speed")
    ax[0].legend()
    lb = np.linspace(-6, 4, 41)
    ax[1].hist(np.log10(cv["demand_real"]), lb, density=True, alpha=0.5, label="real (held-out)")
    ax[1].hist(np.log10(cv["demand_gen"]), lb, density=True, alpha=0.5, label="CVAE")
    ax[1].set(xlabel="log10 demand (Mbps)", title="per-UE demand")
    ax[1].legend()
    ax[2].plot(cv["real_prof"], "k-o", ms=3, label="real held-out days")
    ax[2].plot(cv["base_prof"], "--", label="baseline: mean profile (train days)")
    ax[2].plot(cv["gen_prof"], "-s", ms=3, label="CVAE")
    ax[2].set(
        xlabel="hour of day (UTC+8)",
        ylabel="geometric-mean per-user demand (Mbps)",
        title="diurnal profile",
    )
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(out / "ue_behaviour_distributions.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(cv["losses"])
    ax[0].set(xlabel="step", ylabel="-ELBO (nats/UE)", title="CVAE training")
    ax[1].plot(tr["target"], "k-o", ms=3, label="real")
    ax[1].plot(tr["pred"], "-s", ms=3, label="model")
    ax[1].plot(tr["naive"], "--", label="seasonal naive")
    ax[1].set(
        xlabel="hour ahead", ylabel="demand (Mbps)", title="day-ahead demand, one held-out cell"
    )
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "ue_behaviour_training.png", dpi=120)
    plt.close(fig)

    if clp is None:
        return
    names = list(clp["targets"])
    fig, ax = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 4))
    for a, k in zip(ax, names, strict=False):
        t = np.asarray(clp["targets"][k])
        for kind, mk in (("before", "x"), ("after", "o")):
            v = np.asarray(clp[kind][k])
            a.scatter(t[clp["train"]], v[clp["train"]], marker=mk, label=f"{kind} (train cells)")
            a.scatter(
                t[~clp["train"]],
                v[~clp["train"]],
                marker="s" if kind == "after" else "D",
                facecolors="none",
                edgecolors="r" if kind == "after" else "m",
                label=f"{kind} (held-out)",
            )
        lo, hi = float(np.nanmin(t)), float(np.nanmax(t))
        a.plot([lo, hi], [lo, hi], "k:")
        a.set(xlabel=f"target {k}", ylabel=f"twin {k}", title=k)
    ax[0].legend(fontsize=7)
    ax[-1].plot(clp["losses"])
    ax[-1].set(xlabel="step", ylabel="KPI loss", title="closed-loop refinement")
    fig.tight_layout()
    fig.savefig(out / "ue_behaviour_closed_loop.png", dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--skip-closed-loop", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    key = jr.key(args.seed)
    k_cvae, k_tr, k_cl = jr.split(key, 3)
    traffic = load_c2tm()
    traces = load_ucc_traces()
    model, cvae_res, cvae_plots, test = _cvae_stage(args, k_cvae, traffic, traces)
    print("CVAE:", json.dumps(cvae_res, indent=1))
    tr_res, tr_plots = _traffic_stage(args, k_tr, traffic)
    print("traffic:", json.dumps(tr_res, indent=1))
    cl_res, cl_plots = (None, None)
    if not args.skip_closed_loop:
        cl_res, cl_plots = _closed_loop_stage(args, k_cl, model, test)
        print("closed loop:", json.dumps(cl_res, indent=1))
    _figures(args.out, cvae_plots, tr_plots, cl_plots)
    report = {
        "experiment": "ue_behaviour",
        "config": vars(args) | {"out": str(args.out)},
        "seed": args.seed,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "devices": [str(d) for d in jax.devices()],
        },
        "wall_seconds": time.time() - t_start,
        "cvae": cvae_res,
        "traffic_prediction": tr_res,
        "closed_loop": cl_res,
    }
    name = "ue_behaviour_small.json" if args.small else "ue_behaviour.json"
    (args.out / name).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
