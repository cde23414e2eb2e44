"""Calibrate the twin's per-cell power offsets to the commercial per-cell mean RSRP; search; judge."""
import argparse, json, time, dataclasses
import jax, jax.numpy as jnp, numpy as np, optax
import opt
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.field import _field_cm
from experiments.field_trial import SIZES, TARGETS, METHODS, field_effect, search_settings
from experiments.knowledge_ablation import variant_predictor
from experiments.pipeline import field_for_area, commercial_table, field_truth

ap = argparse.ArgumentParser()
ap.add_argument("--area", default="metro"); ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--kpis", default="mean_rsrp_dbm"); ap.add_argument("--steps", type=int, default=80)
ap.add_argument("--prior-db", type=float, default=3.0)
ap.add_argument("--variants", default="nominal,offsets,calibrated,oracle")
ap.add_argument("--snapshots", type=int, default=64)
ap.add_argument("--key-index", type=int, default=-1)
a = ap.parse_args()
args = argparse.Namespace(**SIZES["default"], guardrails="area", margin_factor=0.5, change_cost=0.0, kappa=1.0)
seed, area = a.seed, a.area
field = field_for_area(area, n_sites=7, seed=seed)
comm = commercial_table(field, 128, seed=seed)
n = field.n_cells
cur = DEFAULT_CM_SCHEMA.default(n)
cell = comm["cell_id"]
at_default = np.all([np.isclose(comm[p], np.asarray(cur[p])[cell]) for p in DEFAULT_CM_SCHEMA.names], axis=0)
kpis = a.kpis.split(",")
def _obs(k):
    if k == "ue_share":
        per = comm["active_ues"].reshape(-1, n)
        sh = per / per.sum(1, keepdims=True)
        return np.log(np.array([sh[:, c][at_default.reshape(-1, n)[:, c]].mean() for c in range(n)]))
    return np.array([comm[k][(cell == c) & at_default].mean() for c in range(n)])
obs = {k: _obs(k) for k in kpis}
true_off = _field_cm(field, {p: jnp.zeros(n) for p in DEFAULT_CM_SCHEMA.names})
print("true power offsets", np.round(np.asarray(true_off["tx_power_dbm"]), 2))
print("true tilt offsets", np.round(np.asarray(true_off["tilt_deg"]), 2))

def nominal(kp):
    p = variant_predictor("nominal", field, area, n_sites=7, n_snapshots=a.snapshots, snapshot_seed=seed + 30_000,
                          oracle_snapshots=64, oracle_seed=seed + 20_000)
    return dataclasses.replace(p, kpis=tuple(kp))
fitp = nominal(sorted((set(kpis) - {"ue_share"}) | set(TARGETS)))
def means(p, cm):
    period, _, w = p._outputs(cm)
    m = dict(period)
    wm = jnp.mean(w, axis=0)
    m["ue_share"] = jnp.log(wm / jnp.sum(wm))
    return m
cmj = {k: jnp.asarray(v, jnp.float32) for k, v in cur.items()}
scale = {k: float(np.std(obs[k])) + 1e-3 for k in kpis}
print("obs", {k: np.round(v, 2) for k, v in obs.items()})
pred0 = means(fitp, cmj)
print("twin0", {k: np.round(np.asarray(pred0[k]), 2) for k in kpis})

def loss(d):
    p = dataclasses.replace(fitp, power_offset_db=d)
    m = means(p, cmj)
    fit = sum(jnp.mean(((m[k] - obs[k]) / scale[k]) ** 2) for k in kpis)
    return fit + jnp.mean((d / a.prior_db) ** 2) * len(kpis) / n * 0 + 0.01 * jnp.mean(d ** 2) / a.prior_db ** 2

vg = jax.jit(jax.value_and_grad(loss))
d = jnp.zeros(n); optim = optax.adam(0.25); st = optim.init(d)
t = time.perf_counter()
for i in range(a.steps):
    l, g = vg(d)
    u, st = optim.update(g, st); d = d + u
    if i % 10 == 0 or i == a.steps - 1:
        print(i, float(l), f"corr {np.corrcoef(np.asarray(d), np.asarray(true_off['tx_power_dbm']))[0,1]:.3f}", flush=True)
print("fit time", time.perf_counter() - t)
print("fitted", np.round(np.asarray(d), 2))
print("rmse fitted-true", float(np.sqrt(np.mean((np.asarray(d) - np.asarray(true_off['tx_power_dbm'])) ** 2))),
      "rmse 0-true", float(np.sqrt(np.mean(np.asarray(true_off['tx_power_dbm']) ** 2))))
# naive moment estimate
naive = obs["mean_rsrp_dbm"] - np.asarray(pred0["mean_rsrp_dbm"]) if "mean_rsrp_dbm" in obs else None
if naive is not None:
    print("naive corr", np.corrcoef(naive, np.asarray(true_off['tx_power_dbm']))[0, 1])

safety, cfg = search_settings(args)
key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), METHODS.index("twin_simulation") if a.key_index < 0 else a.key_index)
recs = {}
for v in a.variants.split(","):
    t = time.perf_counter()
    if v == "calibrated":
        p = dataclasses.replace(nominal(TARGETS), power_offset_db=d)
    else:
        p = variant_predictor(v, field, area, n_sites=7, n_snapshots=a.snapshots, snapshot_seed=seed + 30_000,
                              oracle_snapshots=64, oracle_seed=seed + 20_000)
    r = jax.tree.map(np.asarray, opt.search(key, p, cur, safety=safety, config=cfg))
    recs[v] = r
    print(v, float(r.objective_before), "->", float(r.objective_after), f"{time.perf_counter()-t:.0f}s", flush=True)
names = DEFAULT_CM_SCHEMA.names
vs = list(recs)
cms = {k: np.stack([np.asarray(cur[k])] + [recs[v].cm[k] for v in vs]) for k in names}
truth = field_truth(field, cms, n_snapshots=64, seed=seed + 10_000, chunk=len(vs) + 1)
before = {k: truth[k][0] for k in TARGETS}
out = {}
for i, v in enumerate(vs, 1):
    e = field_effect(before, {k: truth[k][i] for k in TARGETS}, {k: np.asarray(cur[k]) for k in names}, recs[v].cm)
    out[v] = {k: e[k] for k in ("gain_pct", "gain_per_risk", "guardrail_violated", "mean_abs_change_steps")}
    print(v, out[v], flush=True)
json.dump({"args": vars(a), "fitted": np.asarray(d).tolist(), "true": np.asarray(true_off["tx_power_dbm"]).tolist(), "results": out},
          open(f"/work/scratch/calib/{area}_s{seed}_{a.kpis.replace(',', '+')}_k{a.key_index}.json", "w"), indent=1)
