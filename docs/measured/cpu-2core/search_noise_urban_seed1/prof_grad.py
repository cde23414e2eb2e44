import time, jax, jax.numpy as jnp, opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.sweep import DEFAULT_UE_CLUSTERING
from dtwin.kpi import period_kpis
from experiments import field_trial as ft
at = area_type("urban").with_ue_clustering(DEFAULT_UE_CLUSTERING)
net = network_for_area(at, 7)
tw = opt.twin_predictor(jax.random.PRNGKey(1), net, at, 64, kpis=ft.TARGETS)
cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(net.n_cells).items()}
def tm(name, f, *a, n=5):
    jax.block_until_ready(f(*a)); t=time.perf_counter()
    for _ in range(n): jax.block_until_ready(f(*a))
    print(name, f"{(time.perf_counter()-t)/n*1000:.1f} ms", flush=True)
for kpi in ft.TARGETS:
    soft = jax.jit(lambda c: period_kpis(*tw._snapshots(c, False))[kpi].mean())
    hard = jax.jit(lambda c: period_kpis(*tw._snapshots(c, True))[kpi].mean())
    tm(f"{kpi} soft fwd", soft, cm); tm(f"{kpi} hard fwd", hard, cm)
    tm(f"{kpi} soft grad", jax.jit(jax.grad(soft)), cm)
    tm(f"{kpi} st grad", jax.jit(jax.grad(lambda c: tw(c).mean[kpi].mean())), cm)
