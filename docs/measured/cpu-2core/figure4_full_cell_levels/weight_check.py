import numpy as np, jax
from experiments import pipeline as P
from dtwin.cm import DEFAULT_CM_SCHEMA
field = P.field_for_area("urban", n_sites=7, seed=0, gap=1.0)
n = field.n_cells
comm = P.commercial_table(field, 300, seed=0)
cur = DEFAULT_CM_SCHEMA.default(n)
cell = np.asarray(comm["cell_id"]); y = np.asarray(comm["dl_throughput_mbps"]); u = np.asarray(comm["active_ues"])
at = np.all([np.isclose(np.asarray(comm[p]), np.asarray(cur[p])[cell]) for p in DEFAULT_CM_SCHEMA.names], axis=0)
cms = {k: np.asarray(v)[None] for k, v in cur.items()}
truth = np.asarray(P.field_truth(field, cms, n_snapshots=64, seed=3)["dl_throughput_mbps"])[0]
print("cell  exact  mean(y)  exp(mean log y)  UE-weighted")
rows = []
for c in range(n):
    m = (cell == c) & at & np.isfinite(y) & (u > 0)
    rows.append((truth[c], y[m].mean(), np.exp(np.log(y[m]).mean()), (u[m] * y[m]).sum() / u[m].sum()))
    if c < 6: print(c, *[round(float(v), 1) for v in rows[-1]])
r = np.array(rows)
for j, name in enumerate(["mean", "geo-mean", "UE-weighted"], 1):
    lr = np.log(r[:, j] / r[:, 0])
    print(f"{name:12s} log(stat/exact): mean {lr.mean():+.3f} sd {lr.std():.3f}; corr of per-cell log level with exact {np.corrcoef(np.log(r[:, j]), np.log(r[:, 0]))[0,1]:.2f}")
