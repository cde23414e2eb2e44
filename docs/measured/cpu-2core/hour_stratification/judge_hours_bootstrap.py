import sys, jax, jax.numpy as jnp, numpy as np
from experiments import pipeline as P
from dtwin.field import field_snapshot_kpis
from dtwin.cm import DEFAULT_CM_SCHEMA
seed = int(sys.argv[1])
field = P.field_for_area("urban", n_sites=7, seed=seed, gap=1.0); n = field.n_cells
cm = {k: jnp.asarray(v, jnp.float32) for k, v in DEFAULT_CM_SCHEMA.default(n).items()}
keys = jax.random.split(jax.random.PRNGKey(12345), 4096)
f = jax.jit(jax.vmap(lambda k: field_snapshot_kpis(k, field, cm, noisy=False)))
per = {k: np.concatenate([np.asarray(f(keys[i:i+512])[k]) for i in range(0, 4096, 512)]) for k in ["dl_throughput_mbps", "active_ues", "hour"]}
thr, w, hour = per["dl_throughput_mbps"], per["active_ues"], per["hour"][:, 0]
ok = np.isfinite(thr) & (w > 0)
tw = np.where(ok, thr * w, 0); ww = np.where(ok, w, 0)
full = tw.sum(0) / ww.sum(0)
print("per-cell pooled (4096):", np.round(full[:7], 1))
# by hour: contribution share and mean thr
for h in range(0, 24, 2):
    m = hour == h
    print(f" hour {h:2d}: n {m.sum():4d} UE mass {ww[m].sum()/ww.sum()*24:5.2f}x  thr {tw[m].sum()/ww[m].sum():7.1f}")
# bootstrap the 64-snapshot judge: network-level mean log ratio to the 4096 pool
rng = np.random.default_rng(0)
for nn in (64, 256, 1024):
    vals = []; mapes = []
    for _ in range(200):
        idx = rng.choice(4096, nn, replace=False)
        est = tw[idx].sum(0) / ww[idx].sum(0)
        vals.append(np.nanmean(np.log(est / full))); mapes.append(100*np.nanmean(np.abs(est/full-1)))
    vals = np.array(vals)
    print(f"n={nn}: network log ratio sd {vals.std():.3f} (min {vals.min():+.3f} max {vals.max():+.3f}); per-cell MAPE mean {np.mean(mapes):.1f}")
# the per-snapshot distribution of per-cell thr (log) spread
lt = np.log(np.where(ok, thr, np.nan))
print("per-snapshot per-cell log thr sd", np.nanstd(lt - np.nanmean(lt, 0)), "max/median", np.nanmax(thr)/np.nanmedian(thr))
