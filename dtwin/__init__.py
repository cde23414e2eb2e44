"""dtwin: a differentiable multi-cell network Digital Twin in JAX.

Subpackages and modules (all pure functions over pytrees; Equinox modules hold parameters):

* ``channel``: TR 38.901 pathloss, LOS probability, O2I, shadow fading, large-scale parameters.
* ``geometry``, ``antenna``, ``links``: hexagonal layouts and UE drops, the tilted BS column,
  coupling loss and geometry SINR (the Phase-1 calibration).
* ``cm``: configuration-management schema (bounds, steps, rounding).
* ``throughput``, ``kpi``: link-level throughput proxy, PF scheduler, KPIs and PM counters.
* ``network``: the multi-cell network model (association, load coupling, throughput).
* ``areas``, ``sweep``: area types and sharded, resumable CM-response sweeps to Parquet.
* ``field``: a synthetic field-network stand-in with a hidden reality.
* ``rt``: Sionna RT bridge (custom VJP), soundings, site fits, material calibration.
* ``ue``: conditional-VAE UE behaviour and its closed-loop refinement.
* ``realdata``: loader for the UCC 5G production measurements.
"""

from . import (
    antenna,
    areas,
    channel,
    cm,
    field,
    geometry,
    kpi,
    links,
    network,
    realdata,
    rt,
    schema,
    sweep,
    throughput,
    ue,
)
from ._llvm import configure_llvm, find_libllvm
from .antenna import array_gain_dbi, element_gain_dbi
from .areas import AREA_TYPES, AreaType, area_type, network_for_area
from .channel import (
    InHOffice,
    RMa,
    UMa,
    UMi,
    los_probability,
    o2i_loss_db,
    pathloss_db,
    sample_lsps,
    shadow_fading_std_db,
)
from .cm import DEFAULT_CM_SCHEMA, CMParam, CMSchema
from .geometry import Topology, UEs, drop_ues, hex_topology, link_geometry
from .kpi import SNAPSHOTS_PER_PERIOD, period_influence, period_kpis, soft_quantile
from .links import coupling_loss_db, geometry_sinr_db, thermal_noise_dbm
from .network import (
    LinkChannel,
    LinkTerms,
    Network,
    NetworkResult,
    UEPopulation,
    cell_kpis,
    coupling_gain_from_links,
    draw_channel,
    link_terms,
    simulate,
    simulate_from_gain,
    simulate_from_links,
    solve_load,
)
from .site_channel import SiteChannel, load_site_channels, save_site_channels
from .sweep import (
    DEFAULT_UE_CLUSTERING,
    SweepConfig,
    read_sweep,
    run_sweep,
    sample_snapshot,
    stratified_hours,
)
from .throughput import cqi_from_sinr, pf_throughput_mbps, shannon_se, spectral_efficiency
from .user_network import UserNetwork, network_from_cells, user_sweep_rows

__all__ = [
    "SNAPSHOTS_PER_PERIOD",
    "DEFAULT_UE_CLUSTERING",
    "period_influence",
    "period_kpis",
    "AREA_TYPES",
    "AreaType",
    "CMParam",
    "CMSchema",
    "DEFAULT_CM_SCHEMA",
    "InHOffice",
    "LinkChannel",
    "LinkTerms",
    "Network",
    "NetworkResult",
    "RMa",
    "SweepConfig",
    "Topology",
    "UEPopulation",
    "UEs",
    "UMa",
    "UMi",
    "antenna",
    "area_type",
    "areas",
    "array_gain_dbi",
    "cell_kpis",
    "channel",
    "cm",
    "configure_llvm",
    "coupling_gain_from_links",
    "coupling_loss_db",
    "cqi_from_sinr",
    "draw_channel",
    "drop_ues",
    "element_gain_dbi",
    "field",
    "find_libllvm",
    "geometry",
    "geometry_sinr_db",
    "hex_topology",
    "kpi",
    "link_geometry",
    "link_terms",
    "links",
    "los_probability",
    "network",
    "network_for_area",
    "SiteChannel",
    "UserNetwork",
    "network_from_cells",
    "user_sweep_rows",
    "load_site_channels",
    "save_site_channels",
    "o2i_loss_db",
    "pathloss_db",
    "pf_throughput_mbps",
    "read_sweep",
    "realdata",
    "rt",
    "run_sweep",
    "sample_lsps",
    "sample_snapshot",
    "stratified_hours",
    "schema",
    "shadow_fading_std_db",
    "shannon_se",
    "simulate_from_gain",
    "simulate_from_links",
    "simulate",
    "soft_quantile",
    "solve_load",
    "spectral_efficiency",
    "sweep",
    "thermal_noise_dbm",
    "throughput",
    "ue",
]
