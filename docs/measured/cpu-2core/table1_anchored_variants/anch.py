"""Table 1 anchored-row variants: surrogate share x twin cell calibration (one training)."""
import argparse, sys, warnings, json
import jax, numpy as np
from experiments import pipeline as P, table1 as T
argv = sys.argv[1:]
ap = argparse.ArgumentParser(); T.add_common_flags(ap, twin=3*21*64, commercial=3*21*64)
args = ap.parse_args(["--calibrate-ue", "--methods", "sim2real,dann", "--quiet", *argv]); T.apply_small(args)
setup = T.prepare(args)
with warnings.catch_warnings():
    warnings.simplefilter("ignore"); _, cb = P.batches(None, setup["train"])
ens = P.train_all(T.methods_of(args), jax.random.PRNGKey(args.seed), setup["twin_batch"], cb, T.transfer_config(args))
levels = P.fit_levels(ens, cb)
m = P.evaluate_methods(ens, cell_levels=levels, test_batch=setup["test_batch"], cms=setup["cms"], truth=setup["truth"], in_range_cms=setup["near_cms"], in_range_truth=setup["near_truth"])
res = {k: (round(v["in_range_exact_mape_pct"],1), round(v["out_of_range_mape_pct"],1), round(v["response_spearman"],3)) for k, v in m.items()}
tb = levels["sim2real"].apply(setup["test_batch"]); ctx = tb.take(np.arange(min(64, tb.n_snapshots)))
for cal in (False, True):
    for w in (0.5, 0.25, 0.0):
        args.calibrate_cells, args.anchor_weight = cal, w
        preds = {k: v for k, v in T.anchored_predictors(args, setup, ens["sim2real"], ctx).items() if k == "anchored_relative"}
        mm = P.evaluate_predictors(preds, cms=setup["cms"], truth=setup["truth"], in_range_cms=setup["near_cms"], in_range_truth=setup["near_truth"])["anchored_relative"]
        res[f"anchored cal={cal} w={w}"] = (round(mm["in_range_exact_mape_pct"],1), round(mm["out_of_range_mape_pct"],1), round(mm["response_spearman"],3))
        print(f"anchored cal={cal} w={w}", res[f"anchored cal={cal} w={w}"], flush=True)
for k, v in res.items(): print(f"{k:32s} in-range exact {v[0]:5.1f}  OOR {v[1]:5.1f}  spearman {v[2]:.3f}")
