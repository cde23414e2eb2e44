"""Helpers that build Sionna 2.2 (PyTorch) TR 38.901 scenarios as an independent reference."""

from __future__ import annotations

import numpy as np
import torch
from sionna.phy import config
from sionna.phy.channel.tr38901 import (
    InHScenario,
    LSPGenerator,
    PanelArray,
    RMaScenario,
    UMaScenario,
    UMiScenario,
)

SPEC_VERSION = "16.1"  # our tables follow TR 38.901 V16.1 Table 7.5-6


def _array(fc: float) -> PanelArray:
    return PanelArray(
        num_rows_per_panel=1,
        num_cols_per_panel=1,
        polarization="single",
        polarization_type="V",
        antenna_pattern="omni",
        carrier_frequency=fc,
    )


def make_scenario(name: str, fc: float):
    arr = _array(fc)
    common = dict(
        carrier_frequency=fc, ut_array=arr, bs_array=arr, direction="downlink",
        spec_version=SPEC_VERSION, precision="single", device="cpu",
    )  # fmt: skip
    if name == "UMa":
        return UMaScenario(o2i_model="low", **common)
    if name == "UMi":
        return UMiScenario(o2i_model="low", **common)
    if name == "RMa":
        return RMaScenario(**common)
    if name == "InH-Office":
        return InHScenario(indoor_scenario="mixed", **common)
    raise ValueError(name)


def set_links(sc, d2d, h_bs: float, h_ut: float, los, indoor, per_batch: bool = False):
    """One BS at the origin, UTs on the x axis at ``d2d``.

    ``per_batch``: each link in its own batch element (independent LSP draws), else one batch
    with all UTs.
    """
    d2d = np.asarray(d2d, np.float32)
    n = d2d.shape[0]
    ut = np.stack([d2d, np.zeros(n), np.full(n, h_ut)], -1).astype(np.float32)
    los = np.broadcast_to(np.asarray(los, bool), (n,))
    indoor = np.broadcast_to(np.asarray(indoor, bool), (n,))
    if per_batch:
        ut_loc = torch.tensor(ut[:, None, :])
        bs_loc = torch.tensor(np.tile([[[0.0, 0.0, h_bs]]], (n, 1, 1)).astype(np.float32))
        in_state = torch.tensor(indoor[:, None])
        los_t = torch.tensor(los[:, None, None])
        b, u = n, 1
    else:
        ut_loc = torch.tensor(ut[None])
        bs_loc = torch.tensor(np.array([[[0.0, 0.0, h_bs]]], np.float32))
        in_state = torch.tensor(indoor[None])
        los_t = torch.tensor(los[None, None, :])
        b, u = 1, n
    zeros_u = torch.zeros(b, u, 3)
    sc.set_topology(
        ut_loc=ut_loc, bs_loc=bs_loc, ut_orientations=zeros_u,
        bs_orientations=torch.zeros(b, 1, 3), ut_velocities=zeros_u, in_state=in_state, los=los_t,
    )  # fmt: skip
    return sc


def basic_pathloss(name, fc, d2d, h_bs, h_ut, los) -> np.ndarray:
    sc = set_links(make_scenario(name, fc), d2d, h_bs, h_ut, los, name == "InH-Office")
    return sc.basic_pathloss[0, 0].numpy()


def los_probability(name, fc, d2d, h_bs, h_ut) -> np.ndarray:
    sc = set_links(make_scenario(name, fc), d2d, h_bs, h_ut, True, name == "InH-Office")
    return sc.los_probability.reshape(-1).numpy()


# Sionna's internal LSP order, and its map to ours ([SF, K, DS, ASD, ASA, ZSD, ZSA]).
SIONNA_ORDER = ("DS", "ASD", "ASA", "SF", "K", "ZSA", "ZSD")


def log_mean_std(name, fc, d2d, h_bs, h_ut, los, indoor):
    """Sionna's per-link LSP log-mean / log-std, reordered to ours; SF and K in dB."""
    sc = set_links(make_scenario(name, fc), d2d, h_bs, h_ut, los, indoor)
    mean = sc.lsp_log_mean[0, 0].numpy()
    std = sc.lsp_log_std[0, 0].numpy()
    return _reorder(mean), _reorder(std)


def _reorder(x):
    ours = ("SF", "K", "DS", "ASD", "ASA", "ZSD", "ZSA")
    out = np.stack([x[..., SIONNA_ORDER.index(n)] for n in ours], -1)
    scale = np.ones(7, np.float32)
    scale[0] = scale[1] = 10.0  # Sionna stores SF and K as dB/10
    return out * scale


def sample_log_lsps(name, fc, d2d, h_bs, h_ut, los, indoor, seed=7):
    """Draw LSPs with Sionna (one link per batch element); return log-domain [n, 7] in our order.

    SF and K are returned in dB, spreads as log10 of s / deg.
    """
    config.seed = seed
    sc = set_links(make_scenario(name, fc), d2d, h_bs, h_ut, los, indoor, per_batch=True)
    gen = LSPGenerator(sc)
    gen.topology_updated_callback()
    lsp = gen()
    cols = {
        "SF": 10 * torch.log10(lsp.sf), "K": 10 * torch.log10(lsp.k_factor),
        "DS": torch.log10(lsp.ds), "ASD": torch.log10(lsp.asd), "ASA": torch.log10(lsp.asa),
        "ZSD": torch.log10(lsp.zsd), "ZSA": torch.log10(lsp.zsa),
    }  # fmt: skip
    return np.stack(
        [cols[n].reshape(-1).numpy() for n in ("SF", "K", "DS", "ASD", "ASA", "ZSD", "ZSA")], -1
    )


def o2i_deterministic_loss(fc, d_in, high: bool) -> np.ndarray:
    """Sionna's UMa O2I loss without its random term: PL_tw + 0.5 d_2D-in (dB), per UT."""
    d_in = np.asarray(d_in, np.float32)
    n = d_in.shape[0]
    sc = make_scenario("UMa", fc)
    d2d = np.full(n, 200.0, np.float32)
    ut = np.stack([d2d, np.zeros(n), np.full(n, 1.5)], -1).astype(np.float32)
    zeros_u = torch.zeros(1, n, 3)
    sc.set_topology(
        ut_loc=torch.tensor(ut[None]), bs_loc=torch.tensor([[[0.0, 0.0, 25.0]]]),
        ut_orientations=zeros_u, bs_orientations=torch.zeros(1, 1, 3), ut_velocities=zeros_u,
        in_state=torch.ones(1, n, dtype=torch.bool), los=False,
        distance_2d_in=torch.tensor(d_in[None]),
    )  # fmt: skip
    gen = LSPGenerator(sc)
    gen.topology_updated_callback()
    gen._sample_o2i_penetration_random = lambda stddev: torch.zeros(1, 1, n)
    loss = gen._o2i_high_loss() if high else gen._o2i_low_loss()
    return loss[0, 0].numpy()


def cross_correlation_cholesky(name, fc, los, indoor) -> np.ndarray:
    """Sionna's Cholesky factor of the cross-LSP correlation in our LSP order."""
    h_bs = 25.0 if name != "InH-Office" else 3.0
    sc = set_links(make_scenario(name, fc), np.array([100.0], np.float32), h_bs, 1.5, los, indoor)
    gen = LSPGenerator(sc)
    gen.topology_updated_callback()
    return gen._cross_lsp_correlation_matrix_sqrt[0, 0, 0].numpy()


def uma_los_pathloss_draws(fc, d2d, h_bs, h_ut, n, seed=3) -> np.ndarray:
    """``n`` independent Sionna UMa LOS basic pathlosses (random h_E per Table 7.4.1-1 Note 1)."""
    config.seed = seed
    sc = set_links(make_scenario("UMa", fc), np.full(n, d2d, np.float32), h_bs, h_ut, True, False,
                   per_batch=True)  # fmt: skip
    return sc.basic_pathloss.reshape(-1).numpy()
