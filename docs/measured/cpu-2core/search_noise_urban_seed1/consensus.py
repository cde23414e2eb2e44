import json, numpy as np, jax
from dtwin.cm import DEFAULT_CM_SCHEMA as S
from experiments import field_trial as ft
from experiments.pipeline import field_for_area, field_truth
r = json.load(open("/work/scratch/explore_urban_1.json"))
field = field_for_area("urban", n_sites=7, seed=1)
cur = {p: np.asarray(v) for p, v in S.default(field.n_cells).items()}
groups = {
  "median_anch_d0_k0-3": [f"anch_d0_k{j}" for j in range(4)],
  "median_anch_6": [f"anch_d0_k{j}" for j in range(4)] + ["anch_d1_k0", "anch_d2_k0"],
  "median_anch6_twin": [f"anch_d0_k{j}" for j in range(4)] + ["anch_d1_k0", "anch_d2_k0", "twin_d0_k0"],
}
cands = {}
for g, names in groups.items():
    cm = {}
    for p in S.names:
        st = S[p].step
        v = np.median(np.stack([np.asarray(r[n]["cm"][p]) for n in names]), 0)
        cm[p] = np.round((v - cur[p]) / st) * st + cur[p]
    cands[g] = cm
names = list(cands)
cms = {p: np.stack([cur[p]] + [cands[n][p] for n in names]) for p in S.names}
truth = field_truth(field, cms, n_snapshots=64, seed=1 + 10_000, chunk=16)
before = {k: truth[k][0] for k in ft.TARGETS}
for i, n in enumerate(names, 1):
    e = ft.field_effect(before, {k: truth[k][i] for k in ft.TARGETS}, cur, cands[n])
    print(n, round(e["gain_pct"], 2), round(e["gain_per_risk"], 2), round(e["mean_abs_change_steps"], 2), e["guardrail_violated"])
print("before", float(np.mean(before["dl_throughput_mbps"])))
