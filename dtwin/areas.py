"""Area types (metro, urban, suburban, rural) and the network they imply.

Each area type fixes a TR 38.901 scenario, an inter-site distance, a carrier, the active-UE
density range and the indoor ratio. The numbers are typical deployments (TR 38.913 Table 6.1-1
evaluation configurations and TR 38.901 Table 7.8-1), chosen so that the twin spans the conditions
of a commercial network's metro, urban and suburban parts; they are data, not code paths, so users
override them by building their own :class:`AreaType`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .channel import RMa, UMa, UMi
from .geometry import hex_topology
from .network import Network
from .site_channel import SiteChannel


@dataclass(frozen=True)
class AreaType:
    """A family of deployments.

    Attributes:
        name: ``metro`` | ``urban`` | ``suburban`` | ``rural``.
        scenario: TR 38.901 scenario name, ``UMi`` | ``UMa`` | ``RMa``.
        isd_m: inter-site distance (m).
        bs_height_m: antenna height (m).
        carrier_hz: carrier frequency (Hz).
        bandwidth_hz: channel bandwidth (Hz).
        active_ues_per_cell: (min, max) active UEs per cell over the day.
        indoor_ratio: share of indoor UEs.
        demand_mbps: (min, max) mean offered demand per active UE (Mbps).
        min_distance_2d_m: minimum BS-UE 2D distance (m).
        site_channel: optional site-specific pathloss offset and shadow-fading spreads fitted
            to a ray-traced sounding (`dtwin.site_channel`); ``None`` = the TR 38.901 tables.
        ue_clustering: largest share (0-0.9) of the way a UE is pulled toward its cell's hotspot
            (`dtwin.sweep.sample_population`): per reporting period every cell draws a hotspot
            and a pull ``U(0, ue_clustering)``, a domain randomisation of where UEs gather, which
            the twin does not know. 0 = the TR 38.901 uniform drop.
    """

    name: str
    scenario: str
    isd_m: float
    bs_height_m: float
    carrier_hz: float
    bandwidth_hz: float
    active_ues_per_cell: tuple[float, float]
    indoor_ratio: float
    demand_mbps: tuple[float, float]
    min_distance_2d_m: float
    site_channel: SiteChannel | None = None
    ue_clustering: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.ue_clustering <= 0.9:
            raise ValueError(
                f"area {self.name!r}: ue_clustering must lie in [0, 0.9], got {self.ue_clustering}"
            )

    def with_ue_clustering(self, ue_clustering: float) -> AreaType:
        """This area type with randomised UE hotspots of pull up to ``ue_clustering``."""
        return dataclasses.replace(self, ue_clustering=float(ue_clustering))

    def with_site_channel(self, site_channel: SiteChannel | None) -> AreaType:
        """This area type with a site-specific channel (``None`` removes it)."""
        if site_channel is not None and site_channel.scenario != self.scenario:
            raise ValueError(
                f"area {self.name!r} uses scenario {self.scenario!r}, but the site channel was "
                f"fitted for {site_channel.scenario!r}"
            )
        return dataclasses.replace(self, site_channel=site_channel)

    @property
    def ue_density_per_km2(self) -> float:
        """Mean active-UE density (1/km²) of a 3-sector hexagonal layout at this ISD."""
        site_area_km2 = (3**0.5 / 2) * (self.isd_m / 1e3) ** 2
        return 3 * 0.5 * sum(self.active_ues_per_cell) / site_area_km2


AREA_TYPES: dict[str, AreaType] = {
    "metro": AreaType(
        "metro", "UMi", 200.0, 10.0, 3.5e9, 100e6, (4.0, 10.0), 0.8, (2.0, 25.0), 10.0
    ),
    "urban": AreaType(
        "urban", "UMa", 500.0, 25.0, 3.5e9, 100e6, (4.0, 10.0), 0.8, (2.0, 20.0), 35.0
    ),
    "suburban": AreaType(
        "suburban", "UMa", 1000.0, 30.0, 3.5e9, 100e6, (1.0, 5.0), 0.5, (2.0, 15.0), 35.0
    ),
    "rural": AreaType(
        "rural", "RMa", 1732.0, 35.0, 3.5e9, 100e6, (1.0, 3.0), 0.5, (1.0, 10.0), 35.0
    ),
}

_SCENARIOS = {"UMa": UMa, "UMi": UMi, "RMa": RMa}


def area_type(name: str) -> AreaType:
    """Look up a built-in area type by name (clear error for unknown names)."""
    try:
        return AREA_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown area type {name!r}; known: {sorted(AREA_TYPES)}") from None


def network_for_area(area: AreaType, n_sites: int = 7, *, wrap: bool = True, **kwargs) -> Network:
    """Build the hexagonal :class:`~dtwin.network.Network` of an area type.

    Args:
        area: the area type.
        n_sites: 1, 7 or 19 sites with 3 sectors each.
        wrap: use wrap-around distances (avoids the edge effect of a finite layout).
        **kwargs: overrides for :class:`~dtwin.network.Network` fields (``noise_figure_db``...).
    """
    if area.scenario not in _SCENARIOS:
        raise ValueError(f"area {area.name!r}: unknown scenario {area.scenario!r}")
    topo = hex_topology(n_sites, area.isd_m, area.bs_height_m, wrap=wrap)
    scenario = _SCENARIOS[area.scenario]()
    if area.site_channel is not None:
        scenario = area.site_channel.apply(scenario)
    return Network(
        topology=topo,
        scenario=scenario,
        carrier_hz=area.carrier_hz,
        bandwidth_hz=area.bandwidth_hz,
        **kwargs,
    )
