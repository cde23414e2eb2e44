import time, jax, numpy as np, opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.sweep import DEFAULT_UE_CLUSTERING
from experiments import field_trial as ft
at = area_type("urban").with_ue_clustering(DEFAULT_UE_CLUSTERING)
net = network_for_area(at, 7)
tw = opt.twin_predictor(jax.random.PRNGKey(1), net, at, 64, kpis=ft.TARGETS)
cur = DEFAULT_CM_SCHEMA.default(net.n_cells)
args = type("A", (), dict(guardrails="area", margin_factor=0.5, starts=4, steps=40, refine_sweeps=1))()
safety, _ = ft.search_settings(args)
import jax.numpy as jnp
cm = {k: jnp.asarray(v) for k, v in cur.items()}
f = jax.jit(lambda c: tw(c).mean["dl_throughput_mbps"].mean())
f(cm).block_until_ready(); t=time.perf_counter()
for _ in range(10): f(cm).block_until_ready()
print("hard eval", (time.perf_counter()-t)/10, flush=True)
g = jax.jit(jax.grad(lambda c: tw(c).mean["dl_throughput_mbps"].mean()))
jax.block_until_ready(g(cm)); t=time.perf_counter()
for _ in range(5): jax.block_until_ready(g(cm))
print("grad eval", (time.perf_counter()-t)/5, flush=True)
for st, sp, rs in ((4, 40, 1),):
    cfg = opt.SearchConfig(n_starts=st, n_steps=sp, refine_sweeps=rs)
    for i in range(2):
        t = time.perf_counter()
        r = opt.search(jax.random.PRNGKey(i), tw, cur, safety=safety, config=cfg)
        jax.block_until_ready(r)
        print(st, sp, rs, i, f"{time.perf_counter()-t:.1f}s", float(r.objective_after), flush=True)
