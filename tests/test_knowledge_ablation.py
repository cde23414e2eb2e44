"""experiments/knowledge_ablation.py: each variant puts exactly its part of the stand-in's hidden
reality into the twin (checked against the field's own parameters and a closed form of the UE
pull), and a tiny run end to end."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import opt
from dtwin.areas import area_type, network_for_area
from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.sweep import DEFAULT_UE_CLUSTERING, sample_population
from experiments import knowledge_ablation as ka
from experiments.pipeline import field_for_area

AREA = "urban"


@pytest.fixture(scope="module")
def field():
    return field_for_area(AREA, n_sites=1, seed=0)


def _pred(variant, field, n=3):
    return ka.variant_predictor(
        variant,
        field,
        AREA,
        n_sites=1,
        n_snapshots=n,
        snapshot_seed=5,
        oracle_snapshots=n,
        oracle_seed=6,
    )


def test_nominal_is_the_trials_twin_simulation(field):
    at = area_type(AREA).with_ue_clustering(DEFAULT_UE_CLUSTERING)
    want = opt.twin_predictor(jax.random.PRNGKey(5), network_for_area(at, 1), at, 3)
    got = _pred("nominal", field)
    np.testing.assert_array_equal(got.population.ues.xy_m, want.population.ues.xy_m)
    np.testing.assert_array_equal(got.links.sf_db, want.links.sf_db)
    assert not np.any(np.asarray(got.tilt_offset_deg)) and not np.any(got.power_offset_db)
    assert got.network.efficiency == 1.0


def test_offsets_and_efficiency_are_the_fields(field):
    p = _pred("offsets_efficiency", field)
    np.testing.assert_allclose(p.tilt_offset_deg, field.tilt_error_deg, atol=1e-6)
    # antenna-gain error raises, a pathloss offset lowers, the received power (dB)
    np.testing.assert_allclose(
        p.power_offset_db, field.gain_error_db - field.pathloss_offset_db, atol=1e-6
    )
    assert p.network.efficiency == pytest.approx(1.0 + field.gap * (field.spec.efficiency - 1.0))
    assert p.network.efficiency > 1.0  # the stand-in's scheduler beats the twin's
    nominal = _pred("nominal", field)
    np.testing.assert_array_equal(p.population.ues.xy_m, nominal.population.ues.xy_m)
    assert _pred("offsets", field).network.efficiency == 1.0
    assert not np.any(np.asarray(_pred("efficiency", field).power_offset_db))


def test_hotspot_drop_is_the_uniform_drop_pulled_toward_each_cells_hotspot(field):
    p = _pred("hotspots", field, n=2)
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    home = np.repeat(np.arange(field.n_cells), 10)
    pull = field.gap * field.spec.hotspot_pull
    for i, k in enumerate(keys):
        k_snap, _ = jax.random.split(k)
        uniform = field.area.with_ue_clustering(0.0)
        pop, _ = sample_population(k_snap, field.network, uniform, 10, None)
        h = np.asarray(field.hotspot_xy_m)[home]
        # x' − h = (1 − pull)(x − h): every UE moved the field's share of the way to its hotspot
        np.testing.assert_allclose(
            np.asarray(p.population.ues.xy_m[i]) - h,
            (1.0 - pull) * (np.asarray(pop.ues.xy_m) - h),
            rtol=1e-5,
            atol=1e-3,
        )
    # no shadowing map, loads or diurnal shift of the field, nominal efficiency and CM
    assert p.network.efficiency == 1.0 and not np.any(np.asarray(p.tilt_offset_deg))
    hf = ka.hotspot_field(field)
    assert hf.spec.shadow_map_db == 0.0 and hf.spec.hour_shift_h == 0.0
    np.testing.assert_array_equal(hf.load_factor, np.ones(field.n_cells))


def test_hotspot_snapshots_are_hour_stratified_as_the_oracles(field):
    # 30 snapshots: hours 0-5 twice, 6-23 once; each hour weighs 1/24 of the day, so the
    # doubled hours count (30 / 24) / 2 = 0.625 and the others 1.25 (closed form)
    p = _pred("hotspots", field, n=30)
    want = np.where(np.arange(30) % 24 < 6, 0.625, 1.25)
    np.testing.assert_allclose(np.asarray(p.snapshot_weight), want, rtol=1e-6)
    oracle = _pred("oracle", field, n=30)
    np.testing.assert_allclose(np.asarray(oracle.snapshot_weight), want, rtol=1e-6)


def test_shadowing_adds_the_fields_map_to_the_nominal_twins_links(field):
    nominal, shadowed = _pred("nominal", field), _pred("shadowing", field)
    xy = np.asarray(nominal.population.ues.xy_m)
    np.testing.assert_array_equal(np.asarray(shadowed.population.ues.xy_m), xy)
    # the map by hand: sqrt(2/F) Σ_f cos(k_f · x + φ_f), scaled by gap × σ (dB)
    arg = np.einsum("sud,cfd->sucf", xy, np.asarray(field.map_freq)) + np.asarray(field.map_phase)
    n_feat = field.map_phase.shape[-1]
    want = field.gap * field.spec.shadow_map_db * np.sqrt(2.0 / n_feat) * np.cos(arg).sum(-1)
    got = np.asarray(shadowed.links.sf_db) - np.asarray(nominal.links.sf_db)
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert np.std(want) > 0.3 * field.spec.shadow_map_db  # a map, not a constant
    everything = _pred("all_but_traffic", field)
    assert everything.network.efficiency > 1.0 and np.any(np.asarray(everything.tilt_offset_deg))
    hot = _pred("hotspots", field)
    np.testing.assert_array_equal(everything.population.ues.xy_m, hot.population.ues.xy_m)
    assert not np.allclose(everything.links.sf_db, hot.links.sf_db)


def test_unknown_variant_is_named(field):
    with pytest.raises(ValueError, match="unknown variant 'telepathy'"):
        _pred("telepathy", field)
    with pytest.raises(SystemExit):
        ka.main(["--small", "--variants", "nominal,psychic", "--out", "/nonexistent"])
    for bad in (["--kappa", "-1"], ["--steps", "0"], ["--margin-factor", "nan"]):
        with pytest.raises(SystemExit):
            ka.main(["--small", *bad, "--out", "/nonexistent"])
    assert ka.nominal_draw("nominal") == 0 and ka.nominal_draw("nominal_s2") == 2
    assert ka.nominal_draw("nominal_sx") is None and ka.nominal_draw("hotspots") is None


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
    res = ka.main(
        [
            "--small",
            "--quiet",
            "--areas",
            "suburban",
            "--variants",
            "nominal",
            "--twin-seeds",
            "2",
            "--twin-sim-snapshots",
            "2",
            "--starts",
            "1",
            "--steps",
            "5",
            "--truth-snapshots",
            "8",
            "--out",
            str(tmp_path),
        ]
    )
    r = res["areas"]["suburban"]
    assert set(r["variants"]) == {"nominal", "nominal_s1"}
    assert r["nominal_gain_pct_sd"] is not None
    for e in r["variants"].values():
        assert np.isfinite(e["gain_pct"]) and e["share_of_oracle"] is None  # no oracle run
        for prm in DEFAULT_CM_SCHEMA.params:
            new = np.asarray(e["recommended_cm"][prm.name])
            assert np.all(np.abs(new - prm.default) <= 2 * prm.step + 1e-4)  # trust region
    rec = json.loads((tmp_path / "knowledge_ablation.json").read_text())
    assert rec["experiment"] == "knowledge_ablation"
    assert "| suburban | nominal |" in (tmp_path / "knowledge_ablation.md").read_text()
    assert (tmp_path / "knowledge_ablation.png").stat().st_size > 1000
    assert not (tmp_path / "knowledge_ablation.partial.json").exists()
