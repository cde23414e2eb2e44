"""Property tests (hypothesis): monotone pathloss, LOS probability in [0, 1] and non-increasing."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin.channel import InHOffice, RMa, UMa, UMi, los_probability, pathloss_db

# scenario, d_2D range inside the table's validity (m), h_BS (m), h_UT range (m), fc range (GHz)
RANGES = {
    "UMa": (UMa(), (10.0, 5000.0), 25.0, (1.5, 22.5), (0.5, 100.0)),
    "UMi": (UMi(), (10.0, 5000.0), 10.0, (1.5, 22.5), (0.5, 100.0)),
    "RMa": (RMa(), (10.0, 10000.0), 35.0, (1.0, 10.0), (0.5, 30.0)),
    "InH": (InHOffice(), (1.0, 150.0), 3.0, (1.0, 2.5), (0.5, 100.0)),
}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def _links(draw):
    name = draw(st.sampled_from(sorted(RANGES)))
    scenario, (d_lo, d_hi), h_bs, (h_lo, h_hi), (f_lo, f_hi) = RANGES[name]
    d = sorted(draw(st.lists(st.floats(d_lo, d_hi), min_size=2, max_size=2)))
    h_ut = draw(st.floats(h_lo, h_hi))
    fc = draw(st.floats(f_lo, f_hi)) * 1e9
    los = draw(st.booleans())
    return scenario, np.array(d, np.float32), h_bs, h_ut, fc, los


@SETTINGS
@given(_links())
def test_pathloss_non_decreasing_in_distance(link):
    """PL(d1) <= PL(d2) for d1 <= d2 inside the model's range, LOS and NLOS (float32 slack)."""
    scenario, d, h_bs, h_ut, fc, los = link
    pl = np.asarray(pathloss_db(scenario, d, h_bs, h_ut, fc, los))
    assert np.all(np.isfinite(pl))
    assert pl[1] >= pl[0] - 2e-3, (scenario.name, d, h_ut, fc, los, pl)


@SETTINGS
@given(
    st.sampled_from(sorted(RANGES)),
    st.lists(st.floats(0.0, 20000.0), min_size=2, max_size=2),
    st.floats(1.0, 22.5),
)
def test_los_probability_is_probability_and_non_increasing(name, d, h_ut):
    scenario = RANGES[name][0]
    d = np.sort(np.array(d, np.float32))
    p = np.asarray(los_probability(scenario, d, h_ut))
    assert np.all((p >= 0.0) & (p <= 1.0)), p
    assert p[1] <= p[0] + 1e-6, (name, d, h_ut, p)
