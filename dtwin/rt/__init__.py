"""Site-specific channels through Sionna RT.

* `RTScene` / `SolverConfig`: a Sionna RT scene loaded once plus the path-solver settings.
* `rt_paths` / `rt_path_gains`: the differentiable JAX bridge (`jax.custom_vjp` around Dr.Jit
  host callbacks); gradients w.r.t. radio-material properties.
* `sound` / `link_lsps`: virtual soundings aggregated into per-link large-scale parameters.
* `fit_site_channel` / `to_scenario`: site-specific TR 38.901 parameters and a scenario copy.
* `calibrate` with `measurement_loss` / `cell_mean_loss`: material calibration with optax.
"""

from dtwin.rt._bridge import RTPaths, path_gain, path_gain_db, rt_path_gains, rt_paths
from dtwin.rt._scene import MATERIAL_FIELDS, RTScene, SolverConfig
from dtwin.rt.calibrate import (
    CalibrationResult,
    calibrate,
    cell_mean_loss,
    cell_mean_rsrp_dbm,
    measurement_loss,
    to_physical,
    to_unconstrained,
)
from dtwin.rt.fit import LSPStats, SiteChannelFit, fit_pathloss, fit_site_channel, to_scenario
from dtwin.rt.sounding import (
    LinkLSPs,
    circular_angle_spread_deg,
    grid_positions_m,
    k_factor_db,
    link_lsps,
    rms_delay_spread_s,
    sound,
    zenith_spread_deg,
)

__all__ = [
    "MATERIAL_FIELDS",
    "CalibrationResult",
    "LSPStats",
    "LinkLSPs",
    "RTPaths",
    "RTScene",
    "SiteChannelFit",
    "SolverConfig",
    "calibrate",
    "cell_mean_loss",
    "cell_mean_rsrp_dbm",
    "circular_angle_spread_deg",
    "fit_pathloss",
    "fit_site_channel",
    "grid_positions_m",
    "k_factor_db",
    "link_lsps",
    "measurement_loss",
    "path_gain",
    "path_gain_db",
    "rms_delay_spread_s",
    "rt_path_gains",
    "rt_paths",
    "sound",
    "to_physical",
    "to_scenario",
    "to_unconstrained",
    "zenith_spread_deg",
]
