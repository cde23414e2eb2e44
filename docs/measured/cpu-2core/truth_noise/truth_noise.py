# run from the repo root: .venv/bin/python docs/measured/cpu-2core/truth_noise/truth_noise.py OUT.json (twelfth session, 2026-12-02, commit f5edceb; 2-core CPU, ~6 min)
"""How noisy is Table 1's 'exact' KPI? The field's per-cell throughput at the default CM from
n snapshots (each with its own random hour and traffic), over independent snapshot draws."""
import json, sys
import numpy as np
from experiments import pipeline as P
from dtwin.cm import DEFAULT_CM_SCHEMA
out = {}
for seed in (0, 1, 2):
    field = P.field_for_area("urban", n_sites=7, seed=seed)
    cm = {k: np.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(field.n_cells).items()}
    for n in (64, 256):
        vals = np.stack([P.field_truth(field, cm, n_snapshots=n, seed=100 + r)["dl_throughput_mbps"] for r in range(6)])
        lg = np.log(vals)
        cell_sd = lg.std(axis=0, ddof=1)            # per-cell sd of log KPI over draws
        net_sd = lg.mean(axis=1).std(ddof=1)        # sd of the network-mean log KPI (common part)
        # expected |APE| of one draw against another draw (what a perfect predictor would score)
        ape = np.mean(np.abs(vals[1:] / vals[:1] - 1)) * 100
        out[f"seed{seed}_n{n}"] = dict(cell_log_sd=float(cell_sd.mean()), common_log_sd=float(net_sd), ape_between_draws_pct=float(ape))
        print(seed, n, out[f"seed{seed}_n{n}"], flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
