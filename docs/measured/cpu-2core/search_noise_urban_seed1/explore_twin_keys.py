"""Exploration: refinement variants for sim2real_anchored on urban seed 1 (same setup as explore_robust)."""
import json, sys, time, dataclasses
import equinox as eqx, optax
import jax, jax.numpy as jnp, numpy as np
import opt
from opt.search import _problem, coordinate_refine, _finalise
from opt.constrained import augmented_lagrangian
from opt.safety import safe_score
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
tw = opt.twin_predictor(jax.random.PRNGKey(seed + 30_000), net, at, int(sys.argv[3]), kpis=ft.TARGETS)
anch = opt.AnchoredPredictor(sur, tw, current, 0.0, std_mode="blend")
args = type("A", (), dict(guardrails="area", margin_factor=0.5, starts=S["starts"],
            steps=S["steps"], refine_sweeps=S["refine_sweeps"]))()
safety, scfg = ft.search_settings(args)
key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), 0)
obj = opt.KPIObjective()
schema = DEFAULT_CM_SCHEMA

@eqx.filter_jit
def search_all(key, predictor, current_cm, safety, n_starts, n_steps, sweeps):
    prob = _problem(predictor, current_cm, obj, schema, safety)
    box = prob.box
    u_lo, u_hi = box.u_lo, box.u_hi
    u_cur = box.project_unit(box.unit(box.x_cur))
    u_rand = jax.random.uniform(key, (n_starts - 1, *u_lo.shape), jnp.float32)
    u0 = jnp.concatenate([u_cur[None], u_lo + u_rand * (u_hi - u_lo)])
    def fun(u):
        cm = schema.from_unit(schema.from_vector(u))
        pred = predictor(cm)
        score = safe_score(obj, safety, pred, cm, prob.ref, constraints=False)
        return -score / prob.ref.scale, obj.constraints(pred, cm)
    def run(u_start):
        return augmented_lagrangian(fun, u_start, box.project_unit, optax.adam(0.05), n_outer=1, n_inner=n_steps).x
    u_end = jax.vmap(run)(u0)
    k_all = box.k_of(box.from_unit(u_end))
    ks, ss = jax.vmap(lambda k: coordinate_refine(prob.score_k, box, k, sweeps))(k_all)
    best = jnp.argmax(ss)
    return _finalise(prob, box.x_of(ks[best]), ss[best]), ss
search_all = eqx.filter_jit(search_all.__wrapped__ if hasattr(search_all, "__wrapped__") else search_all)

cur = {k: jnp.asarray(v, jnp.float32) for k, v in current.items()}
recs = {}
def keyj(j): return key if j == 0 else jax.random.fold_in(key, 10_000 + j)
for name, fn in [
    ("twin%s" % sys.argv[3], lambda k: (opt.search(k, anch, current, safety=safety, config=scfg), None)),
]:
    for j in range(int(sys.argv[5]), int(sys.argv[4])):
        t = time.perf_counter()
        r, ss = fn(keyj(j))
        r = jax.tree.map(np.asarray, r)
        recs[f"{name}_k{j}"] = r
        print(f"{name}_k{j}: {float(r.objective_before):.2f}->{float(r.objective_after):.2f} "
              f"starts {None if ss is None else np.round(np.asarray(ss),1)} ({time.perf_counter()-t:.1f}s)", flush=True)

names = list(recs)
cms = {p: np.stack([np.asarray(current[p])] + [recs[n].cm[p] for n in names]) for p in schema.names}
truth = field_truth(field, cms, n_snapshots=S["truth_snapshots"], seed=seed + 10_000, chunk=16)
before = {k: truth[k][0] for k in ft.TARGETS}
curn = {p: np.asarray(current[p]) for p in schema.names}
res = {}
for i, n in enumerate(names, 1):
    e = ft.field_effect(before, {k: truth[k][i] for k in ft.TARGETS}, curn, recs[n].cm)
    res[n] = dict(gain=e["gain_pct"], gpr=e["gain_per_risk"], steps=e["mean_abs_change_steps"],
                  viol=e["guardrail_violated"], pred=float(recs[n].objective_after))
    r = res[n]
    print(f"{n:16s} gain {r['gain']:6.2f} gpr {r['gpr']:5.2f} steps {r['steps']:.2f} viol {r['viol']} pred {r['pred']:.1f}")
json.dump(res, open(f"/work/scratch/explore_twin{sys.argv[3]}_{area}_{seed}_from{sys.argv[5]}.json", "w"))
print(f"total {time.perf_counter()-t0:.0f}s")
