import sys, time, json, jax, numpy as np, opt
from dtwin.cm import DEFAULT_CM_SCHEMA as S
from experiments import field_trial as ft
from experiments.pipeline import field_for_area, field_truth
area, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
field = field_for_area(area, n_sites=7, seed=seed)
oracle = ft._field_oracle(field, n, seed + 20_000)
args = type("A", (), dict(guardrails="area", margin_factor=0.5, starts=4, steps=40, refine_sweeps=1))()
safety, scfg = ft.search_settings(args)
key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), 0)
cur = S.default(field.n_cells)
recs = {}
for j in range(int(sys.argv[4])):
    kj = key if j == 0 else jax.random.fold_in(key, 10_000 + j)
    t = time.perf_counter()
    recs[f"oracle{n}_k{j}"] = jax.tree.map(np.asarray, opt.search(kj, oracle, cur, safety=safety, config=scfg))
    print(j, f"{time.perf_counter()-t:.0f}s", flush=True)
names = list(recs)
curn = {p: np.asarray(v) for p, v in cur.items()}
cms = {p: np.stack([curn[p]] + [recs[k].cm[p] for k in names]) for p in S.names}
truth = field_truth(field, cms, n_snapshots=64, seed=seed + 10_000, chunk=16)
before = {k: truth[k][0] for k in ft.TARGETS}
res = {}
for i, k in enumerate(names, 1):
    e = ft.field_effect(before, {t: truth[t][i] for t in ft.TARGETS}, curn, recs[k].cm)
    res[k] = dict(gain=e["gain_pct"], gpr=e["gain_per_risk"], steps=e["mean_abs_change_steps"], viol=e["guardrail_violated"])
    print(k, res[k], flush=True)
json.dump(res, open(f"/work/scratch/oracle{n}_{area}_{seed}.json", "w"))
