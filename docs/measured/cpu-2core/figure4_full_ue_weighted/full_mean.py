import numpy as np, time
from experiments import pipeline as P
from dtwin.cm import DEFAULT_CM_SCHEMA
t=time.time()
field = P.field_for_area("urban", n_sites=7, seed=0, gap=1.0)
n = field.n_cells
comm = P.commercial_table(field, 4794, seed=0)
print("table", time.time()-t, flush=True)
cur = DEFAULT_CM_SCHEMA.default(n)
cell = np.asarray(comm["cell_id"]); y = np.asarray(comm["dl_throughput_mbps"]); u = np.asarray(comm["active_ues"])
sid = np.asarray(comm["snapshot_id"]); train = sid < 4762
at = np.all([np.isclose(np.asarray(comm[p]), np.asarray(cur[p])[cell]) for p in DEFAULT_CM_SCHEMA.names], axis=0)
cms = {k: np.asarray(v)[None] for k, v in cur.items()}
for ns, seed in ((512, 11),):
    truth = np.asarray(P.field_truth(field, cms, n_snapshots=ns, seed=seed)["dl_throughput_mbps"])[0]
    print(f"truth {ns} snaps seed {seed}: cell0 {truth[0]:.1f}", flush=True)
ok = np.isfinite(y) & (u > 0)
rows=[]
for c in range(n):
    m_all = (cell == c) & train & ok; m_def = m_all & at
    rows.append((y[m_all].mean(), y[m_def].mean(), np.exp(np.log(y[m_all]).mean()), m_all.sum(), m_def.sum(), truth[c]))
r=np.array(rows)
uw=np.array([(u[(cell==c)&train&ok]*y[(cell==c)&train&ok]).sum()/u[(cell==c)&train&ok].sum() for c in range(n)])
lr=np.log(uw/np.array([x[5] for x in rows])); print("UE-weighted log(uw/truth512) mean %+.3f sd %.3f" % (lr.mean(), lr.std()), "cell0", uw[0])
for c in range(3):
    m=(cell==c)&train&ok; print(c, "u quantiles", np.quantile(u[m],[0,.1,.5,.9,1]).round(2), "corr(log u, log y)", np.corrcoef(np.log(u[m]),np.log(y[m]))[0,1].round(2))
print("cell0: mean all rows %.1f, mean default rows %.1f, geo %.1f, n %d/%d, truth512 %.1f" % tuple(r[0]))
lr = np.log(r[:,0]/r[:,5]); print("all cells log(mean all/truth512) mean %+.3f sd %.3f" % (lr.mean(), lr.std()))
lr = np.log(r[:,1]/r[:,5]); print("all cells log(mean default/truth512) mean %+.3f sd %.3f" % (lr.mean(), lr.std()))
print("per-cell", np.round(r[:,0],1).tolist(), np.round(r[:,5],1).tolist())
