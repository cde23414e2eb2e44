import numpy as np, sys
d = np.load(sys.argv[1])
T = d["truth"]; t0 = T[0]; t = T[1:]
ok = np.isfinite(t) & np.isfinite(t0)[None]
print("cells", T.shape[1])
for m in [k[5:] for k in d if k.startswith("pred_")]:
    P = d["pred_"+m]; p0 = P[0]; p = P[1:]
    lvl = np.log(p0/t0)  # per-cell level error at default
    rt = np.log(t/t0[None]); rp = np.log(p/p0[None])
    slope = np.polyfit(rt[ok], rp[ok], 1)[0]
    lslope = np.polyfit(np.log(t0), np.log(p0), 1)[0]
    print(f"{m:20s} level err mean {lvl.mean():+.3f} sd {lvl.std():.3f} level slope {lslope:.2f} | resp slope {slope:.2f} corr {np.corrcoef(rt[ok], rp[ok])[0,1]:.2f} resp err sd {np.std((rp-rt)[ok]):.3f} mean {np.mean((rp-rt)[ok]):+.3f}")
    # MAPE with true level + predicted response, predicted level + true response
    a = np.abs(t0[None]*np.exp(rp) - t)/t; b = np.abs(p0[None]*np.exp(rt) - t)/t
    print(f"{'':20s} MAPE(true level, pred resp) {100*a[ok].mean():.1f}   MAPE(pred level, true resp) {100*b[ok].mean():.1f}")
print("true resp sd", np.std(np.log(t/t0[None])[ok]).round(3), "true level sd", np.std(np.log(t0)).round(3))
