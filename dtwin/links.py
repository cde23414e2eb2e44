"""Coupling loss and geometry SINR of every UE→cell link (TR 38.901 clause 7.8, Phase 1).

Coupling loss is a *loss* in dB (positive): ``CL = PL + O2I + SF − G_BS`` with an isotropic UE
antenna. The LOS state and the shadow fading of a UE are drawn once per site and shared by the
co-located sectors (TR 38.901 clause 7.5 step 3/4: large-scale parameters are per BS–UT link,
and the sectors of a site are one BS location).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from dtwin.antenna import array_gain_dbi
from dtwin.channel import (
    RMa,
    UMa,
    UMi,
    los_probability,
    o2i_loss_db,
    pathloss_db,
    shadow_fading_std_db,
)
from dtwin.geometry import LinkGeometry, Topology, UEs, drop_ues, hex_topology, link_geometry

__all__ = [
    "coupling_loss_db",
    "bs_antenna_gain_dbi",
    "geometry_sinr_db",
    "serving_cell",
    "thermal_noise_dbm",
    "Phase1Config",
    "Phase1Drop",
    "phase1_config",
    "phase1_drop",
]


def bs_antenna_gain_dbi(
    topology: Topology, geometry: LinkGeometry, tilt_deg: ArrayLike, **array_kwargs
) -> Float[Array, "ues cells"]:
    """BS antenna gain of every link (dBi): :func:`dtwin.antenna.array_gain_dbi` at the link's
    zenith and boresight-relative azimuth; ``tilt_deg`` is a scalar or one value per cell."""
    tilt = jnp.broadcast_to(jnp.asarray(tilt_deg, jnp.float32), (topology.n_cells,))
    return array_gain_dbi(geometry.zenith_deg, geometry.azimuth_deg, tilt[None, :], **array_kwargs)


def coupling_loss_db(
    key: PRNGKeyArray,
    scenario,
    topology: Topology,
    ues: UEs,
    carrier_hz: float,
    tilt_deg: ArrayLike,
    **array_kwargs,
) -> Float[Array, "ues cells"]:
    """Coupling loss of every UE→cell link, TR 38.901 clause 7.4 + 7.3 (dB, positive = loss).

    ``CL = PL_b(d_2D, LOS) + O2I + SF − G_BS(θ, φ; tilt)`` where

    * LOS ~ Bernoulli(Pr_LOS(d_2D-out, h_UT)) (clause 7.4.2, d_2D-out = d_2D − d_2D-in), drawn
      per UE–site link; LOS, PL_b and SF are evaluated once per site and shared by its sectors
      (which are assumed to share the site's BS height);
    * PL_b: basic pathloss (Table 7.4.1-1) on the full 2D distance (UMa: effective environment
      height h_E drawn per link, Note 1);
    * O2I: building penetration + 0.5 d_2D-in + N(0, σ_P) for indoor UEs (clause 7.4.3), one
      draw per UE (shared by all its links); 0 outdoors;
    * SF ~ N(0, σ_SF(LOS/NLOS/O2I)) per UE–site link (Table 7.5-6);
    * G_BS: :func:`dtwin.antenna.array_gain_dbi`, UE antenna isotropic (0 dBi).

    Args:
        key: PRNG key.
        scenario: a :mod:`dtwin.channel` scenario pytree (``UMa()``, ``UMi()``, ``RMa()``).
        topology, ues: layout and UE drop.
        carrier_hz: carrier frequency (Hz).
        tilt_deg: electrical downtilt (deg), scalar or ``[cells]``; differentiable.
        **array_kwargs: forwarded to :func:`dtwin.antenna.array_gain_dbi` (``n_elements``,
            ``spacing_wl``, ``mech_tilt_deg``).

    Returns:
        ``[ues, cells]`` coupling loss (dB).
    """
    tilt = jnp.asarray(tilt_deg, jnp.float32)
    if tilt.ndim > 1 or (tilt.ndim == 1 and tilt.shape[0] != topology.n_cells):
        raise ValueError(
            f"coupling_loss_db: tilt_deg must be a scalar or have shape ({topology.n_cells},), "
            f"got {tilt.shape}"
        )
    tilt = jnp.broadcast_to(
        tilt, (topology.n_cells,)
    )  # one compiled shape for scalar and per-cell tilts
    return _coupling_loss_core(key, scenario, topology, ues, carrier_hz, tilt, array_kwargs)


@eqx.filter_jit
def _coupling_loss_core(key, scenario, topology, ues, carrier_hz, tilt, array_kwargs):
    k_site, k_o2i, k_he = jax.random.split(key, 3)
    geom = link_geometry(topology, ues)
    n_ues, n_sites = ues.n_ues, topology.n_sites
    # Large-scale state is per UE-site link: evaluate it on one representative cell per site
    # (co-sited cells share position and, in hex_topology, height) and copy it to the sectors.
    rep = (
        jnp.zeros((n_sites,), jnp.int32)
        .at[topology.cell_site]
        .set(jnp.arange(topology.n_cells, dtype=jnp.int32))
    )
    d2d = geom.distance_2d_m[:, rep]
    d2d_out = jnp.maximum(d2d - ues.d2d_in_m[:, None], 1e-3)
    h_ut = ues.h_m[:, None]
    h_bs = topology.bs_height_m[rep][None, :]
    p_los = los_probability(scenario, d2d_out, h_ut)
    # one Gaussian draw per UE-site link for the LOS state (through Φ) and one for the SF
    z_site = jax.random.normal(k_site, (2, n_ues, n_sites))
    los = ndtr(z_site[0]) < p_los
    pl = pathloss_db(scenario, d2d, h_bs, h_ut, carrier_hz, los, key=k_he)
    sf_std = shadow_fading_std_db(
        scenario,
        los,
        ues.indoor[:, None],
        distance_2d_m=d2d,
        h_bs_m=h_bs,
        h_ut_m=h_ut,
        carrier_hz=carrier_hz,
    )
    site_loss = (pl + z_site[1] * sf_std)[:, topology.cell_site]
    o2i = jnp.where(ues.indoor, o2i_loss_db(k_o2i, carrier_hz, ues.d2d_in_m, ues.high_loss), 0.0)
    gain = bs_antenna_gain_dbi(topology, geom, tilt, **array_kwargs)
    return site_loss + o2i[:, None] - gain


def serving_cell(coupling_loss_db: Float[Array, "... ues cells"]) -> Int[Array, "... ues"]:
    """Serving cell of each UE: the one with the lowest coupling loss (TR 38.901 clause 7.8)."""
    return jnp.argmin(coupling_loss_db, axis=-1)


def thermal_noise_dbm(bandwidth_hz: ArrayLike, noise_figure_db: ArrayLike) -> Float[Array, ""]:
    """Receiver noise power ``N = −174 dBm/Hz + 10 log10(B) + NF`` (dBm)."""
    return (
        -174.0
        + 10.0 * jnp.log10(jnp.asarray(bandwidth_hz, jnp.float32))
        + jnp.asarray(noise_figure_db, jnp.float32)
    )


def geometry_sinr_db(
    coupling_loss_db: Float[Array, "... ues cells"],
    tx_power_dbm: ArrayLike,
    noise_dbm: ArrayLike,
) -> Float[Array, "... ues"]:
    """Downlink geometry SINR (dB): serving cell = lowest coupling loss, every other cell
    interferes at full power (TR 38.901 clause 7.8 Phase-1 calibration metric).

    ``SINR = P_s / (Σ_{c ≠ s} P_c + N)`` with ``P_c = tx_power_dbm − CL_c`` (linear, mW).

    Args:
        coupling_loss_db: ``[..., ues, cells]`` coupling loss (dB).
        tx_power_dbm: cell transmit power (dBm), scalar or ``[cells]``.
        noise_dbm: UE noise power (dBm), see :func:`thermal_noise_dbm`.
    """
    rx_dbm = jnp.asarray(tx_power_dbm, jnp.float32) - coupling_loss_db
    s = serving_cell(coupling_loss_db)
    mask = jax.nn.one_hot(s, rx_dbm.shape[-1], dtype=bool)
    ref = jax.lax.stop_gradient(jnp.max(rx_dbm, axis=-1, keepdims=True))
    lin = jnp.power(10.0, (rx_dbm - ref) / 10.0)
    signal = jnp.sum(jnp.where(mask, lin, 0.0), axis=-1)
    interference = jnp.sum(jnp.where(mask, 0.0, lin), axis=-1)
    noise = jnp.power(10.0, (jnp.asarray(noise_dbm, jnp.float32) - ref[..., 0]) / 10.0)
    return 10.0 * jnp.log10(signal) - 10.0 * jnp.log10(interference + noise)


@dataclasses.dataclass(frozen=True)
class Phase1Config:
    """One Phase-1 large-scale calibration configuration (TR 38.901 Table 7.8-1; R1-165974)."""

    scenario_name: str
    carrier_hz: float
    n_sites: int
    isd_m: float
    bs_height_m: float
    min_distance_2d_m: float
    ues_per_cell: int
    indoor_ratio: float
    high_loss_ratio: float
    floors: tuple[int, int] | None
    max_d2d_in_m: float
    tilt_deg: float
    n_elements: int
    tx_power_dbm: float
    bandwidth_hz: float
    noise_figure_db: float


def phase1_config(
    scenario_name: Literal["UMa", "UMi", "RMa"], carrier_hz: float, ues_per_cell: int = 10
) -> Phase1Config:
    """Table 7.8-1 configuration of the Phase-1 calibration (19 sites × 3 sectors, wrap-around).

    UMa: ISD 500 m, BS 25 m, min 2D distance 35 m; UMi: ISD 200 m, BS 10 m, min 10 m; both 80 %
    indoor (50/50 low/high loss), TR 36.873 floor heights, 12° electrical tilt on a 10-element
    column. Power/bandwidth: ≤ 6 GHz → 20 MHz with 49 dBm (UMa) / 44 dBm (UMi); above → 100 MHz,
    35 dBm. UE noise figure 9 dB.

    RMa is not part of Table 7.8-1; we use TR 38.901 Table 7.2-3 (ISD 1732 m, BS 35 m, UE 1.5 m,
    50 % indoor, low-loss O2I, d_2D-in ≤ 10 m, min distance 35 m) with 46 dBm in 10 MHz (an
    assumption of ours, as for TR 36.873 rural macro); in-car penetration is not modelled.
    """
    if scenario_name == "UMa":
        geo = dict(
            isd_m=500.0,
            bs_height_m=25.0,
            min_distance_2d_m=35.0,
            indoor_ratio=0.8,
            high_loss_ratio=0.5,
            floors=(4, 8),
            max_d2d_in_m=25.0,
        )
        low_band_power = 49.0
    elif scenario_name == "UMi":
        geo = dict(
            isd_m=200.0,
            bs_height_m=10.0,
            min_distance_2d_m=10.0,
            indoor_ratio=0.8,
            high_loss_ratio=0.5,
            floors=(4, 8),
            max_d2d_in_m=25.0,
        )
        low_band_power = 44.0
    elif scenario_name == "RMa":
        geo = dict(
            isd_m=1732.0,
            bs_height_m=35.0,
            min_distance_2d_m=35.0,
            indoor_ratio=0.5,
            high_loss_ratio=0.0,
            floors=None,
            max_d2d_in_m=10.0,
        )
        return Phase1Config(
            "RMa",
            float(carrier_hz),
            19,
            ues_per_cell=ues_per_cell,
            tilt_deg=12.0,
            n_elements=10,
            tx_power_dbm=46.0,
            bandwidth_hz=10e6,
            noise_figure_db=9.0,
            **geo,
        )
    else:
        raise ValueError(
            f"phase1_config: scenario_name must be 'UMa', 'UMi' or 'RMa', got {scenario_name!r}"
        )
    if not carrier_hz > 0:
        raise ValueError(f"phase1_config: carrier_hz must be positive, got {carrier_hz!r}")
    low = carrier_hz <= 6e9 + 1.0
    return Phase1Config(
        scenario_name,
        float(carrier_hz),
        19,
        ues_per_cell=ues_per_cell,
        tilt_deg=12.0,
        n_elements=10,
        tx_power_dbm=low_band_power if low else 35.0,
        bandwidth_hz=20e6 if low else 100e6,
        noise_figure_db=9.0,
        **geo,
    )


class Phase1Drop(eqx.Module):
    """One drop of the Phase-1 calibration.

    Attributes:
        coupling_loss_db: ``[ues, cells]`` coupling loss (dB).
        serving_coupling_loss_db: ``[ues]`` coupling loss to the serving cell (dB) — the
            calibration's "coupling loss" metric.
        geometry_sinr_db: ``[ues]`` geometry SINR (dB).
    """

    coupling_loss_db: Float[Array, "ues cells"]
    serving_coupling_loss_db: Float[Array, " ues"]
    geometry_sinr_db: Float[Array, " ues"]


_SCENARIOS = {"UMa": UMa, "UMi": UMi, "RMa": RMa}


def phase1_drop(
    key: PRNGKeyArray,
    scenario_name: Literal["UMa", "UMi", "RMa"],
    carrier_hz: float,
    *,
    indoor_distance: Literal["38901", "36873"] = "38901",
    config: Phase1Config | None = None,
    scenario=None,
) -> Phase1Drop:
    """One drop of the TR 38.901 Phase-1 calibration: coupling loss and geometry SINR.

    ``scenario_name``/``carrier_hz`` (static) pick :func:`phase1_config`; pass ``config`` to
    override it and ``scenario`` to use a non-default scenario pytree. ``indoor_distance``
    selects the d_2D-in model of :func:`dtwin.geometry.drop_ues`. vmap over ``key`` for many drops.
    """
    cfg = phase1_config(scenario_name, carrier_hz) if config is None else config
    sc = _SCENARIOS[cfg.scenario_name]() if scenario is None else scenario
    topo = hex_topology(cfg.n_sites, cfg.isd_m, cfg.bs_height_m)
    k_drop, k_cl = jax.random.split(key)
    ues = drop_ues(
        k_drop,
        topo,
        cfg.ues_per_cell,
        cfg.min_distance_2d_m,
        cfg.indoor_ratio,
        cfg.high_loss_ratio,
        floors=cfg.floors,
        max_d2d_in_m=cfg.max_d2d_in_m,
        indoor_distance=indoor_distance,
    )
    cl = coupling_loss_db(
        k_cl, sc, topo, ues, cfg.carrier_hz, cfg.tilt_deg, n_elements=cfg.n_elements
    )
    noise = thermal_noise_dbm(cfg.bandwidth_hz, cfg.noise_figure_db)
    return Phase1Drop(
        coupling_loss_db=cl,
        serving_coupling_loss_db=jnp.min(cl, axis=-1),
        geometry_sinr_db=geometry_sinr_db(cl, cfg.tx_power_dbm, noise),
    )
