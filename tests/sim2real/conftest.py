"""Shared fixtures for the sim2real tests: a hidden analytic CM -> KPI generator.

The generator is independent of the twin and of the surrogate: a smooth function in the log
domain with a per-cell environment level (area, load, hour) plus a CM response with neighbour
interaction (own power/tilt/CIO, neighbours' mean power/tilt). The "commercial" network differs
from the "twin" ONLY in the environment (a known per-area offset and a scale of the load term);
the CM response is identical.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA
from sim2real.dataset import GraphBatch, batch_from_arrays

AREA_LEVEL = {"metro": 0.2, "urban": 0.0, "suburban": -0.3}
AREA_SHIFT = {"metro": -0.35, "urban": 0.3, "suburban": 0.5}  # commercial minus twin level
LOAD_SCALE = 1.6  # commercial load sensitivity / twin


@dataclasses.dataclass(frozen=True)
class Topo:
    x_m: np.ndarray
    y_m: np.ndarray
    azimuth_deg: np.ndarray
    site_id: np.ndarray
    area_type: np.ndarray
    height_m: np.ndarray
    near: np.ndarray  # [cells, cells] true interference neighbours (0/1, no self)


def hex_topo(isd_m: float = 500.0) -> Topo:
    pts = [(0.0, 0.0)] + [
        (
            isd_m * math.cos(math.pi / 6 + i * math.pi / 3),
            isd_m * math.sin(math.pi / 6 + i * math.pi / 3),
        )
        for i in range(6)
    ]
    areas = ["metro"] + ["urban", "suburban"] * 3
    x, y, az, site, area = [], [], [], [], []
    for s, ((px, py), a) in enumerate(zip(pts, areas, strict=True)):
        for b in (30.0, 150.0, 270.0):
            x.append(px), y.append(py), az.append(b), site.append(s), area.append(a)
    x, y = np.array(x), np.array(y)
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    near = (d < 1.1 * isd_m).astype(float)
    np.fill_diagonal(near, 0.0)
    return Topo(x, y, np.array(az), np.array(site), np.array(area), np.full(len(x), 25.0), near)


def true_log_kpi(
    topo: Topo,
    cm_unit: np.ndarray,
    load: np.ndarray,
    hour: np.ndarray,
    commercial: bool,
    response_gain: float = 1.0,
):
    """Hidden log-throughput. cm_unit [S, C, 3] (tilt, power, cio in [0, 1]).

    ``response_gain`` multiplies the CM response of the commercial network (1: the twin's)."""
    t, p, c = cm_unit[..., 0], cm_unit[..., 1], cm_unit[..., 2]
    w = topo.near / topo.near.sum(1, keepdims=True)
    nb_p, nb_t = p @ w.T, t @ w.T

    def resp(t, p, c, nb_p, nb_t):
        return 0.9 * p - 3.0 * (t - 0.45) ** 2 - 0.4 * c - 0.6 * nb_p + 0.5 * nb_t * (1 - t)

    ref = np.array([(q.default - q.low) / (q.high - q.low) for q in DEFAULT_CM_SCHEMA.params])
    r0 = resp(ref[0], ref[1], ref[2], ref[1], ref[0])
    area = np.array([AREA_LEVEL[a] for a in topo.area_type])
    load_term = -0.35 * np.log1p(load / 50.0)
    level = 3.5 + area + load_term + 0.1 * np.sin(2 * math.pi * hour / 24.0)
    if commercial:
        shift = np.array([AREA_SHIFT[a] for a in topo.area_type])
        level = (
            3.5 + area + shift + LOAD_SCALE * load_term + 0.1 * np.sin(2 * math.pi * hour / 24.0)
        )
    gain = response_gain if commercial else 1.0
    return level + gain * (resp(t, p, c, nb_p, nb_t) - r0)


def make_batch(
    rng: np.random.Generator,
    topo: Topo,
    n_snapshots: int,
    *,
    commercial: bool,
    cm_mode: str,
    noise: float = 0.02,
    response_gain: float = 1.0,
) -> GraphBatch:
    """Synthetic data: cm_mode "uniform" (whole range), "local" (default +- 1 step) or "mixed"
    (per cell and snapshot one or the other, as the twin's `dtwin.sweep` "mixed" sampling)."""
    n = len(topo.x_m)
    shape = (n_snapshots, n)
    cm = {}
    broad = rng.random(shape) < 0.5 if cm_mode == "mixed" else None
    for q in DEFAULT_CM_SCHEMA.params:
        uniform = q.low + q.step * rng.integers(0, q.n_steps + 1, shape)
        if cm_mode == "uniform":
            v = uniform
        else:
            v = q.default + q.step * rng.integers(-1, 2, shape) * (rng.random(shape) < 0.4)
            if broad is not None:
                v = np.where(broad, uniform, v)
        cm[q.name] = np.clip(v, q.low, q.high).astype(float)
    cm_unit = np.stack(
        [(cm[q.name] - q.low) / (q.high - q.low) for q in DEFAULT_CM_SCHEMA.params], axis=-1
    )
    hour = np.broadcast_to(rng.integers(0, 24, (n_snapshots, 1)), shape).astype(float)
    load = 50.0 * np.exp(rng.normal(0.0, 0.6, shape))
    ues = np.round(load / 5.0)
    z = true_log_kpi(topo, cm_unit, load, hour, commercial, response_gain)
    z = z + noise * rng.normal(size=shape)
    return batch_from_arrays(
        x_m=topo.x_m,
        y_m=topo.y_m,
        azimuth_deg=topo.azimuth_deg,
        site_id=topo.site_id,
        area_type=topo.area_type,
        height_m=topo.height_m,
        cm=cm,
        state={"hour": hour, "active_ues": ues, "offered_load_mbps": load},
        targets={"dl_throughput_mbps": np.exp(z)},
        k=4,
    )


@pytest.fixture(scope="session")
def topo() -> Topo:
    return hex_topo()


@pytest.fixture(scope="session")
def small_batch(topo) -> GraphBatch:
    return make_batch(np.random.default_rng(0), topo, 12, commercial=False, cm_mode="uniform")
