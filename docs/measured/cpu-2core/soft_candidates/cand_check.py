import time, jax, jax.numpy as jnp
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.sweep import DEFAULT_UE_CLUSTERING
from dtwin.network import simulate_from_links
from dtwin.kpi import cell_kpis
import opt
from experiments import field_trial as ft
at = area_type("urban").with_ue_clustering(DEFAULT_UE_CLUSTERING)
net = network_for_area(at, 7)
tw = opt.twin_predictor(jax.random.PRNGKey(1), net, at, 64, kpis=ft.TARGETS)
cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(net.n_cells).items()}
def tm(name, f, *a, n=5):
    jax.block_until_ready(f(*a)); t=time.perf_counter()
    for _ in range(n): jax.block_until_ready(f(*a))
    print(name, f"{(time.perf_counter()-t)/n*1000:.1f} ms", flush=True)
def run(c, k):
    def one(pop, links):
        real = dict(c, tilt_deg=c["tilt_deg"] + tw.tilt_offset_deg, tx_power_dbm=c["tx_power_dbm"] + tw.power_offset_db)
        r = simulate_from_links(net, pop, links, real, hard=False, candidates=k)
        return r.throughput_mbps.sum(), r.user_throughput_mbps.mean(), r.prb_utilization
    return jax.vmap(one)(tw.population, tw.links)
ref = jax.jit(lambda c: run(c, None))(cm)
g_ref = jax.jit(jax.grad(lambda c: run(c, None)[0].mean()))(cm)
for k in [None, 21, 8, 6, 4, 3]:
    f = jax.jit(lambda c: run(c, k))
    out = f(cm)
    g = jax.jit(jax.grad(lambda c: run(c, k)[0].mean()))(cm)
    err = [float(jnp.max(jnp.abs(a - b) / (jnp.abs(b) + 1e-6))) for a, b in zip(out, ref)]
    gerr = {n: float(jnp.linalg.norm(g[n] - g_ref[n]) / jnp.linalg.norm(g_ref[n])) for n in g}
    print(k, "rel err", err, "grad rel err", gerr)
    tm(f"k={k} fwd", f, cm); tm(f"k={k} grad", jax.jit(jax.grad(lambda c: run(c, k)[0].mean())), cm)
