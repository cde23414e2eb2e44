"""The field trial (experiments/field_trial.py) at a reduced size, end to end.

Checks, independently of the experiment's own bookkeeping: every recommended CM lies on the
operator's grid, inside the schema's bounds and the 2-step trust region around the current CM;
the Sim2Real recommendation violates no guardrail when re-evaluated exactly on the field stand-in
(`dtwin.field.field_kpis`, fresh snapshots); the oracle's gain is not below Sim2Real's (it
searches the field itself); the outputs cover every area.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.field import field_kpis

ft = pytest.importorskip("experiments.field_trial")

AREAS = ("metro", "urban", "suburban")
METHODS = (
    "sim2real_anchored",
    "sim2real",
    "twin_simulation",
    "random_search",
    "twin_only",
    "twin_calibrated",
    "oracle",
)
TRUST_STEPS = 2  # opt.SafetyConfig() default

# one worker runs the whole module, so the module-scoped trial is computed once: `./run test`
# distributes by file (--dist loadfile). (xdist_group/--dist loadgroup does nothing under
# pytest 9.2, which ignores the node-id suffix xdist 3.8 sets: both workers computed the trial.)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    out = tmp_path_factory.mktemp("field_trial")
    argv = [
        "--small",
        "--out",
        str(out),
        "--quiet",
        "--twin-snapshots",
        "64",
        "--periods",
        "48",
        "--twin-steps",
        "100",
        "--commercial-steps",
        "40",
        "--starts",
        "2",
        "--steps",
        "20",
        "--evals",
        "16",
        # the derivative-free baselines have their own tests (tests/opt/test_baselines.py);
        # through the twin simulation they would dominate this test's time
        "--methods",
        ",".join(METHODS),
        "--twin-sim-snapshots",
        "4",
        "--oracle-snapshots",
        "32",  # the oracle optimises on 32 field snapshots of its own (not the judge's)
        "--truth-snapshots",
        "32",  # the judge: with 6 snapshots one area's cell-edge change read -15 % on one
        # seed and +20 % on another for the same CMs; 32+ agree (3 cells x ~7 UEs per snapshot)
        "--context",
        "6",
        "--search-keys",
        "2",
    ]
    # --calibrate-ue's wiring with a stand-in calibration (the real one, `calibrate_ue_clustering`,
    # is tested in tests/test_offline_eval.py; here it would add minutes): it must see each area's
    # commercial table, and its value must reach the twin data and the twin simulation
    calls, twin_clusterings, search_keys = [], [], []
    real_twin_table = ft.twin_table
    real_recommend = ft._recommend

    def spy_recommend(method, key, *a, **kw):
        search_keys.append((method, np.asarray(key)))
        return real_recommend(method, key, *a, **kw)

    def fake_calibration(area, commercial, **kw):
        calls.append((area, sorted(commercial)))
        return CALIBRATED, {"ue_clustering": CALIBRATED, "stub": True}

    def spy_twin_table(*a, **kw):
        twin_clusterings.append(kw.get("ue_clustering"))
        return real_twin_table(*a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ft, "calibrate_ue_clustering", fake_calibration)
        mp.setattr(ft, "twin_table", spy_twin_table)
        mp.setattr(ft, "_recommend", spy_recommend)
        results = ft.main([*argv, "--calibrate-ue", "--calibrate-cells"])
    assert [c[0] for c in calls] == list(AREAS)
    assert all("mean_sinr_db" in cols for _, cols in calls)
    assert twin_clusterings == [CALIBRATED] * len(AREAS)
    # each method's first search key is fixed by the seed and its place in ft.METHODS, not by
    # its position in this subset (--methods omits the derivative-free baselines): the oracle
    # is 7th here and 10th in ft.METHODS
    first = {}
    for m, k in search_keys:
        first.setdefault(m, []).append(k)
    for m in METHODS:
        want = jax.random.fold_in(jax.random.PRNGKey(1), ft.METHODS.index(m))
        for k in first[m][::2]:  # key 0 of each area (--search-keys 2)
            np.testing.assert_array_equal(k, np.asarray(want), err_msg=m)
    return out, results


CALIBRATED = 0.3  # the stand-in calibration's value (uncalibrated default 0.35)


def test_calibrated_twin_is_recorded(trial):
    out, res = trial
    for a in AREAS:
        assert res["areas"][a]["twin_ue_clustering"] == CALIBRATED
        assert res["areas"][a]["ue_calibration"]["stub"] is True
    assert "calibrated to each area's commercial mean SINR" in (out / "field_trial.md").read_text()


def test_cell_calibration_is_recorded_and_used(trial):
    """``--calibrate-cells``: per area the fitted offsets (zero mean, a fit no worse than the
    nominal twin's), the hidden offsets they are compared with, and the method uses them."""
    out, res = trial
    assert res["calibrate_cells"] is True
    for a in AREAS:
        c = res["areas"][a]["cell_calibration"]
        n = res["areas"][a]["n_cells"]
        assert len(c["offset_db"]) == len(c["field_power_offset_db"]) == n
        assert abs(float(np.mean(c["offset_db"]))) < 1e-4
        assert c["log_share_rmse_after"] <= c["log_share_rmse_before"] + 1e-9
        assert -1.0 <= c["corr_with_field_offsets"] <= 1.0
        assert c["used_by_method"] is True
    assert "fitted to each area's commercial UE share" in (out / "field_trial.md").read_text()


def test_outputs_cover_every_area(trial):
    out, _ = trial
    rec = json.loads((out / "field_trial.json").read_text())
    assert rec["experiment"] == "field_trial"
    res = rec["results"]
    assert set(res["areas"]) == set(AREAS)
    for a in AREAS:
        assert set(res["areas"][a]["methods"]) == set(METHODS)
    assert set(res["overall"]) == set(METHODS)
    for k in ("before_mbps", "after_mbps", "gain_pct"):
        assert np.isfinite(res["summary"][k])
    assert (out / "field_trial.md").read_text().count("| metro |") == 1
    assert (out / "field_trial.png").stat().st_size > 1000


def test_recommendations_on_grid_in_bounds_and_trust_region(trial):
    _, res = trial
    for a in AREAS:
        for m, r in res["areas"][a]["methods"].items():
            every_key = [r["recommended_cm"]] + [k["recommended_cm"] for k in r.get("keys", [])]
            for p in DEFAULT_CM_SCHEMA.params:
                cur = np.asarray(r["current_cm"][p.name])
                for cm in every_key:
                    new = np.asarray(cm[p.name])
                    assert np.all((new >= p.low - 1e-4) & (new <= p.high + 1e-4)), (a, m, p.name)
                    k = (new - p.low) / p.step
                    np.testing.assert_allclose(k, np.round(k), atol=1e-3, err_msg=f"{a} {m}")
                    assert np.all(np.abs(new - cur) <= TRUST_STEPS * p.step + 1e-4), (a, m)


def test_method_no_guardrail_violation_on_field(trial):
    """No guardrail violated on the field by the method under trial: the experiment's exact
    evaluation for every area, and an independent re-evaluation (`dtwin.field.field_kpis`, other
    snapshots) for one area."""
    _, res = trial
    assert res["method"] == ft.METHOD
    for a in AREAS:
        assert not res["areas"][a]["methods"][ft.METHOD]["guardrail_violated"], a
    a = "urban"
    field = ft.field_for_area(a, n_sites=1, seed=0)
    r = res["areas"][a]["methods"][ft.METHOD]
    cur = {n: np.asarray(v, np.float32) for n, v in r["current_cm"].items()}
    new = {n: np.asarray(v, np.float32) for n, v in r["recommended_cm"].items()}
    key = jax.random.PRNGKey(4242)
    before = field_kpis(key, field, cur, n_snapshots=64)
    after = field_kpis(key, field, new, n_snapshots=64)
    cov_b, cov_a = (float(np.nanmean(x["coverage"])) for x in (before, after))
    e_b, e_a = (float(np.nanmean(x["cell_edge_throughput_mbps"])) for x in (before, after))
    assert cov_a >= cov_b - ft.COVERAGE_MARGIN, (a, cov_b, cov_a)
    assert e_a >= e_b * (1 - ft.EDGE_MARGIN), (a, e_b, e_a)


def test_search_keys_are_each_applied_to_the_field(trial):
    """``--search-keys 2``: key 0 is the reported recommendation; key 1's CM, re-evaluated on
    the judge's snapshots with `dtwin.field.field_kpis`, gives the recorded gain; the overall
    per-key gains, their mean, sd and the oracle share follow from the per-area numbers."""
    out, res = trial
    for a in AREAS:
        for m, r in res["areas"][a]["methods"].items():
            assert len(r["keys"]) == 2, (a, m)
            assert r["keys"][0]["gain_pct"] == pytest.approx(r["gain_pct"], rel=1e-9)
            assert r["keys"][0]["recommended_cm"] == r["recommended_cm"]
    a, m = "suburban", ft.METHOD
    r = res["areas"][a]["methods"][m]
    field = ft.field_for_area(a, n_sites=1, seed=0)
    key = jax.random.PRNGKey(0 + 10_000)  # the trial's judging snapshots (seed + 10,000)
    cur = {n: np.asarray(v, np.float32) for n, v in r["current_cm"].items()}
    new = {n: np.asarray(v, np.float32) for n, v in r["keys"][1]["recommended_cm"].items()}
    b = float(np.nanmean(field_kpis(key, field, cur, n_snapshots=32)["dl_throughput_mbps"]))
    af = float(np.nanmean(field_kpis(key, field, new, n_snapshots=32)["dl_throughput_mbps"]))
    assert r["keys"][1]["gain_pct"] == pytest.approx(100 * (af - b) / b, rel=1e-3, abs=1e-3)
    ov = res["overall"]
    n = {x: res["areas"][x]["n_cells"] for x in AREAS}
    for m in METHODS:
        k = ov[m]["keys"]
        for j in range(2):
            after = sum(
                n[x] * res["areas"][x]["methods"][m]["keys"][j]["after_mbps"] for x in AREAS
            )
            after /= sum(n.values())
            ref = 100 * (after - ov[m]["before_mbps"]) / ov[m]["before_mbps"]
            assert k["gain_pct"][j] == pytest.approx(ref, rel=1e-9)
        assert k["gain_pct_mean"] == pytest.approx(np.mean(k["gain_pct"]))
        assert k["gain_pct_sd"] == pytest.approx(np.std(k["gain_pct"], ddof=1))
        og = ov["oracle"]["keys"]["gain_pct_mean"]
        if og > 0:
            assert k["share_of_oracle_mean"] == pytest.approx(k["gain_pct_mean"] / og)
    assert "Over 2 search keys" in (out / "field_trial.md").read_text()


def test_oracle_gain_not_below_the_method(trial):
    _, res = trial
    ov = res["overall"]
    for m in (ft.METHOD, *ft.ABLATIONS):
        assert ov["oracle"]["gain_pct"] >= ov[m]["gain_pct"] - 1.0, m
    assert ov["oracle"]["gain_pct"] > 0.0


def test_field_effect_closed_form():
    """`field_effect` against hand-computed numbers."""
    before = {
        "dl_throughput_mbps": np.array([100.0, 200.0]),
        "cell_edge_throughput_mbps": np.array([10.0, 30.0]),
        "coverage": np.array([0.9, 0.8]),
    }
    after = {
        "dl_throughput_mbps": np.array([110.0, 220.0]),
        "cell_edge_throughput_mbps": np.array([9.0, 27.0]),
        "coverage": np.array([0.9, 0.78]),
    }
    cur = {
        "tilt_deg": np.array([6.0, 6.0]),
        "tx_power_dbm": np.array([46.0, 46.0]),
        "cio_db": np.array([0.0, 0.0]),
    }
    new = {
        "tilt_deg": np.array([8.0, 6.0]),
        "tx_power_dbm": np.array([46.0, 45.0]),
        "cio_db": np.array([0.0, 0.0]),
    }
    e = ft.field_effect(before, after, cur, new)
    assert e["gain_pct"] == pytest.approx(10.0)
    # coverage 0.85 -> 0.84 (1 pp), edge 20 -> 18 (10 %): degradation 11, area-level violation
    assert e["guardrail_degradation"] == pytest.approx(11.0, rel=1e-5)
    assert e["guardrail_violated"]
    assert e["cells_violating_guardrails"] == 2  # both cells lose 10 % of edge throughput
    assert e["mean_abs_change_steps"] == pytest.approx(3.0 / 6.0)
    assert e["gain_per_risk"] == pytest.approx(10.0 / (1.0 + 11.0 + 0.5), rel=1e-5)
    assert e["cells_changed"] == 2


def test_search_key_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'bogus'"):
        ft.search_key(0, "bogus")


def test_bad_flags_are_rejected():
    with pytest.raises(SystemExit):
        ft.main(["--methods", "sim2real,bogus"])
    with pytest.raises(SystemExit):  # the method under trial is missing
        ft.main(["--methods", "sim2real,oracle"])
    with pytest.raises(SystemExit):
        ft.main(["--anchor-weight", "1.5"])
    with pytest.raises(SystemExit):
        ft.main(["--sites", "5"])
    with pytest.raises(SystemExit):
        ft.main(["--kappa", "-1"])
    with pytest.raises(SystemExit):
        ft.main(["--anchor-std", "ensemble"])
    with pytest.raises(SystemExit):
        ft.main(["--search-keys", "0"])


def test_combine_reproduces_the_single_run(trial, tmp_path):
    """Areas run separately and merged (``--combine``) give the single run's overall numbers."""
    out, res = trial
    rec = json.loads((out / "field_trial.json").read_text())
    paths = []
    for part in (AREAS[:1], AREAS[1:]):
        r = dict(
            rec, results=dict(rec["results"], areas={a: rec["results"]["areas"][a] for a in part})
        )
        p = tmp_path / f"{part[0]}.json"
        p.write_text(json.dumps(r))
        paths.append(p)
    merged = ft.main(["--combine", *map(str, paths), "--out", str(tmp_path / "merged")])
    for m, r in res["overall"].items():
        for k in ("before_mbps", "after_mbps", "gain_pct", "gain_per_risk", "share_of_oracle"):
            assert merged["overall"][m][k] == pytest.approx(r[k], rel=1e-9), (m, k)
    assert (tmp_path / "merged" / "field_trial.md").exists()
    with pytest.raises(ValueError, match="appear in an earlier file"):
        ft.combine([paths[0], paths[0]], tmp_path / "dup")
    other = json.loads(paths[1].read_text())
    other["config"]["seed"] = 7
    paths[1].write_text(json.dumps(other))
    with pytest.raises(ValueError, match="was run with"):
        ft.combine(paths, tmp_path / "mismatch")
