import math, sys, time
import jax, jax.numpy as jnp, numpy as np
from experiments import pipeline as P
from dtwin.field import field_snapshot_kpis
from dtwin.kpi import period_kpis, SNAPSHOTS_PER_PERIOD
from dtwin.cm import DEFAULT_CM_SCHEMA

def run(seed, size, n_test=48):
    field = P.field_for_area("urban", n_sites=7, seed=seed, gap=1.0)
    n = field.n_cells
    n_train = max(2, math.ceil(size / n))
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in DEFAULT_CM_SCHEMA.default(n).items()}
    keys = jax.random.split(P._field_keys(seed)[1], n_train + n_test)[n_train:]
    hours = jnp.asarray((np.arange(n_train, n_train + n_test) % 24), jnp.float32)
    def per_period(k, h):
        _, k_snap = jax.random.split(k)
        ks = jax.random.split(k_snap, SNAPSHOTS_PER_PERIOD)
        return jax.vmap(lambda kk: field_snapshot_kpis(kk, field, cm, noisy=False, period_key=k_snap, hour=h))(ks)
    per = jax.jit(jax.vmap(per_period))(keys, hours)
    flat = {k: v.reshape(-1, n) for k, v in per.items()}
    ctx = np.asarray(period_kpis(flat, flat["active_ues"])["dl_throughput_mbps"])
    t64 = np.asarray(P.field_truth(field, cm, n_snapshots=64, seed=seed + 3)["dl_throughput_mbps"])
    t1k = np.asarray(P.field_truth(field, cm, n_snapshots=1024, seed=seed + 999)["dl_throughput_mbps"])
    mape = lambda a, b: 100 * np.nanmean(np.abs(a / b - 1))
    lr = lambda a, b: np.nanmean(np.log(a / b))
    print(f"seed {seed} size {size} ctx {n_test}")
    for name, a, b in [("ctx vs t64", ctx, t64), ("t1k vs t64", t1k, t64), ("ctx vs t1k", ctx, t1k)]:
        print(f"   {name}: MAPE {mape(a,b):5.1f} %, mean log ratio {lr(a,b):+.3f}")

for seed in [int(s) for s in sys.argv[1].split(",")]:
    for size in [int(s) for s in sys.argv[2].split(",")]:
        t = time.time(); run(seed, size); print(f"   ({time.time()-t:.0f} s)", flush=True)
