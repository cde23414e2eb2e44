"""Exploration: variance reduction / sparsification for sim2real_anchored on one area."""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
import opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.sweep import DEFAULT_UE_CLUSTERING
from experiments import field_trial as ft
from experiments.pipeline import (batches, commercial_table, ensemble_predictor, field_for_area,
    field_truth, train_all, twin_table)
from sim2real.transfer import TransferConfig

area, seed = sys.argv[1], int(sys.argv[2])
S = ft.SIZES["default"]
t0 = time.perf_counter()
field = field_for_area(area, n_sites=S["sites"], seed=seed)
comm = commercial_table(field, S["periods"], seed=seed)
twin = twin_table(area, S["twin_snapshots"], n_sites=S["sites"], seed=seed, progress=False,
                  ue_clustering=DEFAULT_UE_CLUSTERING)
tb, cb = batches(twin, comm, targets=ft.TARGETS)
cfg = TransferConfig(n_models=S["members"], twin_steps=S["twin_steps"],
                     commercial_steps=S["commercial_steps"], progress=False)
models = train_all(("sim2real",), jax.random.PRNGKey(seed), tb, cb, cfg)
n_ctx = min(S["context"], cb.n_snapshots)
context = cb.take(np.arange(cb.n_snapshots - n_ctx, cb.n_snapshots))
sur = ensemble_predictor(models["sim2real"], context)
print(f"trained {time.perf_counter()-t0:.0f}s", flush=True)
current = DEFAULT_CM_SCHEMA.default(field.n_cells)
at = area_type(area).with_ue_clustering(DEFAULT_UE_CLUSTERING)
net = network_for_area(at, S["sites"])
D = 4
twins = [opt.twin_predictor(jax.random.PRNGKey(seed + 30_000 + (1000 * d if d else 0)), net, at,
                            S["twin_sim_snapshots"], kpis=ft.TARGETS) for d in range(D)]
anch = [opt.AnchoredPredictor(sur, t, current, 0.0, std_mode="blend") for t in twins]
oracle = ft._field_oracle(field, S["oracle_snapshots"], seed + 20_000)
args = type("A", (), dict(guardrails="area", margin_factor=0.5, starts=S["starts"],
            steps=S["steps"], refine_sweeps=S["refine_sweeps"]))()
safety, scfg = ft.search_settings(args)
key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), 0)
obj = opt.KPIObjective()

recs = {}
def run(name, pred, k, sf=safety):
    t = time.perf_counter()
    r = jax.tree.map(np.asarray, opt.search(k, pred, current, safety=sf, config=scfg))
    recs[name] = r
    print(f"{name}: {float(r.objective_before):.2f}->{float(r.objective_after):.2f} "
          f"({time.perf_counter()-t:.1f}s)", flush=True)

K = 4
for d in range(3):
    for j in range(K if d == 0 else 1):
        kj = key if j == 0 else jax.random.fold_in(key, 10_000 + j)
        run(f"anch_d{d}_k{j}", anch[d], kj)
run("twin_d0_k0", twins[0], key)
for cc in (0.01, 0.02):
    import dataclasses
    run(f"anch_d0_k0_cc{cc}", anch[0], key, dataclasses.replace(safety, change_cost=cc))
run("oracle", oracle, key)

names = list(recs)
# predicted objective of every candidate under every anchored draw
pv = {}
for n in names:
    cm = {p: jnp.asarray(recs[n].cm[p]) for p in DEFAULT_CM_SCHEMA.names}
    pv[n] = [float(obj.value(a(cm), cm, 0.0)) for a in anch]
cms = {p: np.stack([np.asarray(current[p])] + [recs[n].cm[p] for n in names])
       for p in DEFAULT_CM_SCHEMA.names}
truth = field_truth(field, cms, n_snapshots=S["truth_snapshots"], seed=seed + 10_000, chunk=16)
before = {k: truth[k][0] for k in ft.TARGETS}
cur = {p: np.asarray(current[p]) for p in DEFAULT_CM_SCHEMA.names}
res = {}
for i, n in enumerate(names, 1):
    e = ft.field_effect(before, {k: truth[k][i] for k in ft.TARGETS}, cur, recs[n].cm)
    res[n] = dict(gain=e["gain_pct"], gpr=e["gain_per_risk"], steps=e["mean_abs_change_steps"],
                  viol=e["guardrail_violated"], pred=pv[n],
                  cm={p: recs[n].cm[p].tolist() for p in DEFAULT_CM_SCHEMA.names})
og = res["oracle"]["gain"]
for n in names:
    r = res[n]
    print(f"{n:22s} gain {r['gain']:6.2f} share {r['gain']/og:5.2f} gpr {r['gpr']:5.2f} "
          f"steps {r['steps']:.2f} viol {r['viol']} pred {np.round(r['pred'],1)}")
json.dump(res, open(f"/work/scratch/explore_{area}_{seed}.json", "w"))
print(f"total {time.perf_counter()-t0:.0f}s")
