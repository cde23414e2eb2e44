"""Is the in-range level mismatch the context periods' conditions vs the judge's?"""
import math, sys, time
import jax, jax.numpy as jnp, numpy as np
from experiments import pipeline as P
from dtwin.field import _pooled_kpis, field_kpis, field_snapshot_kpis
from dtwin.kpi import period_kpis, SNAPSHOTS_PER_PERIOD
from dtwin.cm import DEFAULT_CM_SCHEMA

def run(seed, size):
    field = P.field_for_area("urban", n_sites=7, seed=seed, gap=1.0)
    n = field.n_cells
    n_train = max(2, math.ceil(size / n)); n_test = 32
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in DEFAULT_CM_SCHEMA.default(n).items()}
    comm_key = P._field_keys(seed)[1]
    keys = jax.random.split(comm_key, n_train + n_test)[n_train:]
    # conditions of the context periods, noise-free, default CM (not their trial CMs)
    def per_period(k):
        _, k_snap = jax.random.split(k)
        ks = jax.random.split(k_snap, SNAPSHOTS_PER_PERIOD)
        per = jax.vmap(lambda kk: field_snapshot_kpis(kk, field, cm, noisy=False, period_key=k_snap))(ks)
        return per
    per = jax.jit(jax.vmap(per_period))(keys)  # [periods, snaps, cells]
    flat = {k: v.reshape(-1, n) for k, v in per.items()}
    ctx = np.asarray(period_kpis(flat, flat["active_ues"])["dl_throughput_mbps"])
    hours = np.asarray(per["hour"][:, 0, 0])
    t64 = np.asarray(P.field_truth(field, cm, n_snapshots=64, seed=seed + 3)["dl_throughput_mbps"])
    t1k = np.asarray(P.field_truth(field, cm, n_snapshots=1024, seed=seed + 999)["dl_throughput_mbps"])
    # the commercial test rows as observed (noisy; their own CMs)
    comm = P.commercial_table(field, n_train + n_test, seed=seed)
    ids = np.asarray(comm["snapshot_id"]); te = ids >= n_train
    thr = np.asarray(comm["dl_throughput_mbps"])[te].reshape(n_test, n)
    au = np.asarray(comm["active_ues"])[te].reshape(n_test, n)
    obs = np.nansum(thr * au, 0) / np.nansum(au * np.isfinite(thr), 0)
    mape = lambda a, b: 100 * np.nanmean(np.abs(a / b - 1))
    lr = lambda a, b: np.nanmean(np.log(a / b))
    print(f"seed {seed} size {size}: hours mean {hours.mean():.1f} act {np.mean(np.asarray(jax.vmap(lambda h: __import__('dtwin.sweep',fromlist=['x']).diurnal_activity(h))(hours))):.3f}")
    for name, a, b in [("ctx vs t64", ctx, t64), ("obs vs t64", obs, t64), ("t1k vs t64", t1k, t64), ("ctx vs t1k", ctx, t1k), ("obs vs ctx", obs, ctx)]:
        print(f"   {name}: MAPE {mape(a,b):5.1f} %, mean log ratio {lr(a,b):+.3f}")

for seed in [int(s) for s in sys.argv[1].split(",")]:
    for size in [int(s) for s in sys.argv[2].split(",")]:
        t = time.time(); run(seed, size); print(f"   ({time.time()-t:.0f} s)", flush=True)
