"""KPI-vs-tilt response of one cell in the twin (and of its neighbours), with the twin's gradient.

For one cell of a 7-site network, the electrical tilt is swept over its whole range while every
other cell keeps the default CM; each point averages the same snapshots (common random numbers),
so the curve shows the CM response rather than sampling noise. The twin's gradient
d(KPI)/d(tilt) (soft association, smooth SE) is drawn as tangents.

    python -m experiments.response_curve [--area urban] [--snapshots 32] [--small]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.network import cell_kpis, simulate
from dtwin.sweep import sample_snapshot


def response_curve(
    area_name: str = "urban",
    n_snapshots: int = 32,
    cell: int = 0,
    seed: int = 0,
    n_sites: int = 7,
    ues_per_cell: int = 10,
) -> dict:
    """Mean KPIs of ``cell`` and of the other cells for every tilt on the operator's grid."""
    area = area_type(area_name)
    net = network_for_area(area, n_sites)
    schema = DEFAULT_CM_SCHEMA
    p = schema["tilt_deg"]
    tilts = np.arange(p.low, p.high + 1e-9, p.step, dtype=np.float32)
    base = schema.default(net.n_cells)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_snapshots)
    snaps = jax.vmap(lambda k: sample_snapshot(k, net, area, ues_per_cell, base))(keys)

    def kpis(tilt, hard):
        cm = dict(base, tilt_deg=base["tilt_deg"].at[cell].set(tilt))

        def one(snap):
            res = simulate(net, snap.population, snap.channel, cm, hard=hard)
            k = cell_kpis(net, snap.population, res)
            others = jnp.delete(jnp.arange(net.n_cells), cell, assume_unique_indices=True)
            return {
                "cell_dl_throughput_mbps": k["dl_throughput_mbps"][cell],
                "cell_prb_utilization": k["prb_utilization"][cell],
                "cell_coverage": k["coverage"][cell],
                "neighbours_dl_throughput_mbps": jnp.nanmean(k["dl_throughput_mbps"][others]),
                "network_mean_ue_throughput_mbps": jnp.sum(
                    res.user_throughput_mbps * snap.population.weight
                )
                / jnp.sum(snap.population.weight),
            }

        out = jax.vmap(one)(snaps)
        return {k: jnp.nanmean(v) for k, v in out.items()}

    hard_fn = jax.jit(lambda t: kpis(t, True))
    curve = [jax.device_get(hard_fn(jnp.float32(t))) for t in tilts]
    grad_fn = jax.jit(jax.grad(lambda t: kpis(t, False)["network_mean_ue_throughput_mbps"]))
    soft_fn = jax.jit(lambda t: kpis(t, False)["network_mean_ue_throughput_mbps"])
    grads = [float(grad_fn(jnp.float32(t))) for t in tilts[::3]]
    soft = [float(soft_fn(jnp.float32(t))) for t in tilts[::3]]
    return {
        "area": area_name,
        "cell": cell,
        "n_snapshots": n_snapshots,
        "tilt_deg": tilts.tolist(),
        "curves": {k: [float(c[k]) for c in curve] for k in curve[0]},
        "gradient_tilt_deg": tilts[::3].tolist(),
        "soft_network_mean_ue_throughput_mbps": soft,
        "d_network_throughput_d_tilt": grads,
        "best_tilt_deg_for_network": float(
            tilts[int(np.argmax([c["network_mean_ue_throughput_mbps"] for c in curve]))]
        ),
    }


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(res["tilt_deg"])
    c = res["curves"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(t, c["cell_dl_throughput_mbps"], "o-", label=f"cell {res['cell']}: mean UE DL thr.")
    ax[0].plot(t, c["neighbours_dl_throughput_mbps"], "s-", label="other cells: mean UE DL thr.")
    ax[0].plot(t, c["network_mean_ue_throughput_mbps"], "^-", label="network: mean UE thr.")
    tg = np.asarray(res["gradient_tilt_deg"])
    for x, y, g in zip(
        tg,
        res["soft_network_mean_ue_throughput_mbps"],
        res["d_network_throughput_d_tilt"],
        strict=True,
    ):
        ax[0].plot([x - 0.7, x + 0.7], [y - 0.7 * g, y + 0.7 * g], "k-", lw=2, alpha=0.6)
    ax[0].set_xlabel("electrical tilt of the cell (degrees)")
    ax[0].set_ylabel("Mbps")
    ax[0].set_title(f"{res['area']}: KPI response to one cell's tilt (black: twin gradient)")
    ax[0].legend(fontsize=8)
    ax[1].plot(t, c["cell_prb_utilization"], "o-", label="PRB utilisation")
    ax[1].plot(t, c["cell_coverage"], "s-", label="coverage (RSRP > -110 dBm)")
    ax[1].set_xlabel("electrical tilt (degrees)")
    ax[1].set_ylim(0, 1.05)
    ax[1].legend(fontsize=8)
    ax[1].set_title("the cell's load and coverage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--area", default="urban")
    ap.add_argument("--snapshots", type=int, default=32)
    ap.add_argument("--cell", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="CI-sized run")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    t0 = time.time()
    n = 4 if args.small else args.snapshots
    res = response_curve(
        args.area, n, args.cell, args.seed, n_sites=7, ues_per_cell=5 if args.small else 10
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(res, out / "response_curve.png")
    from experiments.meta import write_result

    write_result(out / "response_curve.json", res, config=vars(args), seed=args.seed, t0=t0)
    c = res["curves"]["network_mean_ue_throughput_mbps"]
    print(
        f"network mean UE throughput vs tilt of cell {args.cell}: "
        f"{min(c):.1f}..{max(c):.1f} Mbps, best tilt {res['best_tilt_deg_for_network']:.0f} deg"
    )
    return res


if __name__ == "__main__":
    main()
