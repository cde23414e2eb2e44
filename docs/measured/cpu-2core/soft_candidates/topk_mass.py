import jax, jax.numpy as jnp, opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.sweep import DEFAULT_UE_CLUSTERING
from dtwin.network import coupling_gain_from_links, rsrp_dbm, associate
from experiments import field_trial as ft
for area in ["metro","urban","suburban"]:
    at = area_type(area).with_ue_clustering(DEFAULT_UE_CLUSTERING)
    net = network_for_area(at, 7)
    tw = opt.twin_predictor(jax.random.PRNGKey(1), net, at, 64, kpis=ft.TARGETS)
    cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(net.n_cells).items()}
    def f(links):
        g = coupling_gain_from_links(links, cm["tilt_deg"] + tw.tilt_offset_deg)
        r = rsrp_dbm(net, g, cm["tx_power_dbm"] + tw.power_offset_db)
        p = associate(r, cm["cio_db"])
        ps = jnp.sort(p, axis=-1)[:, ::-1]
        return jnp.cumsum(ps, axis=-1)
    c = jax.vmap(f)(tw.links)
    for k in [2,3,4,6,8]:
        out = 1 - c[..., k-1]
        print(area, k, "mean out", float(out.mean()), "p99", float(jnp.quantile(out, 0.99)), "max", float(out.max()))
