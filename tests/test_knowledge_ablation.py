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
    np.testing.assert_array_equal(got.channel.sf_db, want.channel.sf_db)
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


def test_unknown_variant_is_named(field):
    with pytest.raises(ValueError, match="unknown variant 'shadowing'"):
        _pred("shadowing", field)
    with pytest.raises(SystemExit):
        ka.main(["--small", "--variants", "nominal,psychic", "--out", "/nonexistent"])


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
