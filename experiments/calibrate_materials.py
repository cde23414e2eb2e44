"""Site-specific channels through Sionna RT: virtual sounding, site fit and material calibration.

On a scene bundled with Sionna RT (default ``munich``):

1. virtual sounding with hidden "true" material properties -> per-link LSPs, site-specific
   TR 38.901 fit (`dtwin.rt.fit`) and the resulting UMa copy (`to_scenario`);
2. material calibration from per-position path gains (+ Gaussian noise) by gradient descent
   through the RT bridge, starting from the ITU defaults; held-out RSRP error before/after;
3. the same from operational per-cell aggregates (mean RSRP over the positions each cell serves);
4. ``site_channel.json``: the site-specific channel (pathloss offset, LOS/NLOS shadow-fading
   spreads, `dtwin.site_channel`) fitted to soundings with the calibrated materials (``twin``),
   the true ones (``field``) and the ITU defaults (``itu_default``). The main job builds the
   urban twin and the urban field stand-in on it (``--site-channel`` of the evaluation scripts).

Run ``python -m experiments.calibrate_materials`` (``--small`` for a CI-sized run on
``simple_street_canyon``). Writes ``results/calibrate_materials.json`` and PNG figures.
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

from dtwin.rt import RTScene, SolverConfig, rt_path_gains
from dtwin.rt.calibrate import calibrate, cell_mean_loss, cell_mean_rsrp_dbm, measurement_loss
from dtwin.rt.fit import fit_site_channel, to_scenario
from dtwin.rt.sounding import grid_positions_m, sound
from dtwin.site_channel import SiteChannel, save_site_channels

FIELDS = ("relative_permittivity", "conductivity")
# hidden truth = ITU default x factor
TRUE_FACTORS = {"relative_permittivity": 0.6, "conductivity": 4.0}


def _args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="munich", help="bundled Sionna RT scene or XML path")
    ap.add_argument("--small", action="store_true", help="CI-sized run on simple_street_canyon")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30, help="optimisation steps per calibration")
    ap.add_argument("--lr", type=float, default=0.1, help="Adam peak rate (cosine decay)")
    ap.add_argument("--noise-db", type=float, default=1.0, help="measurement noise std, dB")
    ap.add_argument("--spacing-m", type=float, default=25.0, help="receiver grid spacing")
    ap.add_argument("--half-width-m", type=float, default=150.0, help="receiver grid half width")
    ap.add_argument("--samples", type=int, default=20_000, help="rays per transmitter")
    ap.add_argument("--max-depth", type=int, default=2)
    ap.add_argument(
        "--num-materials", type=int, default=2, help="materials calibrated (most sensitive)"
    )
    ap.add_argument("--tx-power-dbm", type=float, default=15.0, help="transmit power per RE (RSRP)")
    ap.add_argument(
        "--area", default="urban", help="area type of the sounded site (for site_channel.json)"
    )
    ap.add_argument("--out", default="results")
    return ap.parse_args(argv)


def main(argv=None):
    args = _args(argv)
    if args.small:
        args.scene, args.steps, args.spacing_m, args.half_width_m = (
            "simple_street_canyon",
            12,
            15.0,
            45.0,
        )
        args.samples, args.num_materials = 5_000, 2
        tx = np.array([[-30.0, 0.0, 20.0], [35.0, 5.0, 15.0]], np.float32)
    elif args.scene == "munich":
        tx = np.array([[8.5, 21.0, 27.0], [-60.0, 80.0, 30.0], [70.0, -40.0, 30.0]], np.float32)
    else:
        tx = np.array([[0.0, 0.0, 30.0], [80.0, 0.0, 30.0], [0.0, 80.0, 30.0]], np.float32)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    config = SolverConfig(max_depth=args.max_depth, samples_per_src=args.samples, max_num_paths=24)
    scene = RTScene.from_file(args.scene, config=config)
    defaults = scene.default_material_params(FIELDS)

    # ---- receivers: a grid around the transmitters, keeping positions the tracer reaches
    c = tx[:, :2].mean(0)
    hw = args.half_width_m
    grid = np.asarray(
        grid_positions_m((c[0] - hw, c[0] + hw), (c[1] - hw, c[1] + hw), args.spacing_m, 1.5)
    )
    g_def, _ = rt_path_gains(defaults, tx, grid, scene=scene)
    rx = grid[np.asarray(jnp.any(g_def > 0, axis=1))]
    if rx.shape[0] < 4:
        raise SystemExit(f"only {rx.shape[0]} receivers reached; enlarge --half-width-m/--samples")
    print(f"{rx.shape[0]} of {grid.shape[0]} grid positions reached by the tracer")

    # ---- the most sensitive materials get hidden "true" values
    probe = jax.grad(
        lambda p: jnp.sum(jnp.where(g_def > 0, rt_path_gains(p, tx, grid, scene=scene)[1], 0.0))
    )(defaults)
    sens = {
        m: float(abs(probe[m]["relative_permittivity"]) + abs(probe[m]["conductivity"]))
        for m in probe
    }
    materials = sorted(sens, key=sens.get, reverse=True)[: args.num_materials]
    truth = {
        m: {f: np.float32(defaults[m][f] * TRUE_FACTORS[f]) for f in FIELDS} for m in materials
    }
    init = {m: {f: defaults[m][f] for f in FIELDS} for m in materials}
    print("calibrating", materials, "truth", truth)

    # ---- 1. virtual sounding and site fit (with the true materials)
    paths, lsps = sound(truth, tx, rx, scene=scene)
    fit = fit_site_channel(lsps, tx, rx, scene.carrier_hz)
    from dtwin.channel import UMa

    site_uma = to_scenario(fit, UMa())
    fit_summary = {
        state: {k: float(v) for k, v in vars(getattr(fit, state)).items()}
        for state in ("los", "nlos")
    }
    fit_summary["uma_pathloss_offset_db"] = float(site_uma.pathloss_offset_db)

    # ---- 2. per-position calibration (train/test split)
    _, true_db = rt_path_gains(truth, tx, rx, scene=scene)
    reached = np.asarray(jnp.isfinite(lsps.gain_db))
    perm = rng.permutation(rx.shape[0])
    n_train = max(rx.shape[0] * 2 // 3, 2)
    tr, te = perm[:n_train], perm[n_train:]
    if te.size == 0:
        te = tr
    measured = np.where(
        reached, np.asarray(true_db) + rng.normal(0, args.noise_db, true_db.shape), np.nan
    )
    opt = optax.adam(optax.cosine_decay_schedule(args.lr, max(args.steps, 1)))
    res_pos = calibrate(
        measurement_loss(scene, tx, rx[tr], measured[tr].astype(np.float32)),
        init, optimizer=opt, num_steps=args.steps, progress=True,
    )  # fmt: skip

    # ---- 3. calibration from per-cell aggregates (mean RSRP of the served positions)
    rsrp_true = np.where(reached, np.asarray(true_db), -np.inf) + args.tx_power_dbm
    serving = np.argmax(rsrp_true, axis=1).astype(np.int32)
    cell_mean = np.asarray(
        cell_mean_rsrp_dbm(jnp.asarray(np.nan_to_num(rsrp_true, neginf=-300.0)), serving)
    )
    cell_mean = cell_mean + rng.normal(0, args.noise_db / 4, cell_mean.shape)  # aggregate noise
    res_cell = calibrate(
        cell_mean_loss(scene, tx, rx, serving, cell_mean, offset_db=args.tx_power_dbm),
        init, optimizer=opt, num_steps=args.steps, progress=True,
    )  # fmt: skip

    # ---- site channels for the twin: soundings with the calibrated (and ITU default) materials
    site = {
        "field": SiteChannel.from_scenario(
            site_uma, source=f"{args.scene} RT, true materials", area=args.area
        )
    }
    for name, params in (("twin", res_pos.params), ("itu_default", init)):
        _, lsps_x = sound(params, tx, rx, scene=scene)
        fit_x = fit_site_channel(lsps_x, tx, rx, scene.carrier_hz)
        site[name] = SiteChannel.from_scenario(
            to_scenario(fit_x, UMa()),
            source=f"{args.scene} RT, {name.replace('_', ' ')} materials",
            area=args.area,
        )
    save_site_channels(out / "site_channel.json", site)
    print(
        "site channels (pathloss offset dB): "
        + ", ".join(f"{k} {v.pathloss_offset_db:+.2f}" for k, v in site.items())
    )

    # ---- evaluation on held-out positions
    def rmse(params, idx):
        pred = np.asarray(rt_path_gains(params, tx, rx[idx], scene=scene)[1])
        m = reached[idx]
        return float(np.sqrt(np.mean((pred - np.asarray(true_db)[idx])[m] ** 2)))

    def table(params):
        return {m: {f: float(params[m][f]) for f in FIELDS} for m in materials}

    results = {
        "materials": materials,
        "true": table(truth),
        "itu_default": table(init),
        "per_position": {
            "recovered": table(res_pos.params),
            "loss_history_db2": np.asarray(res_pos.loss_history).tolist(),
            "heldout_rmse_db_before": rmse(init, te),
            "heldout_rmse_db_after": rmse(res_pos.params, te),
            "seconds_per_step": res_pos.seconds_per_step,
        },
        "per_cell_aggregates": {
            "recovered": table(res_cell.params),
            "loss_history_db2": np.asarray(res_cell.loss_history).tolist(),
            "rmse_db_before": rmse(init, np.arange(rx.shape[0])),
            "rmse_db_after": rmse(res_cell.params, np.arange(rx.shape[0])),
            "seconds_per_step": res_cell.seconds_per_step,
        },
        "site_fit": fit_summary,
        "site_channel": {k: v.to_dict() for k, v in site.items()},
    }
    record = {
        "config": {**vars(args), "tx_positions_m": tx.tolist(), "num_rx": int(rx.shape[0]),
                   "num_train": int(tr.size), "num_test": int(te.size),
                   "true_factors": TRUE_FACTORS},
        "seed": args.seed,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "devices": [str(d) for d in jax.devices()], "rt_backend": "Dr.Jit LLVM (CPU)"},
        "wall_time_s": time.perf_counter() - t_start,
        "results": results,
    }  # fmt: skip
    (out / "calibrate_materials.json").write_text(
        json.dumps(_finite(record), indent=2, default=float, allow_nan=False)
    )
    _figures(
        out, rx, tx, reached, np.asarray(true_db), init, res_pos, res_cell, truth, materials, scene
    )
    print(
        json.dumps(results["per_position"] | {"loss_history_db2": "..."}, indent=1, default=float)
    )
    print(f"wrote {out / 'calibrate_materials.json'} in {record['wall_time_s']:.0f} s")


def _finite(x):
    """JSON-safe copy: NaN / inf -> None (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float | np.floating) and not np.isfinite(x):
        return None
    return x


def _figures(out, rx, tx, reached, true_db, init, res_pos, res_cell, truth, materials, scene):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(np.asarray(res_pos.loss_history), label="per-position path gains")
    ax.semilogy(np.asarray(res_cell.loss_history), label="per-cell mean RSRP")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (dB$^2$)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "calibrate_materials_loss.png", dpi=120)
    plt.close(fig)

    best = np.where(reached, true_db, -np.inf).max(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, params, title in (
        (axes[0], init, "ITU defaults"),
        (axes[1], res_pos.params, "calibrated"),
    ):
        pred = np.asarray(rt_path_gains(params, tx, rx, scene=scene)[1])
        err = np.where(reached, pred - true_db, np.nan)
        # error of the strongest link of each position
        e = err[np.arange(rx.shape[0]), np.argmax(np.where(reached, true_db, -np.inf), axis=1)]
        sc_ = ax.scatter(rx[:, 0], rx[:, 1], c=e, cmap="coolwarm", vmin=-3, vmax=3, s=30)
        ax.scatter(tx[:, 0], tx[:, 1], marker="^", c="k", s=60)
        ax.set_title(f"{title}: rms error {np.sqrt(np.nanmean(err**2)):.2f} dB", fontsize=9)
        ax.set_xlabel("x (m)")
    axes[0].set_ylabel("y (m)")
    fig.colorbar(sc_, ax=axes, label="predicted - true (dB)")
    fig.savefig(out / "calibrate_materials_rsrp_error_map.png", dpi=120)
    plt.close(fig)
    del best

    labels, t, r_pos, r_cell, i0 = [], [], [], [], []
    for m in materials:
        for f in FIELDS:
            short = {"relative_permittivity": "eps_r", "conductivity": "sigma"}[f]
            labels.append(f"{m}\n{short}")
            t.append(float(truth[m][f]))
            r_pos.append(float(res_pos.params[m][f]))
            r_cell.append(float(res_cell.params[m][f]))
            i0.append(float(init[m][f]))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (vals, lab) in enumerate(
        ((i0, "ITU default"), (t, "true"), (r_pos, "per-position"), (r_cell, "per-cell"))
    ):
        ax.bar(x + (k - 1.5) * 0.2, np.asarray(vals) / np.asarray(t), width=0.2, label=lab)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("value / true value")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "calibrate_materials_recovered.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
