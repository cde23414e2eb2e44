import numpy as np, sys
d = np.load(sys.argv[1])
T = d["truth"]; t0 = T[0]; t = T[1:]; ok = np.isfinite(t)
S = d["pred_sim2real"]; A = d["pred_anchored_relative"]
rs = np.log(S[1:]/S[0][None]); ra = np.log(A[1:]/A[0][None])
w0 = 0.5
rt_twin = (ra - w0*rs)/(1-w0)
rt = np.log(t/t0[None])
for w in [0, 0.25, 0.5, 0.75, 1.0]:
    r = w*rs + (1-w)*rt_twin
    for name, lvl in [("pred level", S[0]), ("true level", t0)]:
        p = lvl[None]*np.exp(r)
        print(f"w={w:.2f} {name}: MAPE {100*np.mean((np.abs(p-t)/t)[ok]):.1f}  resp slope {np.polyfit(rt[ok], r[ok],1)[0]:.2f} corr {np.corrcoef(rt[ok], r[ok])[0,1]:.3f} bias {np.mean((r-rt)[ok]):+.3f}")
