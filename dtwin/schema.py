"""Column names and units of the per-cell data sets shared by `dtwin` sweeps and `sim2real`.

One row per cell per snapshot (twin) or per reporting period (commercial network). The twin
writes every column below; a commercial file needs at least the identifying columns, the CM in
force, the state columns it has, and the targets it wants modelled (at least
``dl_throughput_mbps``). Column *roles* (CM / state / target) have these defaults and can be
overridden by the user in `sim2real`.
"""

from __future__ import annotations

# name -> (unit, description)
ID_COLUMNS: dict[str, tuple[str, str]] = {
    "snapshot_id": ("-", "twin snapshot (or commercial reporting period) index, int64"),
    "cell_id": ("-", "cell identifier, int64; unique within a snapshot"),
    "site_id": ("-", "site identifier, int64"),
    "area_type": ("-", "metro | urban | suburban | rural"),
}

GEOMETRY_COLUMNS: dict[str, tuple[str, str]] = {
    "x_m": ("m", "site position east"),
    "y_m": ("m", "site position north"),
    "azimuth_deg": (
        "degrees",
        "sector boresight, counter-clockwise from the x (east) axis, as in TR 38.901",
    ),
    "height_m": ("m", "antenna height above ground"),
    "isd_m": ("m", "inter-site distance of the scenario"),
}

CM_COLUMNS: dict[str, tuple[str, str]] = {
    "tilt_deg": ("degrees", "electrical downtilt"),
    "tx_power_dbm": ("dBm", "total cell transmit power"),
    "cio_db": ("dB", "cell individual offset for association"),
}

STATE_COLUMNS: dict[str, tuple[str, str]] = {
    "hour": ("h", "hour of day, 0-23"),
    "active_ues": ("-", "mean number of active UEs served by the cell"),
    "offered_load_mbps": ("Mbps", "offered traffic demand in the cell's coverage area"),
    "ue_density_per_km2": ("1/km^2", "UE density of the scenario"),
    "indoor_ratio": ("-", "share of indoor UEs, 0-1"),
}

TARGET_COLUMNS: dict[str, tuple[str, str]] = {
    "dl_throughput_mbps": ("Mbps", "mean UE downlink throughput"),
    "cell_edge_throughput_mbps": ("Mbps", "5th-percentile UE downlink throughput"),
    "cell_throughput_mbps": ("Mbps", "cell downlink throughput (sum over UEs)"),
    "prb_utilization": ("-", "PRB utilisation, 0-1"),
    "mean_cqi": ("-", "mean reported CQI, 0-15"),
    "mean_rsrp_dbm": ("dBm", "mean RSRP of served UEs"),
    "mean_sinr_db": ("dB", "mean SINR of served UEs"),
    "coverage": ("-", "share of served UEs with RSRP above the coverage threshold"),
    "traffic_volume_mb": ("MB", "downlink traffic volume in the reporting period"),
}

DEFAULT_TARGET = "dl_throughput_mbps"

ALL_COLUMNS = {**ID_COLUMNS, **GEOMETRY_COLUMNS, **CM_COLUMNS, **STATE_COLUMNS, **TARGET_COLUMNS}
