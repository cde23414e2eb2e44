"""Multi-cell network model: topology + UEs + CM + channel -> RSRP, association, SINR, throughput.

Everything here is a pure, differentiable function of its inputs (CM, UE positions and demand, and
the scenario's parameters), written for a single network snapshot; batch it with ``jax.vmap``.

Model (downlink, one carrier):

* Coupling gain of link (u, c): ``-PL(d, LOS) - O2I - SF + G_c(θ, φ; tilt_c)`` in dB, with the
  TR 38.901 pathloss/LOS/O2I/SF of :mod:`dtwin.channel` and the tilted column of
  :mod:`dtwin.antenna`. The random large-scale state (LOS flags, shadowing, O2I loss) is drawn once
  per snapshot by :func:`draw_channel` and kept fixed while CM varies.
* RSRP (dBm) = ``P_c - 10 log10(12 N_PRB) + coupling gain`` (power per resource element).
* Association: softmax over cells of ``(RSRP + CIO) / T`` for gradients, or the hard argmax.
  The softmax may be restricted to each UE's ``candidates`` strongest cells (renormalised over
  them): the soft simulation then evaluates SINR and SE toward ``k`` cells per UE, not all of
  them, at the cost of the mass the full softmax puts outside them (``3-5e-6`` per UE on average
  at ``k = 6``, 1 dB temperature, in the built-in areas; at most about 1 % at cell corners
  where many cells are within a few dB).
* SINR toward candidate cell c: ``P_c g_uc / (Σ_{c'≠c} ρ_c' P_c' g_uc' + N)`` where ``ρ`` is the
  neighbours' PRB utilisation (load-dependent interference) and ``N`` thermal noise with the UE's
  noise figure (TS 38.101 style, ``-174 dBm/Hz + 10 log10(B) + NF``).
* Load coupling: ``ρ = f(ρ)`` where ``f`` is the PRB utilisation the proportional-fair scheduler
  needs to serve the demand at the SINRs that ``ρ`` implies (Siomina & Yuan's load-coupling
  model). It is solved as a fixed point with :func:`optimistix.fixed_point` and differentiated
  **implicitly** (``optimistix.ImplicitAdjoint``): the gradient is exact at the fixed point and
  costs one linear solve, not a backward pass through the iterations. At full buffer ``ρ = 1``
  for every cell that serves a UE, and no iteration is needed.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from . import kpi as _kpi
from . import throughput as _tp
from .antenna import array_gain_dbi
from .channel import (
    AbstractScenario,
    los_probability,
    o2i_loss_db,
    pathloss_db,
    shadow_fading_std_db,
)
from .geometry import Topology, UEs, link_geometry

_SUBCARRIER_SPACING_HZ = 30e3
_REPORTING_PERIOD_S = 900.0  # PM reporting period (15 min), as dtwin.kpi
_HIGHEST = jax.lax.Precision.HIGHEST  # no bf16/TF32 rounding of f32 products on accelerators


class Network(eqx.Module):
    """A cellular network's static description (everything but CM and UEs).

    Attributes:
        topology: sites and cells.
        scenario: TR 38.901 scenario parameters (a pytree: calibratable).
        carrier_hz: carrier frequency (Hz).
        bandwidth_hz: channel bandwidth (Hz).
        noise_figure_db: UE noise figure (dB).
        overhead: share of resources spent on control/reference signals, in [0, 1).
        se_table: SINR->SE mapping, ``"cqi256"``, ``"cqi64"`` or ``"shannon"``.
        rsrp_coverage_dbm: RSRP threshold for the coverage KPI (dBm).
        max_load_iterations: bound on the load-coupling fixed-point iterations.
        efficiency: factor on spectral efficiency (MIMO layers, scheduler gains the SE table
            does not model); 1 = the table as is.
    """

    topology: Topology
    scenario: AbstractScenario
    carrier_hz: float = eqx.field(static=True, default=3.5e9)
    bandwidth_hz: float = eqx.field(static=True, default=20e6)
    noise_figure_db: float = eqx.field(static=True, default=9.0)
    overhead: float = eqx.field(static=True, default=_tp.DL_OVERHEAD_FR1)
    se_table: str = eqx.field(static=True, default="cqi256")
    rsrp_coverage_dbm: float = eqx.field(static=True, default=-110.0)
    max_load_iterations: int = eqx.field(static=True, default=64)
    efficiency: float = eqx.field(static=True, default=1.0)

    @property
    def n_cells(self) -> int:
        return int(self.topology.cell_site.shape[0])

    @property
    def n_prb(self) -> int:
        """PRBs at 30 kHz SCS with ~90 % spectral occupancy (TS 38.101-1 Table 5.3.2-1)."""
        return max(1, int(math.floor(0.9 * self.bandwidth_hz / (12 * _SUBCARRIER_SPACING_HZ))))

    @property
    def noise_dbm(self) -> float:
        """Thermal noise power over the band (dBm): -174 + 10 log10(B) + NF."""
        return -174.0 + 10.0 * math.log10(self.bandwidth_hz) + self.noise_figure_db


class UEPopulation(eqx.Module):
    """UEs with their traffic demand.

    Attributes:
        ues: positions and indoor state.
        demand_mbps: per-UE offered downlink traffic (Mbps); ``inf`` means full buffer.
        weight: soft presence in [0, 1] (1 = present), so that generators stay differentiable.
    """

    ues: UEs
    demand_mbps: Float[Array, " ues"]
    weight: Float[Array, " ues"]

    @classmethod
    def full_buffer(cls, ues: UEs) -> "UEPopulation":
        n = ues.xy_m.shape[0]
        return cls(ues, jnp.full((n,), jnp.inf, jnp.float32), jnp.ones((n,), jnp.float32))

    @classmethod
    def with_demand(cls, ues: UEs, demand_mbps) -> "UEPopulation":
        n = ues.xy_m.shape[0]
        d = jnp.broadcast_to(jnp.asarray(demand_mbps, jnp.float32), (n,))
        return cls(ues, d, jnp.ones((n,), jnp.float32))


class LinkChannel(eqx.Module):
    """The random large-scale state of every link, drawn once per snapshot.

    Attributes:
        los: line-of-sight flag per link.
        sf_db: shadow fading per link (dB), already scaled by the scenario's σ.
        o2i_db: outdoor-to-indoor penetration loss per UE (dB), 0 for outdoor UEs.
    """

    los: Bool[Array, "ues cells"]
    sf_db: Float[Array, "ues cells"]
    o2i_db: Float[Array, " ues"]


class NetworkResult(eqx.Module):
    """Per-UE and per-cell outcome of one snapshot.

    Attributes:
        rsrp_dbm: RSRP of every link (dBm).
        serving_prob: association weights (one-hot in hard mode).
        sinr_db: SINR toward the serving cell (dB; association-weighted in soft mode).
        se_bps_hz: spectral efficiency on the serving link (bit/s/Hz).
        throughput_mbps: served rate (Mbps): the UE's demand, or its PF share when the cell is
            overloaded (what it gets on average over the period; sums to cell throughput).
        user_throughput_mbps: user-perceived DL throughput (Mbps) while the UE has data, the
            TS 28.552 5.1.1.3.1 "DL UE throughput" KPI (volume / active time): under processor
            sharing a flow gets the peak rate ``R`` times the share of time the cell is not busy
            with others, ``R max(1 - ρ_c, 1 / n_c)`` (``1/n_c``: the full-buffer equal share).
        prb_utilization: per-cell PRB utilisation ``ρ`` in [0, 1].
        load_converged: whether the load-coupling fixed point converged.
    """

    rsrp_dbm: Float[Array, "ues cells"]
    serving_prob: Float[Array, "ues cells"]
    sinr_db: Float[Array, " ues"]
    se_bps_hz: Float[Array, " ues"]
    throughput_mbps: Float[Array, " ues"]
    user_throughput_mbps: Float[Array, " ues"]
    prb_utilization: Float[Array, " cells"]
    load_converged: Bool[Array, ""]


def draw_channel(key: PRNGKeyArray, network: Network, population: UEPopulation) -> LinkChannel:
    """Draw LOS states, shadow fading and O2I loss for every link (TR 38.901 7.4.2, 7.4.1, 7.4.3).

    LOS is drawn from the LOS probability at each link's *outdoor* 2D distance. LOS state and
    shadow fading are drawn once per UE-*site* link and shared by the site's co-located sectors
    (as in the TR 38.901 calibration); shadowing is not correlated across sites or UEs.
    """
    ues = population.ues
    topo = network.topology
    geom = link_geometry(topo, ues)
    n_sites = topo.site_xy_m.shape[0]
    k_los, k_sf, k_o2i = jax.random.split(key, 3)
    site_u = jax.random.uniform(k_los, (ues.xy_m.shape[0], n_sites))[:, topo.cell_site]
    site_z = jax.random.normal(k_sf, (ues.xy_m.shape[0], n_sites))[:, topo.cell_site]
    d_out = jnp.maximum(geom.distance_2d_m - ues.d2d_in_m[:, None], 0.0)
    p_los = los_probability(network.scenario, d_out, ues.h_m[:, None])
    los = site_u < p_los
    sigma = shadow_fading_std_db(
        network.scenario,
        los,
        ues.indoor[:, None],
        distance_2d_m=geom.distance_2d_m,
        h_bs_m=topo.bs_height_m[None, :],
        h_ut_m=ues.h_m[:, None],
        carrier_hz=network.carrier_hz,
    )
    sf = sigma * site_z
    o2i = o2i_loss_db(k_o2i, network.carrier_hz, ues.d2d_in_m, ues.high_loss)
    o2i = jnp.where(ues.indoor, o2i, 0.0)
    return LinkChannel(los=los, sf_db=sf.astype(jnp.float32), o2i_db=o2i.astype(jnp.float32))


class LinkTerms(eqx.Module):
    """The CM-independent part of every UE-cell link of a snapshot.

    The coupling gain at tilts ``t`` is
    ``array_gain_dbi(zenith, azimuth, t) − pathloss − shadow fading − O2I loss``
    (:func:`coupling_gain_from_links`, the same float operations in the same order as
    :func:`coupling_gain_db`): everything but the antenna gain is independent of the CM, so a
    search over CM computes it once (`opt.SimulatorPredictor`).

    Attributes:
        zenith_deg: zenith angle of each link in the global frame (degrees, 90 = horizon).
        azimuth_deg: azimuth from each cell's boresight (degrees, (-180, 180]).
        pathloss_db: TR 38.901 pathloss of each link at its LOS state (dB).
        sf_db: shadow fading of each link (dB).
        o2i_db: outdoor-to-indoor loss of each UE (dB, 0 outdoors).
    """

    zenith_deg: Float[Array, "ues cells"]
    azimuth_deg: Float[Array, "ues cells"]
    pathloss_db: Float[Array, "ues cells"]
    sf_db: Float[Array, "ues cells"]
    o2i_db: Float[Array, " ues"]


def link_terms(network: Network, population: UEPopulation, channel: LinkChannel) -> LinkTerms:
    """The :class:`LinkTerms` of a snapshot (TR 38.901 pathloss at the channel's LOS states)."""
    ues = population.ues
    topo = network.topology
    geom = link_geometry(topo, ues)
    pl = pathloss_db(
        network.scenario,
        geom.distance_2d_m,
        topo.bs_height_m[None, :],
        ues.h_m[:, None],
        network.carrier_hz,
        channel.los,
    )
    return LinkTerms(geom.zenith_deg, geom.azimuth_deg, pl, channel.sf_db, channel.o2i_db)


def coupling_gain_from_links(
    links: LinkTerms, tilt_deg: Float[Array, " cells"]
) -> Float[Array, "ues cells"]:
    """Coupling gain (dB) of every link at the given tilts (degrees) from its :class:`LinkTerms`."""
    gain = array_gain_dbi(links.zenith_deg, links.azimuth_deg, tilt_deg[None, :])
    return gain - links.pathloss_db - links.sf_db - links.o2i_db[:, None]


def coupling_gain_db(
    network: Network,
    population: UEPopulation,
    channel: LinkChannel,
    tilt_deg: Float[Array, " cells"],
) -> Float[Array, "ues cells"]:
    """Coupling gain (dB, negative of coupling loss) of every UE-cell link for the given tilts."""
    return coupling_gain_from_links(link_terms(network, population, channel), tilt_deg)


def rsrp_dbm(
    network: Network, coupling_gain: Float[Array, "ues cells"], tx_power_dbm: Float[Array, " cells"]
) -> Float[Array, "ues cells"]:
    """RSRP (dBm): transmit power per resource element plus coupling gain."""
    per_re = tx_power_dbm - 10.0 * math.log10(12 * network.n_prb)
    return per_re[None, :] + coupling_gain


def associate(
    rsrp: Float[Array, "ues cells"],
    cio_db: Float[Array, " cells"],
    *,
    hard: bool = False,
    temperature_db: float = 1.0,
) -> Float[Array, "ues cells"]:
    """Serving-cell probabilities: softmax of ``(RSRP + CIO)/T`` or one-hot argmax when ``hard``."""
    score = rsrp + cio_db[None, :]
    if hard:
        return jax.nn.one_hot(jnp.argmax(score, axis=-1), score.shape[-1], dtype=score.dtype)
    return jax.nn.softmax(score / temperature_db, axis=-1)


def _se(network: Network, sinr_db, hard: bool = False):
    se = _tp.spectral_efficiency(sinr_db, table=network.se_table, hard=hard)
    return network.efficiency * se


def _db_to_linear(x_db):
    """``10^(x/10)`` as ``exp(x ln10 / 10)`` (XLA CPU: ``pow`` runs per element, ``exp`` SIMD)."""
    return jnp.exp(x_db * (math.log(10.0) / 10.0))


def _hard_link_terms(
    rx_mw: Float[Array, "ues cells"], serving_prob: Float[Array, "ues cells"]
) -> tuple[Float[Array, " ues"], Float[Array, "ues cells"]]:
    """Serving power ``s_u = Σ_c p_uc rx_uc`` and the interferer matrix ``rx_uc (1 − p_uc)``.

    The interference at loads ``ρ`` is then one matrix-vector product, ``(rx (1 − p)) @ ρ``
    (equal to ``rx @ ρ − Σ_c p_uc rx_uc ρ_c`` without its cancellation), so the load iteration
    reuses both terms.
    """
    return jnp.sum(serving_prob * rx_mw, axis=-1), rx_mw * (1.0 - serving_prob)


def _sinr_hard_db(signal_mw, interferer_mw, load, noise_mw) -> Float[Array, " ues"]:
    interference = jnp.matmul(interferer_mw, load, precision=_HIGHEST)
    return 10.0 * jnp.log10(signal_mw / (interference + noise_mw))


def _sinr_db(
    rx_mw: Float[Array, "ues cells"],
    load: Float[Array, " cells"],
    noise_mw: float,
    serving_prob: Float[Array, "ues cells"],
    hard: bool,
) -> Float[Array, "ues cells"] | Float[Array, " ues"]:
    """SINR (dB) with load-weighted interference.

    Soft mode: toward every candidate serving cell, ``[ues, cells]``. Hard mode: toward the serving
    cell only, ``[ues]`` (a matrix-vector product instead of a matrix: the sweep's fast path).
    """
    if hard:
        return _sinr_hard_db(*_hard_link_terms(rx_mw, serving_prob), load, noise_mw)
    total = rx_mw @ load  # [ues]
    interference = total[:, None] - rx_mw * load[None, :]
    return 10.0 * jnp.log10(rx_mw / (interference + noise_mw))


def _time_share_needed(network: Network, population: UEPopulation, se_bps_hz):
    """Time share ``min(d / R, 1)`` each UE needs at peak rate ``R = B (1 - oh) SE``.

    (1 = full buffer.)
    """
    rate_mbps = network.bandwidth_hz * (1.0 - network.overhead) * se_bps_hz / 1e6
    d = population.demand_mbps
    finite = jnp.isfinite(d)
    d = jnp.where(finite, d, 0.0)
    if rate_mbps.ndim == 2:
        d, finite = d[:, None], finite[:, None]
    t = jnp.minimum(d / jnp.maximum(rate_mbps, 1e-3), 1.0)
    return jnp.where(finite, t, 1.0)


def load_map(
    network: Network,
    population: UEPopulation,
    serving_prob: Float[Array, "ues cells"],
    rx_mw: Float[Array, "ues cells"],
    load: Float[Array, " cells"],
    hard: bool = False,
) -> Float[Array, " cells"]:
    """One application of the load-coupling map ``f(ρ)_c = min(1, Σ_u p_uc w_u t_uc(ρ))``.

    ``t_uc`` is the time share UE u needs from cell c at the SINR that the loads ``ρ`` imply.
    This equals the PRB utilisation of the proportional-fair water-filling scheduler
    (:func:`dtwin.throughput.pf_throughput_mbps`): served UEs' shares sum to ``min(1, Σ t)``.
    """
    mass = serving_prob * population.weight[:, None]
    if hard:
        return _load_map_hard(
            network, population, mass, *_hard_link_terms(rx_mw, serving_prob), load
        )
    noise_mw = 10.0 ** (network.noise_dbm / 10.0)
    sinr = _sinr_db(rx_mw, load, noise_mw, serving_prob, hard)
    t = _time_share_needed(network, population, _se(network, sinr, hard))
    return jnp.minimum(jnp.sum(mass * t, axis=0), 1.0)


def _load_map_hard(network, population, mass, signal_mw, interferer_mw, load):
    """:func:`load_map` with hard association, from :func:`_hard_link_terms` (precomputed once
    per solve): two matrix-vector products per application."""
    noise_mw = 10.0 ** (network.noise_dbm / 10.0)
    sinr = _sinr_hard_db(signal_mw, interferer_mw, load, noise_mw)
    t = _time_share_needed(network, population, _se(network, sinr, True))
    return jnp.minimum(jnp.matmul(t, mass, precision=_HIGHEST), 1.0)


def solve_load(
    network: Network,
    population: UEPopulation,
    serving_prob: Float[Array, "ues cells"],
    rx_mw: Float[Array, "ues cells"],
    hard: bool = False,
) -> tuple[Float[Array, " cells"], Bool[Array, ""]]:
    """Solve the load-coupling fixed point ``ρ = f(ρ)`` (:func:`load_map`), implicit gradients.

    ``f`` is a standard interference function (monotone, scalable), so the iteration from
    ``ρ = 1`` decreases monotonically to the unique fixed point. Gradients use
    ``optimistix.ImplicitAdjoint`` (implicit function theorem at the solution).

    Returns:
        The PRB utilisation per cell and whether the iteration converged within
        ``network.max_load_iterations`` (to ``rtol = atol = 1e-4``).
    """
    if hard:  # the load-independent terms are computed once, not at every iteration
        mass = serving_prob * population.weight[:, None]
        signal_mw, interferer_mw = _hard_link_terms(rx_mw, serving_prob)

        def f(load, _):
            return _load_map_hard(network, population, mass, signal_mw, interferer_mw, load)
    else:

        def f(load, _):
            return load_map(network, population, serving_prob, rx_mw, load, hard)

    return _fixed_point_load(network, f, rx_mw)


def _fixed_point_load(network: Network, f, rx_mw) -> tuple[Float[Array, " cells"], Bool[Array, ""]]:
    """Iterate the load map ``f`` from ``ρ = 1`` (implicit gradients); value and convergence."""
    sol = optx.fixed_point(
        f,
        optx.FixedPointIteration(rtol=1e-4, atol=1e-4),
        jnp.ones(rx_mw.shape[-1], rx_mw.dtype),
        max_steps=network.max_load_iterations,
        throw=False,
    )
    return sol.value, sol.result == optx.RESULTS.successful


class _Candidates(eqx.Module):
    """A soft association restricted to ``k`` candidate cells per UE.

    Attributes:
        index: the candidate cells of each UE (a constant of the snapshot and CM: ``top_k`` of the
            association score, no gradient through the choice).
        prob: association weights over the candidates (softmax of the score over them).
        rx_mw: received power from each candidate (mW).
    """

    index: Array  # int [ues, k]
    prob: Float[Array, "ues k"]
    rx_mw: Float[Array, "ues k"]

    def dense(self, x: Float[Array, "ues k"], n_cells: int) -> Float[Array, "ues cells"]:
        """``x`` placed at the candidates of ``[ues, cells]``, zero elsewhere."""
        rows = jnp.arange(x.shape[0])[:, None]
        return jnp.zeros((x.shape[0], n_cells), x.dtype).at[rows, self.index].set(x)


def _candidates(score, rx_mw, k: int, temperature_db: float) -> _Candidates:
    _, index = jax.lax.top_k(jax.lax.stop_gradient(score), k)
    prob = jax.nn.softmax(jnp.take_along_axis(score, index, axis=-1) / temperature_db, axis=-1)
    return _Candidates(index, prob, jnp.take_along_axis(rx_mw, index, axis=-1))


def _sinr_candidates_db(cand: _Candidates, rx_mw, load, noise_mw) -> Float[Array, "ues k"]:
    """:func:`_sinr_db` (soft) toward the candidate cells only."""
    total = jnp.matmul(rx_mw, load, precision=_HIGHEST)  # [ues], every cell interferes
    interference = total[:, None] - cand.rx_mw * load[cand.index]
    return 10.0 * jnp.log10(cand.rx_mw / (interference + noise_mw))


def _solve_load_candidates(
    network: Network, population: UEPopulation, cand: _Candidates, rx_mw
) -> tuple[Float[Array, " cells"], Bool[Array, ""]]:
    """:func:`solve_load` (soft) with the association restricted to the candidates: the load map
    evaluates SINR and SE on ``[ues, k]`` and sums the time shares into cells by segment sum."""
    n_cells = rx_mw.shape[-1]
    noise_mw = 10.0 ** (network.noise_dbm / 10.0)
    mass = (cand.prob * population.weight[:, None]).ravel()
    cells = cand.index.ravel()

    def f(load, _):
        sinr = _sinr_candidates_db(cand, rx_mw, load, noise_mw)
        t = _time_share_needed(network, population, _se(network, sinr))
        used = jax.ops.segment_sum(mass * t.ravel(), cells, num_segments=n_cells)
        return jnp.minimum(used, 1.0)

    return _fixed_point_load(network, f, rx_mw)


def _float(x) -> Array:
    """As a floating array: float32 unless already floating (float64 is kept for tests)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def simulate(
    network: Network,
    population: UEPopulation,
    channel: LinkChannel,
    cm: dict[str, Float[Array, " cells"]],
    *,
    hard: bool = False,
    temperature_db: float = 1.0,
    candidates: int | None = None,
) -> NetworkResult:
    """Simulate one downlink snapshot for a CM.

    Args:
        network: the network description.
        population: UEs and their demand.
        channel: the snapshot's large-scale fading (from :func:`draw_channel`).
        cm: per-cell CM, at least ``tilt_deg`` (degrees), ``tx_power_dbm`` (dBm), ``cio_db`` (dB).
        hard: evaluation mode: hard (argmax) association and the exact SE table lookup; the
            soft (softmax) association and smooth SE curve otherwise, for gradients.
        temperature_db: softmax temperature (dB) of the soft association.
        candidates: soft mode: restrict the association of each UE to its ``candidates``
            strongest cells (by ``RSRP + CIO``; the softmax renormalised over them), which makes
            the soft simulation and its gradient cost ``O(ues k)`` instead of ``O(ues cells)``
            per load iteration. None (or at least the number of cells): every cell. Ignored in
            hard mode.

    Returns:
        A :class:`NetworkResult`.
    """
    return simulate_from_links(
        network,
        population,
        link_terms(network, population, channel),
        cm,
        hard=hard,
        temperature_db=temperature_db,
        candidates=candidates,
    )


def simulate_from_links(
    network: Network,
    population: UEPopulation,
    links: LinkTerms,
    cm: dict[str, Float[Array, " cells"]],
    *,
    hard: bool = False,
    temperature_db: float = 1.0,
    candidates: int | None = None,
) -> NetworkResult:
    """:func:`simulate` from the snapshot's precomputed :class:`LinkTerms` (:func:`link_terms`).

    The CM enters the links only through the antenna gain at its tilts, so a caller evaluating
    many CMs on one snapshot computes the links once (`opt.SimulatorPredictor`); the pathloss
    model (``network.scenario``) is not read here.
    """
    _check_cm("simulate", cm)
    g_db = coupling_gain_from_links(links, _float(cm["tilt_deg"]))
    return simulate_from_gain(
        network,
        population,
        g_db,
        cm,
        hard=hard,
        temperature_db=temperature_db,
        candidates=candidates,
    )


def check_candidates(name: str, candidates) -> None:
    """Raise a ValueError naming ``name`` unless ``candidates`` is None or a positive int."""
    if candidates is not None and (
        isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1
    ):
        raise ValueError(f"{name}: candidates must be a positive int or None, got {candidates!r}")


def _check_cm(name: str, cm) -> None:
    missing = [k for k in ("tilt_deg", "tx_power_dbm") if k not in cm]
    if missing:
        raise ValueError(f"{name}: CM is missing {missing}; it has {sorted(cm)}")


def simulate_from_gain(
    network: Network,
    population: UEPopulation,
    gain_db: Float[Array, "ues cells"],
    cm: dict[str, Float[Array, " cells"]],
    *,
    hard: bool = False,
    temperature_db: float = 1.0,
    candidates: int | None = None,
) -> NetworkResult:
    """:func:`simulate` from a precomputed coupling gain (dB, at the CM's tilts).

    Association, load coupling, throughput and SINR depend on the links only through the
    coupling gain. Computing it in a separate compiled function and passing it in materialises
    it once: XLA's CPU backend otherwise fuses the whole per-link chain (geometry, antenna,
    pathloss) into every reduction that reads it (association argmax, KPI means), where it is
    recomputed per consumer without vectorisation (:func:`dtwin.sweep.make_batch_fn`).

    Args:
        gain_db: :func:`coupling_gain_db` of the snapshot at ``cm["tilt_deg"]`` (dB).
        others: as :func:`simulate`.
    """
    _check_cm("simulate_from_gain", cm)
    g_db = gain_db
    power = _float(cm["tx_power_dbm"])
    cio = _float(cm.get("cio_db", jnp.zeros_like(power)))

    rsrp = rsrp_dbm(network, g_db, power)
    n_cells = rsrp.shape[-1]
    rx_mw = _db_to_linear(power[None, :] + g_db)
    noise_mw = 10.0 ** (network.noise_dbm / 10.0)
    check_candidates("simulate", candidates)
    if candidates is not None and not hard and candidates < n_cells:
        cand = _candidates(rsrp + cio[None, :], rx_mw, candidates, temperature_db)
        p_serv = cand.dense(cand.prob, n_cells)
        load, converged = _solve_load_candidates(network, population, cand, rx_mw)
        sinr_k = _sinr_candidates_db(cand, rx_mw, load, noise_mw)
        sinr_c = cand.dense(sinr_k, n_cells)  # zero (weight 0) outside the candidates
        se_c = cand.dense(_se(network, sinr_k), n_cells)
    else:
        if hard:  # associate(..., hard=True), keeping the serving-cell index
            serving = jnp.argmax(rsrp + cio[None, :], axis=-1)
            p_serv = jax.nn.one_hot(serving, n_cells, dtype=rsrp.dtype)
        else:
            p_serv = associate(rsrp, cio, hard=False, temperature_db=temperature_db)
        load, converged = solve_load(network, population, p_serv, rx_mw, hard)
        sinr_c = _sinr_db(rx_mw, load, noise_mw, p_serv, hard)  # [ues, cells] soft, [ues] hard
        se_c = _se(network, sinr_c, hard)
    if hard:  # same shares as pf_throughput_mbps on one-hot masses, by sorting per cell
        tp, util = _tp.pf_throughput_hard_mbps(
            se_c,
            serving,
            population.weight,
            n_cells,
            population.demand_mbps,
            network.bandwidth_hz,
            network.overhead,
        )
    else:
        tp, util = _tp.pf_throughput_mbps(
            se_c,
            p_serv * population.weight[:, None],
            population.demand_mbps,
            network.bandwidth_hz,
            network.overhead,
        )
    sinr_u = sinr_c if hard else jnp.sum(p_serv * sinr_c, axis=-1)
    se_u = se_c if hard else jnp.sum(p_serv * se_c, axis=-1)
    peak = network.bandwidth_hz * (1.0 - network.overhead) * se_c / 1e6
    n_c = jnp.sum(p_serv * population.weight[:, None], axis=0)
    idle = jnp.maximum(1.0 - util, 1.0 / jnp.maximum(n_c, 1.0))  # [cells]
    user_tp = peak * idle[None, :] if not hard else peak * (p_serv @ idle)
    user_tp = user_tp if hard else jnp.sum(p_serv * user_tp, axis=-1)
    return NetworkResult(
        rsrp_dbm=rsrp,
        serving_prob=p_serv,
        sinr_db=sinr_u,
        se_bps_hz=se_u,
        throughput_mbps=tp,
        user_throughput_mbps=user_tp,
        prb_utilization=util,
        load_converged=converged,
    )


def cell_kpis(
    network: Network, population: UEPopulation, result: NetworkResult
) -> dict[str, Float[Array, " cells"]]:
    """Per-cell KPIs and PM counters keyed by :data:`dtwin.schema.TARGET_COLUMNS`.

    ``dl_throughput_mbps`` and ``cell_edge_throughput_mbps`` are the mean and 5th percentile of
    the *user-perceived* throughput (``NetworkResult.user_throughput_mbps``, as operators' DL UE
    throughput KPI); ``cell_throughput_mbps`` and ``traffic_volume_mb`` count the *served* rate.
    RSRP, SINR and CQI of each UE are taken toward its serving cell(s) (``serving_prob``
    weighted); CQI is the smooth CQI of :func:`dtwin.throughput.cqi_from_sinr_soft`.
    See :func:`dtwin.kpi.cell_kpis` for the definitions. Cells that serve no UE get NaN for the
    intensive KPIs (means, quantiles, coverage).
    """
    out = _kpi.cell_kpis(
        serving_prob=result.serving_prob,
        throughput_mbps=result.user_throughput_mbps,
        prb_utilization=result.prb_utilization,
        rsrp_dbm=result.rsrp_dbm,
        sinr_db=result.sinr_db,
        cqi=_tp.cqi_from_sinr_soft(result.sinr_db, table=_cqi_table(network)),
        edge_quantile=0.05,
        weight=population.weight,
        coverage_threshold_dbm=network.rsrp_coverage_dbm,
    )
    mass = result.serving_prob * population.weight[:, None]
    cell_tp = jnp.sum(mass * result.throughput_mbps[:, None], axis=0)
    out["cell_throughput_mbps"] = cell_tp
    out["traffic_volume_mb"] = cell_tp * _REPORTING_PERIOD_S / 8.0
    return out


def _cqi_table(network: Network) -> str:
    return "cqi64" if network.se_table == "cqi64" else "cqi256"
