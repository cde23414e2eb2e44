"""Diagnose out-of-range MAPE: save per-(candidate, cell) predictions of several methods."""
import sys, argparse, numpy as np, jax
sys.path.insert(0, "/work/main")
from experiments import table1 as T, pipeline as P
from opt.predictor import ensemble_predictor, predict_candidates
import jax.numpy as jnp

ap = argparse.ArgumentParser(); T.add_common_flags(ap, twin=3*21*64, commercial=3*21*64)
args = ap.parse_args(sys.argv[1:] + ["--calibrate-ue", "--quiet"] if False else sys.argv[1:])
T.apply_small(args)
methods = T.methods_of(args)
setup = T.prepare(args)
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore"); _, comm_batch = P.batches(None, setup["train"])
ens = P.train_all(methods, jax.random.PRNGKey(args.seed), setup["twin_batch"], comm_batch, T.transfer_config(args))
tb = setup["test_batch"]; context = tb.take(np.arange(min(64, tb.n_snapshots)))
out = {"cms_" + k: v for k, v in setup["cms"].items()}
tgt = P.DEFAULT_TARGETS[0]
out["truth"] = np.asarray(setup["truth"][tgt]); out["near_truth"] = np.asarray(setup["near_truth"][tgt])
for m, e in ens.items():
    p = ensemble_predictor(e, context)
    out["pred_" + m] = predict_candidates(p, setup["cms"])[tgt]
    out["near_" + m] = predict_candidates(p, setup["near_cms"])[tgt]
    mem = jax.vmap(lambda c: p.members(c)[tgt])({k: jnp.asarray(v, jnp.float32) for k, v in setup["cms"].items()})
    out["members_" + m] = np.asarray(mem)
if "sim2real" in ens:
    ap_ = T.anchored_predictors(args, setup, ens["sim2real"], context)
    for name, pr in ap_.items():
        out["pred_" + name] = predict_candidates(pr, setup["cms"], chunk=8)[tgt]
np.savez(args.out + "/diag.npz", **out)
print("saved", list(out))
