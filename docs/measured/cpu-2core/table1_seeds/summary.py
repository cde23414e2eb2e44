"""Table 1 over stand-in seeds: mean ± sd of each method's metrics (run from the repo root).

Seed 0: the committed eleventh-session runs (default: table1_default_ue_weighted_arith, whose
anchored rows use the nominal twin; full: table1_full_ue_weighted_calibrated); seeds 1-3 / 1-2:
this folder (commit 417412a / 7c8bae0, the code of fac5948; `t1seeds.sh`)."""
import json

import numpy as np

M = "docs/measured/cpu-2core"
SETS = {
    "default": [f"{M}/table1_default_ue_weighted_arith/table1.json"]
    + [f"{M}/table1_seeds/default_s{s}/table1.json" for s in (1, 2, 3)],
    "full": [f"{M}/table1_full_ue_weighted_calibrated/table1.json"]
    + [f"{M}/table1_seeds/full_s{s}/table1.json" for s in (1, 2)],
}
KEYS = [("in_range_exact_mape_pct", "in-range exact %"), ("out_of_range_mape_pct", "OOR MAPE %"),
        ("out_of_range_mae", "OOR MAE Mbps"), ("response_spearman", "Spearman")]
out = {}
for size, files in SETS.items():
    ds = [json.load(open(f)) for f in files]
    print(f"\n{size}: seeds {[d['seed'] for d in ds]}, similarity "
          f"{[round(d['results']['similarity_pct'], 1) for d in ds]} %")
    print("| method | " + " | ".join(h for _, h in KEYS) + " | OOR per seed | best OOR on |")
    print("|---" * (len(KEYS) + 3) + "|")
    meths = ds[0]["results"]["methods"]
    oor = {n: np.array([d["results"]["methods"][n]["out_of_range_mape_pct"] for d in ds]) for n in meths}
    best = np.argmin(np.stack(list(oor.values())), axis=0)
    out[size] = {}
    for i, n in enumerate(meths):
        cells, rec = [], {}
        for k, _ in KEYS:
            v = np.array([d["results"]["methods"][n][k] for d in ds])
            rec[k] = v.tolist()
            fmt = ".3f" if k == "response_spearman" else ".1f"
            cells.append(f"{v.mean():{fmt}} ± {v.std(ddof=1):{fmt}}")
        wins = int((best == i).sum())
        out[size][n] = rec
        print(f"| {n} | " + " | ".join(cells) + f" | {' / '.join(f'{x:.1f}' for x in oor[n])} | {wins} of {len(ds)} |")
json.dump(out, open(f"{M}/table1_seeds/summary.json", "w"), indent=1)
