"""The offline Sim2Real evaluation: the shared pipeline (`experiments.pipeline`) and reduced-size
runs of Table 1, Figure 4 and the scarcity study on the synthetic field stand-in."""

import json
import warnings

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.kpi import period_kpis
from experiments import pipeline as P
from opt.objectives import Prediction
from sim2real.ensemble import make_ensemble, predict

N_CELLS = 3


def _table(n_snapshots=4, *, seed=0, drop=None, n_sites=1):
    """A hand-made columnar table, rows shuffled: one site with 3 cells, or with ``n_sites=7``
    a hexagonal ring of sites 500 m around it (21 cells)."""
    rng = np.random.default_rng(seed)
    ring = [[500 * np.cos(a), 500 * np.sin(a)] for a in np.arange(6) * np.pi / 3]
    sites = np.array([[0.0, 0.0]] + ring)[:n_sites]
    s, c = np.meshgrid(np.arange(n_snapshots), np.arange(3 * n_sites), indexing="ij")
    s, c = s.ravel(), c.ravel()
    n = len(s)
    cols = {
        "snapshot_id": s.astype(np.int64),
        "cell_id": c.astype(np.int64),
        "site_id": (c // 3).astype(np.int64),
        "area_type": np.array(["urban"] * n, dtype=object),
        "x_m": sites[c // 3, 0].astype(np.float32),
        "y_m": sites[c // 3, 1].astype(np.float32),
        "azimuth_deg": (30.0 + 120.0 * (c % 3)).astype(np.float32),
        "height_m": np.full(n, 25.0, np.float32),
        "tilt_deg": rng.integers(0, 16, n).astype(np.float32),
        "tx_power_dbm": rng.integers(30, 50, n).astype(np.float32),
        "cio_db": rng.integers(-6, 7, n).astype(np.float32),
        "hour": rng.integers(0, 24, n).astype(np.float32),
        "active_ues": rng.uniform(1, 10, n).astype(np.float32),
        "offered_load_mbps": rng.uniform(5, 50, n).astype(np.float32),
        "dl_throughput_mbps": rng.uniform(5, 100, n).astype(np.float32),
    }
    perm = rng.permutation(n)
    if drop is not None:
        perm = perm[perm != drop]
    return {k: v[perm] for k, v in cols.items()}, cols


def test_table_batch_scatters_rows():
    shuffled, orig = _table(drop=4)  # row 4 = snapshot 1, cell 1
    b = P.table_batch(shuffled)
    chex.assert_shape(b.targets, (4, N_CELLS, 1))
    chex.assert_type(b.targets, jnp.float32)
    want = orig["dl_throughput_mbps"].reshape(4, N_CELLS)
    mask = np.ones((4, N_CELLS), bool)
    mask[1, 1] = False
    np.testing.assert_array_equal(np.asarray(b.mask), mask)
    np.testing.assert_allclose(np.asarray(b.targets[..., 0])[mask], want[mask], rtol=1e-6)
    p = DEFAULT_CM_SCHEMA["tilt_deg"]
    j = b.cm_names.index("tilt_deg")
    u = (orig["tilt_deg"].reshape(4, N_CELLS) - p.low) / (p.high - p.low)
    np.testing.assert_allclose(np.asarray(b.cm_unit[..., j])[mask], u[mask], rtol=1e-6)
    assert b.state_names == (
        "hour_sin", "hour_cos", "log1p_local_active_ues", "log1p_local_offered_load_mbps"
    )  # fmt: skip
    per_cell = P.table_batch(shuffled, local_state=())
    assert per_cell.state_names[2:] == ("log1p_active_ues", "log1p_offered_load_mbps")
    want_ues = np.log1p(orig["active_ues"].reshape(4, N_CELLS))
    np.testing.assert_allclose(np.asarray(per_cell.state[..., 2])[mask], want_ues[mask], rtol=1e-5)


def test_batches_same_layout_and_errors():
    a, _ = _table(seed=1)
    c, _ = _table(n_snapshots=6, seed=2)
    tb, cb = P.batches(a, c)
    assert (tb.state_names, tb.cm_names, tb.target_names) == (
        cb.state_names,
        cb.cm_names,
        cb.target_names,
    )
    bad = {k: v for k, v in c.items() if k != "offered_load_mbps"}
    with pytest.raises(ValueError, match="commercial table lacks column.*offered_load_mbps"):
        P.batches(a, bad)
    with pytest.raises(ValueError, match="unknown target"):
        P.batches(a, c, targets=("nope",))
    nan_state = dict(c, hour=np.where(np.arange(len(c["hour"])) == 5, np.nan, c["hour"]))
    with pytest.raises(ValueError, match="'hour'.*row 5"):
        P.batches(None, nan_state)


def test_undefined_target_is_masked_with_a_warning():
    c, _ = _table(seed=3)
    c["dl_throughput_mbps"] = c["dl_throughput_mbps"].copy()
    c["dl_throughput_mbps"][0] = np.nan
    with pytest.warns(UserWarning, match="1 of 12 rows"):
        _, b = P.batches(None, c)
    assert int(np.asarray(b.mask).sum()) == 11


def test_split_periods_whole_periods():
    c, _ = _table(n_snapshots=10, seed=4)
    rest, held = P.split_periods(c, 0.3, seed=0)
    assert len(np.unique(held["snapshot_id"])) == 3
    assert not set(rest["snapshot_id"]) & set(held["snapshot_id"])
    assert len(rest["cell_id"]) + len(held["cell_id"]) == len(c["cell_id"])


@pytest.fixture(scope="module")
def ensemble_and_batch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, b = P.batches(None, _table(seed=5)[0])
    return make_ensemble(jax.random.PRNGKey(0), 2, b, embed=4, hidden=8, depth=1, n_message=4), b


def test_ensemble_predictor_matches_predict(ensemble_and_batch):
    ens, b = ensemble_and_batch
    pred = P.ensemble_predictor(ens, b)
    cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(N_CELLS).items()}
    out = eqx.filter_jit(pred)(cm)
    assert isinstance(out, Prediction)
    chex.assert_shape(out.mean["dl_throughput_mbps"], (N_CELLS,))
    # reference: sim2real.predict on the batch with the CM written in by hand
    u = jnp.stack(
        [
            (cm[n] - DEFAULT_CM_SCHEMA[n].low)
            / (DEFAULT_CM_SCHEMA[n].high - DEFAULT_CM_SCHEMA[n].low)
            for n in b.cm_names
        ],
        -1,
    )
    mean, std = predict(ens, b.with_cm(jnp.broadcast_to(u, b.cm_unit.shape)))
    # per-UE KPI: periods pooled as the counters pool them (dtwin.kpi.period_kpis), weighted by
    # the table's own active_ues column (not the predictor's decoding of the state feature)
    ues = _table(seed=5)[1]["active_ues"].reshape(4, N_CELLS)
    for got, per_row in ((out.mean, mean), (out.std, std)):
        want = period_kpis({"dl_throughput_mbps": per_row[..., 0]}, ues)["dl_throughput_mbps"]
        np.testing.assert_allclose(got["dl_throughput_mbps"], want, rtol=1e-5)
        hand = (ues * per_row[..., 0]).sum(0) / ues.sum(0)  # the ratio of sums by hand
        np.testing.assert_allclose(got["dl_throughput_mbps"], hand, rtol=1e-5)
    assert not np.allclose(out.mean["dl_throughput_mbps"], mean[..., 0].mean(0), rtol=1e-3)
    plain = P.ensemble_predictor(ens, b, weight=None)(cm)  # weight=None: the plain mean
    np.testing.assert_allclose(plain.mean["dl_throughput_mbps"], mean[..., 0].mean(0), rtol=1e-5)
    np.testing.assert_allclose(plain.std["dl_throughput_mbps"], std[..., 0].mean(0), rtol=1e-5)


def test_ensemble_predictor_weight_rules(ensemble_and_batch):
    """Only per-UE KPIs are weighted; a cell with zero weight falls back to the plain mean; bad
    weights and a context without active_ues are refused or warned about by name."""
    import dataclasses

    from opt.predictor import context_weight

    ens, b = ensemble_and_batch
    cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(N_CELLS).items()}
    w = np.ones((4, N_CELLS), np.float32)
    w[:, 1] = 0.0  # cell 1: no weight at all -> plain mean
    w[0, 2], w[1:, 2] = 3.0, 0.0  # cell 2: only snapshot 0 counts
    plain = P.ensemble_predictor(ens, b, weight=None)(cm).mean["dl_throughput_mbps"]
    got = P.ensemble_predictor(ens, b, weight=w)(cm).mean["dl_throughput_mbps"]
    per_row = predict(ens, P.ensemble_predictor(ens, b)._batch(cm))[0][..., 0]
    np.testing.assert_allclose(got[:2], plain[:2], rtol=1e-5)
    np.testing.assert_allclose(got[2], per_row[0, 2], rtol=1e-5)
    np.testing.assert_allclose(
        context_weight(b), _table(seed=5)[1]["active_ues"].reshape(4, N_CELLS), rtol=1e-5
    )
    for bad, msg in (("ue", "weight must be"), (w[:2], "snapshots, cells"), (-w, ">= 0")):
        with pytest.raises(ValueError, match=msg):
            P.ensemble_predictor(ens, b, weight=bad)
    idx = np.array([2, 0])  # take() keeps each row's UEs with it, eagerly and under jit
    np.testing.assert_array_equal(b.take(idx).ues, np.asarray(b.ues)[idx])
    np.testing.assert_array_equal(jax.jit(lambda i: b.take(i).ues)(jnp.asarray(idx)), b.ues[idx])
    for bad in (-1.0, np.nan):  # the weights are refused by name, not zeroed
        tab = _table(seed=5)[0]
        tab["active_ues"] = tab["active_ues"].copy()
        tab["active_ues"][3] = bad
        with warnings.catch_warnings(), pytest.raises(ValueError, match="active_ues"):
            warnings.simplefilter("ignore")
            P.batches(None, tab)
    no_ues = dataclasses.replace(b, ues=None)
    with pytest.warns(UserWarning, match="averaged plainly"):
        p = P.ensemble_predictor(ens, no_ues)
    assert p.weight is None


def test_ensemble_predictor_members(ensemble_and_batch):
    """``members(cm)``: each member's prediction (sim2real.predict_members, context-averaged);
    their mean is the predictor's mean."""
    from sim2real.ensemble import member, predict_kpis

    ens, b = ensemble_and_batch
    pred = P.ensemble_predictor(ens, b)
    cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(N_CELLS).items()}
    cm["tilt_deg"] = cm["tilt_deg"] + jnp.array([2.0, -2.0, 0.0])
    mem = pred.members(cm)
    chex.assert_shape(mem["dl_throughput_mbps"], (2, N_CELLS))
    p_ = {n: DEFAULT_CM_SCHEMA[n] for n in b.cm_names}
    u = jnp.stack([(cm[n] - p_[n].low) / (p_[n].high - p_[n].low) for n in b.cm_names], -1)
    for i in range(2):  # reference: each member alone on the batch with the CM written in
        y = predict_kpis(member(ens, i), b.with_cm(jnp.broadcast_to(u, b.cm_unit.shape)))
        ues = _table(seed=5)[1]["active_ues"].reshape(4, N_CELLS)
        want = (ues * y[..., 0]).sum(0) / ues.sum(0)  # UE-weighted over the periods
        np.testing.assert_allclose(mem["dl_throughput_mbps"][i], want, rtol=1e-5)
    np.testing.assert_allclose(
        mem["dl_throughput_mbps"].mean(0), pred(cm).mean["dl_throughput_mbps"], rtol=1e-5
    )


def test_ensemble_predictor_grad_and_vmap(ensemble_and_batch):
    ens, b = ensemble_and_batch
    pred = P.ensemble_predictor(ens, b)
    cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(N_CELLS).items()}

    def f(p):
        return jnp.sum(pred(dict(cm, tx_power_dbm=p)).mean["dl_throughput_mbps"])

    g = jax.grad(f)(cm["tx_power_dbm"])
    fd = (
        f(cm["tx_power_dbm"] + jnp.array([0.05, 0, 0]))
        - f(cm["tx_power_dbm"] - jnp.array([0.05, 0, 0]))
    ) / 0.1
    np.testing.assert_allclose(float(g[0]), float(fd), rtol=0.05, atol=1e-3)
    cms = P.evaluation_cms(jax.random.PRNGKey(1), N_CELLS, 4)
    many = P.predict_candidates(pred, cms, chunk=2)
    chex.assert_shape(many["dl_throughput_mbps"], (5, N_CELLS))
    one = pred({k: jnp.asarray(v[3]) for k, v in cms.items()}).mean["dl_throughput_mbps"]
    np.testing.assert_allclose(many["dl_throughput_mbps"][3], one, rtol=1e-5)
    with pytest.raises(ValueError, match="lacks parameter"):
        pred({"tilt_deg": cm["tilt_deg"]})


def test_evaluation_cms_default_then_grid():
    cms = P.evaluation_cms(jax.random.PRNGKey(2), 5, 8)
    for p in DEFAULT_CM_SCHEMA.params:
        assert cms[p.name].shape == (9, 5)
        np.testing.assert_array_equal(cms[p.name][0], p.default)
        k = (cms[p.name] - p.low) / p.step
        np.testing.assert_allclose(k, np.round(k), atol=1e-5)
        assert cms[p.name].min() >= p.low and cms[p.name].max() <= p.high
    with pytest.raises(ValueError, match="n_candidates"):
        P.evaluation_cms(jax.random.PRNGKey(2), 5, 1)


def test_narrow_cms_stay_within_one_step():
    cms = P.narrow_cms(jax.random.PRNGKey(4), 6, 40, p_trial=0.2)
    changed = []
    for p in DEFAULT_CM_SCHEMA.params:
        assert cms[p.name].shape == (41, 6)
        np.testing.assert_array_equal(cms[p.name][0], p.default)
        d = np.abs(cms[p.name] - p.default) / p.step
        assert d.max() <= 1 + 1e-6, p.name
        changed.append(d[1:] > 0.5)
    assert 0.05 < np.mean(changed) < 0.4  # about p_trial


@pytest.mark.slow
def test_field_truth_matches_field_kpis_and_shapes():
    from dtwin.field import field_kpis

    field = P.field_for_area("urban", n_sites=1, seed=0, gap=1.0)
    cms = P.evaluation_cms(jax.random.PRNGKey(3), field.n_cells, 3)
    many = P.field_truth(field, cms, n_snapshots=2, seed=4, chunk=2)
    chex.assert_shape(many["dl_throughput_mbps"], (4, field.n_cells))
    one = field_kpis(
        jax.random.PRNGKey(4), field, {k: jnp.asarray(v[2]) for k, v in cms.items()}, n_snapshots=2
    )
    np.testing.assert_allclose(many["dl_throughput_mbps"][2], one["dl_throughput_mbps"], rtol=1e-4)
    with pytest.raises(ValueError, match="field_truth"):
        P.field_truth(field, {"tilt_deg": np.zeros(7)})


def test_evaluate_predictors_matches_evaluate_methods(ensemble_and_batch):
    """The predictor path (used for the anchored rows) gives the ensemble path's exact metrics."""
    from opt.predictor import ensemble_predictor

    ens, b = ensemble_and_batch
    cms = {k: np.stack([np.asarray(v)] * 4) for k, v in DEFAULT_CM_SCHEMA.default(N_CELLS).items()}
    cms["tilt_deg"] = cms["tilt_deg"] + np.array([0.0, 2.0, -2.0, 4.0])[:, None]
    rng = np.random.default_rng(1)
    truth = {"dl_throughput_mbps": rng.uniform(20.0, 200.0, (4, N_CELLS))}
    a = P.evaluate_methods({"m": ens}, test_batch=b, cms=cms, truth=truth)["m"]
    ctx = b.take(np.arange(min(64, b.n_snapshots)))
    p = P.evaluate_predictors({"m": ensemble_predictor(ens, ctx)}, cms=cms, truth=truth)["m"]
    for k in ("out_of_range_mape_pct", "out_of_range_mae", "response_spearman"):
        assert p[k] == pytest.approx(a[k], rel=1e-5), k
    assert np.isnan(p["in_range_mape_pct"])


def test_fit_levels_and_evaluate_methods_with_levels(ensemble_and_batch):
    """`fit_levels` reads levels for every method but twin-only; `evaluate_methods` applies
    each method's own: on targets that are the ensemble's prediction times exp(level_c), the
    in-range error with levels is ~0 (without: the levels' size), out-of-range predictions
    scale by exp(level_c) and the ranking metrics do not move."""
    import dataclasses

    from sim2real.surrogate import apply

    _, b = ensemble_and_batch
    ens = make_ensemble(jax.random.PRNGKey(1), 1, b, embed=4, hidden=8, depth=1, n_message=4)
    z = np.asarray(eqx.filter_vmap(lambda m: apply(m, b))(ens)[0])  # one member: mean = exp(z)
    lv = np.array([0.3, -0.2, 0.1])
    data = dataclasses.replace(b, targets=jnp.asarray(np.exp(z + lv[None, :, None]), jnp.float32))
    levels = P.fit_levels({"twin_only": ens, "m": ens}, data)
    assert set(levels) == {"m"}
    np.testing.assert_allclose(np.asarray(levels["m"].offset)[:, 0], lv, atol=1e-4)
    cms = {k: np.stack([np.asarray(v)] * 3) for k, v in DEFAULT_CM_SCHEMA.default(N_CELLS).items()}
    cms["tilt_deg"] = cms["tilt_deg"] + np.array([0.0, 3.0, -3.0])[:, None]
    truth = {"dl_throughput_mbps": np.random.default_rng(2).uniform(20.0, 200.0, (3, N_CELLS))}
    kw = dict(test_batch=data, cms=cms, truth=truth)
    plain = P.evaluate_methods({"m": ens}, **kw)["m"]
    leveled = P.evaluate_methods({"m": ens}, cell_levels=levels, **kw)["m"]
    assert leveled["in_range_mape_pct"] < 0.05 and plain["in_range_mape_pct"] > 10.0
    for k in ("response_spearman", "response_sign_accuracy"):
        assert leveled[k] == pytest.approx(plain[k])
    assert leveled["out_of_range_mae"] != pytest.approx(plain["out_of_range_mae"])


def test_train_all_rejects_unknown_method(ensemble_and_batch):
    _, b = ensemble_and_batch
    from sim2real import TransferConfig

    with pytest.raises(ValueError, match="unknown method"):
        P.train_all(["bogus"], jax.random.PRNGKey(0), b, b, TransferConfig(progress=False))


# --------------------------------------------------------------------------- experiments
@pytest.mark.slow
def test_table1_small(tmp_path):
    from experiments import table1

    res = table1.main(["--small", "--quiet", "--out", str(tmp_path)])
    rec = json.loads((tmp_path / "table1.json").read_text())
    assert set(rec["results"]["methods"]) == set(table1.ALL_METHODS) | set(table1.ANCHORED)
    for m, r in res["methods"].items():
        per_period = () if m in table1.ANCHORED else ("in_range_mape_pct", "in_range_mae")
        for k in (
            *per_period,
            "in_range_exact_mape_pct",
            "out_of_range_mape_pct",
            "response_spearman",
            "response_sign_accuracy",
            "out_of_range_mae",
        ):
            assert np.isfinite(r[k]), (m, k)
        assert 0 <= r["response_sign_accuracy"] <= 1
    assert 0 <= res["similarity_pct"] <= 100
    md = (tmp_path / "table1.md").read_text()
    assert "| sim2real |" in md and "12.8" in md
    assert "machine" in json.dumps(rec) or "platform" in json.dumps(rec)


@pytest.mark.slow
def test_figure4_small(tmp_path):
    from experiments import figure4

    res = figure4.main(
        ["--small", "--quiet", "--out", str(tmp_path), "--methods", "commercial_only,sim2real"]
    )
    assert (tmp_path / "figure4.png").stat().st_size > 0
    tilt = res["tilt_deg"]
    assert tilt["values"] == list(np.arange(0.0, 16.0))
    want = {"commercial_only", "sim2real", figure4.METHOD_CURVE}
    assert len(tilt["truth"]) == 16 and set(tilt["methods"]) == want
    # the method's curve is the surrogate's level times the twin's relative response, so at
    # the default CM (the anchor) it is exactly the Sim2Real surrogate's prediction
    for param in figure4.SWEPT:
        r = res[param]
        i = r["values"].index(DEFAULT_CM_SCHEMA[param].default)
        np.testing.assert_allclose(
            r["methods"][figure4.METHOD_CURVE]["mean"][i],
            r["methods"]["sim2real"]["mean"][i],
            rtol=1e-4,
        )


@pytest.mark.slow
def test_scarcity_small(tmp_path):
    from experiments import scarcity

    res = scarcity.main(
        [
            "--small",
            "--quiet",
            "--out",
            str(tmp_path),
            "--methods",
            "commercial_only,twin_only,sim2real",
        ]
    )
    assert (tmp_path / "scarcity.png").stat().st_size > 0
    sizes = res["sizes"]
    assert len(sizes) == 3 and sizes == sorted(sizes)
    # twin_only never sees commercial data: identical metrics at every size
    t = [r["methods"]["twin_only"]["out_of_range_mape_pct"] for r in res["rows"]]
    np.testing.assert_allclose(t, t[0], rtol=1e-5)


def test_predict_candidates_any_chunk_matches_single_calls():
    """Every candidate, whatever the chunking, equals the predictor called on it alone.

    Regression: on a 21-cell area the ensemble predictor vmapped over 1-2 candidates (the last,
    short chunk) returned inf or other cells' values (an XLA CPU miscompilation of the response
    part, fixed there); the anchored rows of a full-size Table 1 were NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, b = P.batches(None, _table(8, n_sites=7)[1])
    ens = make_ensemble(jax.random.PRNGKey(3), 2, b)
    pred = P.ensemble_predictor(ens, b)
    cms = P.evaluation_cms(jax.random.PRNGKey(4), 21, 8)  # 9 candidates
    single = eqx.filter_jit(lambda p, c: p(c).mean)
    want = np.stack(
        [
            np.asarray(
                single(pred, {k: jnp.asarray(v[i]) for k, v in cms.items()})["dl_throughput_mbps"]
            )
            for i in range(9)
        ]
    )
    assert np.all(np.isfinite(want))
    for chunk in (1, 2, 4, 8, 64):
        got = P.predict_candidates(pred, cms, chunk=chunk)["dl_throughput_mbps"]
        chex.assert_shape(got, (9, 21))
        np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=f"chunk={chunk}")
    with pytest.raises(ValueError, match="chunk"):
        P.predict_candidates(pred, cms, chunk=0)


def test_calibrate_ue_clustering_recovers_the_generating_value():
    """Commercial counters simulated by the twin itself at a known UE clustering (other
    snapshots than the calibration's): the calibration must return that value."""
    import opt
    from dtwin.areas import area_type, network_for_area

    true_c = 0.7  # far from the twin's default (0.35) and between grid points
    at = area_type("urban").with_ue_clustering(true_c)
    net = network_for_area(at, 7)
    twin = opt.twin_predictor(jax.random.PRNGKey(123), net, at, 64, kpis=("mean_sinr_db",))
    cm = {k: jnp.asarray(v) for k, v in DEFAULT_CM_SCHEMA.default(net.n_cells).items()}
    sinr = np.asarray(twin(cm).mean["mean_sinr_db"])
    comm = {k: np.asarray(v) for k, v in cm.items()}
    comm["mean_sinr_db"] = sinr
    # a row on a trial CM and a row without a counter are excluded, and counted
    comm = {k: np.append(v, v[:2]) for k, v in comm.items()}
    comm["tilt_deg"][-2] += 1.0
    comm["mean_sinr_db"][-1] = np.nan
    got, report = P.calibrate_ue_clustering("urban", comm, n_snapshots=64, seed=7)
    assert abs(got - true_c) < 0.1, report
    assert report["rows_used"] == net.n_cells
    assert report["rows_excluded_not_default_cm"] == 1
    assert report["rows_excluded_non_finite"] == 1
    assert np.all(np.diff(report["twin_values"]) > 0)  # SINR rises with clustering


def test_calibrate_ue_clustering_bad_input():
    comm = {
        "tilt_deg": np.array([6.0]),
        "tx_power_dbm": np.array([46.0]),
        "cio_db": np.array([0.0]),
    }
    with pytest.raises(ValueError, match="mean_sinr_db"):
        P.calibrate_ue_clustering("urban", comm)
    comm["mean_sinr_db"] = np.array([np.nan, 1.0])
    with pytest.raises(ValueError, match="length"):
        P.calibrate_ue_clustering("urban", comm)
    comm["mean_sinr_db"] = np.array([np.nan])
    with pytest.raises(ValueError, match="grid"):
        P.calibrate_ue_clustering("urban", comm, grid=(0.5, 0.2))
    with pytest.raises(ValueError, match="finite"):
        P.calibrate_ue_clustering("urban", comm)
