"""CI-sized TR 38.901 Phase-1 calibration against the 3GPP companies (R1-165974) and Sionna 2.2.

References: ``tests/dtwin/data/r1_165974_percentiles.json`` (mean/min/max over 20 companies of
the 5/50/95th percentiles, extracted from R1-165974) and Sionna 2.2 run on the same configuration
(``experiments.calibration_38901.sionna_phase1``). Small samples, so a 0.5 dB slack is added.
"""

from __future__ import annotations

import json
from pathlib import Path

import chex
import numpy as np
import pytest

from experiments.calibration_38901 import ours_phase1, percentiles, sionna_phase1

REF = json.loads(
    (Path(__file__).resolve().parent / "data" / "r1_165974_percentiles.json").read_text()
)["scenarios"]
N_DROPS = 16  # 9120 UEs
SLACK_DB = 0.5
METRICS = (("coupling_loss", "coupling_loss_db"), ("geometry_sinr", "geometry_sinr_db"))


@pytest.fixture(scope="module")
def ours():
    return {
        case: ours_phase1(name, 6e9, N_DROPS, seed=0, chunk=N_DROPS, progress=False)
        for case, name in (("UMi-6GHz", "UMi"), ("UMa-6GHz", "UMa"))
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["UMi-6GHz", "UMa-6GHz"])
def test_percentiles_inside_company_range(ours, case):
    out = ours[case]
    chex.assert_shape(out["coupling_loss_db"], (N_DROPS * 570,))
    assert np.all(np.isfinite(out["geometry_sinr_db"]))
    for metric, key in METRICS:
        got = percentiles(out[key])
        for p, v in got.items():
            ref = REF[case][metric][p]
            assert ref["min"] - SLACK_DB <= v <= ref["max"] + SLACK_DB, (case, metric, p, v, ref)


@pytest.mark.slow
def test_umi_coupling_loss_median_near_company_mean(ours):
    """The faithful TR 38.901 model sits ~1 dB below the 2016 company mean at the UMi CL median
    (measured −0.99 dB with 300 drops; Sionna: −1.8 dB). Checked with small-sample slack."""
    p50 = percentiles(ours["UMi-6GHz"]["coupling_loss_db"])["p50"]
    assert abs(p50 - REF["UMi-6GHz"]["coupling_loss"]["p50"]["mean"]) <= 1.0 + SLACK_DB


@pytest.mark.slow
def test_against_sionna_same_configuration(ours):
    """Within 1 dB of Sionna 2.2 at p5/p50/p95 (+0.5 dB for the few Sionna drops).

    Sionna's wrap-around vectors are replaced by the lattice ones (``wrap="fixed"``): as shipped
    they are rotated off the site lattice, which alone lowers its coupling loss by ~0.8 dB."""
    ref = sionna_phase1("UMi", 6e9, n_drops=6, seed=0, batch=3, wrap="fixed", progress=False)
    for metric, key in METRICS:
        mine, theirs = percentiles(ours["UMi-6GHz"][key]), percentiles(ref[key])
        for p in mine:
            assert abs(mine[p] - theirs[p]) <= 1.0 + SLACK_DB, (metric, p, mine[p], theirs[p])
