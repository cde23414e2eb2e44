"""Figure 4 cell-level overshoot: is it the 32-period context? (default size)"""
import argparse, warnings, sys
import jax, jax.numpy as jnp, numpy as np
from dtwin.cm import DEFAULT_CM_SCHEMA
from experiments import pipeline as P, table1 as T
ap = argparse.ArgumentParser(); T.add_common_flags(ap, twin=3*21*64, commercial=int(sys.argv[1]) if len(sys.argv)>1 else 3*21*64)
args = ap.parse_args([ "--methods", "commercial_only,sim2real", "--quiet"]); T.apply_small(args)
args.candidates = 2
setup = T.prepare(args)
with warnings.catch_warnings():
    warnings.simplefilter("ignore"); _, cb = P.batches(None, setup["train"])
ens = P.train_all(T.methods_of(args), jax.random.PRNGKey(0), setup["twin_batch"], cb, T.transfer_config(args))
lv = P.fit_levels(ens, cb)
n = setup["n_cells"]; cm0 = {k: jnp.asarray(v)[None] for k, v in DEFAULT_CM_SCHEMA.default(n).items()}
truth = np.asarray(P.field_truth(setup["field"], {k: np.asarray(v) for k,v in cm0.items()}, n_snapshots=256, seed=5)["dl_throughput_mbps"])[0]
tb = setup["test_batch"]
print("train periods", cb.n_snapshots, "test periods", tb.n_snapshots)
def actual_mean(b):
    y = np.asarray(b.targets[..., 0]); m = np.asarray(b.mask)
    return np.array([y[m[:, c], c].mean() for c in range(n)])
print("actual mean y: test ctx cell0 %.1f, train cell0 %.1f, truth cell0 %.1f" % (actual_mean(tb)[0], actual_mean(cb)[0], truth[0]))
for name, e in ens.items():
    for ctxname, ctx in (("test32", tb), ("train", cb)):
        for use in (False, True):
            c = lv[name].apply(ctx) if use else ctx
            pred = P.predict_candidates(P.ensemble_predictor(e, c), cm0)["dl_throughput_mbps"][0]
            lr = np.log(pred / truth)
            print(f"{name:15s} ctx={ctxname:6s} levels={use!s:5s} cell0 {pred[0]:6.1f} truth {truth[0]:6.1f} | all cells log(pred/truth) mean {lr.mean():+.3f} sd {lr.std():.3f}")
