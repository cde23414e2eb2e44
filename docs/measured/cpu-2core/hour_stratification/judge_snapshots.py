import time, jax, jax.numpy as jnp, numpy as np
from experiments import pipeline as P
from dtwin.cm import DEFAULT_CM_SCHEMA
for seed in (0, 1, 2):
    field = P.field_for_area("urban", n_sites=7, seed=seed, gap=1.0); n = field.n_cells
    cm = {k: jnp.asarray(v, jnp.float32) for k, v in DEFAULT_CM_SCHEMA.default(n).items()}
    ref = np.asarray(P.field_truth(field, cm, n_snapshots=2048, seed=seed + 999)["dl_throughput_mbps"])
    for ns in (64, 256):
        m = []
        for s in range(3):
            t = np.asarray(P.field_truth(field, cm, n_snapshots=ns, seed=seed + 3 + 100 * s)["dl_throughput_mbps"])
            m.append(100 * np.nanmean(np.abs(t / ref - 1)))
        print(f"seed {seed}: {ns} stratified snapshots vs 2048: per-cell MAPE {np.mean(m):.1f} % ({', '.join(f'{x:.1f}' for x in m)})", flush=True)
field = P.field_for_area("urban", n_sites=7, seed=0, gap=1.0)
cms = P.evaluation_cms(jax.random.PRNGKey(2), field.n_cells, 24)
for ns in (64, 256):
    t = time.time(); P.field_truth(field, cms, n_snapshots=ns, seed=3); print(f"24 CMs x {ns}: {time.time()-t:.1f} s")
