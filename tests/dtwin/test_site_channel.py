"""Site-specific channels (`dtwin.site_channel`) and their path into areas, twin and field."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.areas import area_type, network_for_area
from dtwin.channel import UMa, UMi, pathloss_db, shadow_fading_std_db
from dtwin.site_channel import SiteChannel, load_site_channels, save_site_channels

SC = SiteChannel("UMa", 7.5, 2.0, 9.0, source="test", area="urban")


def test_apply_shifts_pathloss_by_the_offset_and_sets_sf_spreads():
    d = jnp.array([50.0, 200.0, 800.0])
    base, site = UMa(), SC.apply(UMa())
    for los in (0.0, 1.0):
        diff = pathloss_db(site, d, 25.0, 1.5, 3.5e9, los) - pathloss_db(
            base, d, 25.0, 1.5, 3.5e9, los
        )
        np.testing.assert_allclose(diff, 7.5, atol=1e-4)
    # TR 38.901 Table 7.4.1-1 UMa: 4 dB LOS / 6 dB NLOS outdoors; replaced by the site's values
    np.testing.assert_allclose(shadow_fading_std_db(base, 1.0, 0.0), 4.0, atol=1e-6)
    np.testing.assert_allclose(shadow_fading_std_db(base, 0.0, 0.0), 6.0, atol=1e-6)
    np.testing.assert_allclose(shadow_fading_std_db(site, 1.0, 0.0), 2.0, atol=1e-6)
    np.testing.assert_allclose(shadow_fading_std_db(site, 0.0, 0.0), 9.0, atol=1e-6)


def test_from_scenario_round_trips():
    back = SiteChannel.from_scenario(SC.apply(UMa()), source="test", area="urban")
    assert back == SC


def test_area_carries_the_site_channel_into_its_network():
    urban = area_type("urban").with_site_channel(SC)
    hash(urban)  # stays hashable: compiled sweeps are cached per area
    net = network_for_area(urban, 1)
    assert float(net.scenario.pathloss_offset_db) == pytest.approx(7.5)
    assert float(network_for_area(area_type("urban"), 1).scenario.pathloss_offset_db) == 0.0
    with pytest.raises(ValueError, match="UMi"):
        area_type("metro").with_site_channel(SC)
    with pytest.raises(ValueError, match="cannot be applied"):
        SC.apply(UMi())


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"pathloss_offset_db": float("nan")}, "pathloss_offset_db"),
        ({"pathloss_offset_db": 90.0}, "implausible"),
        ({"los_sf_std_db": -1.0}, "los_sf_std_db"),
        ({"nlos_sf_std_db": 45.0}, "nlos_sf_std_db"),
    ],
)
def test_bad_values_are_named(kw, match):
    args = {"pathloss_offset_db": 0.0, "los_sf_std_db": 4.0, "nlos_sf_std_db": 6.0} | kw
    with pytest.raises(ValueError, match=match):
        SiteChannel("UMa", **args)


def test_json_round_trip_and_errors(tmp_path):
    p = save_site_channels(tmp_path / "sc.json", {"twin": SC, "field": SC})
    assert load_site_channels(p) == {"twin": SC, "field": SC}
    with pytest.raises(FileNotFoundError, match="calibrate_materials"):
        load_site_channels(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"twin": SC.to_dict() | {"colour": "red"}}))
    with pytest.raises(ValueError, match=r"'twin'.*colour"):
        load_site_channels(bad)
    bad.write_text(json.dumps({"twin": SC.to_dict() | {"los_sf_std_db": -3}}))
    with pytest.raises(ValueError, match=r"bad.json.*'twin'.*los_sf_std_db"):
        load_site_channels(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_site_channels(bad)


def test_pipeline_applies_the_channel_to_the_named_area_only(tmp_path):
    from experiments.pipeline import site_channels_for

    p = save_site_channels(tmp_path / "sc.json", {"twin": SC, "field": SC})
    assert site_channels_for(p, "urban") == (SC, SC)
    assert site_channels_for(p, "suburban") == (None, None)  # same scenario, other area
    assert site_channels_for(p, "metro") == (None, None)  # other scenario
    assert site_channels_for(None, "urban") == (None, None)
    save_site_channels(p, {"twin": SC})
    with pytest.raises(ValueError, match="field"):
        site_channels_for(p, "urban")


@pytest.mark.slow
def test_twin_rsrp_drops_by_the_pathloss_offset():
    """Same seed, +7.5 dB pathloss everywhere: association is unchanged, so every cell's mean RSRP
    falls by exactly 7.5 dB (shadow-fading spreads kept at the table values here)."""
    from experiments.pipeline import twin_table

    sc = SiteChannel("UMa", 7.5, 4.0, 6.0, area="urban")
    a = twin_table("urban", 4, n_sites=1, seed=3, progress=False)
    b = twin_table("urban", 4, n_sites=1, seed=3, progress=False, site_channel=sc)
    ok = np.isfinite(a["mean_rsrp_dbm"]) & np.isfinite(b["mean_rsrp_dbm"])
    assert ok.sum() >= 6
    np.testing.assert_allclose(a["mean_rsrp_dbm"][ok] - b["mean_rsrp_dbm"][ok], 7.5, atol=0.05)
