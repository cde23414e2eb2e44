import numpy as np, sys
d = np.load(sys.argv[1])
t = d["truth"][1:]; ok = np.isfinite(t)
cm = {k[4:]: d[k][1:] for k in d if k.startswith("cms_")}
dflt = {k: d["cms_"+k][0] for k in cm}
print("truth quantiles", np.nanpercentile(t, [1,5,25,50,75,95]).round(1))
meths = [k[5:] for k in d if k.startswith("pred_")]
for m in meths:
    p = d["pred_"+m][1:]
    ape = np.abs(p - t)/t
    lr = np.log(p/t)
    print(f"{m:22s} MAPE {100*np.nanmean(ape[ok]):.1f}  median APE {100*np.nanmedian(ape[ok]):.1f}  mean logratio {np.nanmean(lr[ok]):+.3f}  sd {np.nanstd(lr[ok]):.3f}")
    # by truth quartile
    qs = np.nanpercentile(t, [0,25,50,75,100])
    row = []
    for a,b in zip(qs[:-1], qs[1:]):
        s = ok & (t>=a) & (t<=b)
        row.append(f"[{a:.0f},{b:.0f}] ape {100*np.mean(ape[s]):.0f} lr {np.mean(lr[s]):+.2f}")
    print("    ", " | ".join(row))
    if "members_"+m in d:
        mem = d["members_"+m][1:]  # cand, members, cells
        geo = np.exp(np.mean(np.log(mem), axis=1))
        ape2 = np.abs(geo-t)/t
        print("     geo-mean MAPE", round(100*np.nanmean(ape2[ok]),1), " member sd(log) mean", np.mean(np.std(np.log(mem),axis=1)).round(3))
# distance from default CM
dist = sum(np.abs(cm[k]-dflt[k])/ (np.ptp(cm[k]) or 1) for k in cm)
for m in meths:
    p = d["pred_"+m][1:]; lr = np.log(p/t)
    qs = np.nanpercentile(dist, [0,33,66,100])
    print(m, " ".join(f"dist<{b:.2f}: lr {np.nanmean(lr[ok&(dist>=a)&(dist<=b)]):+.2f} ape {100*np.nanmean((np.abs(p-t)/t)[ok&(dist>=a)&(dist<=b)]):.0f}" for a,b in zip(qs[:-1],qs[1:])))
# by own power and tilt
for k in cm:
    vals = np.unique(cm[k])
    if len(vals) > 12: vals = np.percentile(cm[k], [0,20,40,60,80,100])
    print(k)
    for m in ["twin_only","sim2real","dann"]:
        p = d["pred_"+m][1:]; lr = np.log(p/t)
        bins = np.digitize(cm[k], np.unique(np.percentile(cm[k],[25,50,75])))
        print("  ", m, " ".join(f"b{b}: {np.nanmean(lr[ok&(bins==b)]):+.2f}" for b in range(bins.max()+1)))
