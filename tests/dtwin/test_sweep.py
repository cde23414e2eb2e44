"""Sweeps: determinism, chunk independence, sharding over 8 devices, resume after a kill."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dtwin.cm import DEFAULT_CM_SCHEMA
from dtwin.schema import CM_COLUMNS, TARGET_COLUMNS
from dtwin.sweep import SweepConfig, read_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(n_snapshots=12, areas=("urban", "metro"), n_sites=1, ues_per_cell=3, seed=5)


def _table(path):
    return read_sweep(path).to_pydict()


def _assert_same(a, b, rtol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.dtype.kind in "fc":
            np.testing.assert_allclose(
                x, y, rtol=rtol, atol=1e-5 if rtol else 0, equal_nan=True, err_msg=k
            )
        else:
            np.testing.assert_array_equal(x, y, err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    run_sweep(SweepConfig(chunk_size=4, **TINY), out, progress=False)
    return _table(out)


def test_rows_columns_and_bounds(reference):
    n_rows = TINY["n_snapshots"] * 3
    assert len(reference["snapshot_id"]) == n_rows
    for col in list(CM_COLUMNS) + list(TARGET_COLUMNS) + ["snapshot_id", "cell_id", "area_type"]:
        assert col in reference, col
    # one row per (snapshot, cell), none duplicated
    pairs = set(zip(reference["snapshot_id"], reference["cell_id"], strict=True))
    assert len(pairs) == n_rows
    for p in DEFAULT_CM_SCHEMA.params:
        v = np.asarray(reference[p.name])
        assert v.min() >= p.low and v.max() <= p.high, p.name
        np.testing.assert_allclose((v - p.low) / p.step, np.round((v - p.low) / p.step), atol=1e-4)
    util = np.asarray(reference["prb_utilization"])
    assert np.all((util >= 0) & (util <= 1))
    assert set(reference["area_type"]) == {"urban", "metro"}


def test_deterministic_and_independent_of_chunking(tmp_path, reference):
    run_sweep(SweepConfig(chunk_size=4, **TINY), tmp_path / "same", progress=False)
    _assert_same(_table(tmp_path / "same"), reference)
    # other chunking: the area of a chunk changes, so compare the snapshots of chunk 0 only
    run_sweep(
        SweepConfig(**{**TINY, "areas": ("urban",), "n_snapshots": 4}, chunk_size=2),
        tmp_path / "other",
        progress=False,
    )
    other = _table(tmp_path / "other")
    ref0 = {k: np.asarray(v)[:12] for k, v in reference.items()}
    _assert_same(other, ref0, rtol=1e-5)


def test_config_mismatch_on_resume_is_an_error(tmp_path):
    run_sweep(SweepConfig(chunk_size=4, **{**TINY, "n_snapshots": 4}), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_sweep(
            SweepConfig(chunk_size=4, **{**TINY, "n_snapshots": 4, "seed": 99}),
            tmp_path,
            progress=False,
        )


def test_bad_config_errors():
    with pytest.raises(ValueError, match="unknown area type"):
        SweepConfig(areas=("moon",))
    with pytest.raises(ValueError, match="cm_sampling"):
        SweepConfig(cm_sampling="everywhere")


_SCRIPT = textwrap.dedent(
    """
    import sys
    from dtwin.sweep import SweepConfig, run_sweep
    cfg = SweepConfig(chunk_size=4, **{tiny})
    run_sweep(cfg, sys.argv[1], progress=False)
    """
)


def _env(n_devices=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    if n_devices:
        flags = os.environ.get("XLA_FLAGS", "")  # keep conftest's compile flags
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n_devices}".strip()
    return env


@pytest.mark.slow
def test_sharded_over_8_devices_equals_single_device(tmp_path, reference):
    code = _SCRIPT.format(tiny=repr(TINY)) + textwrap.dedent(
        """
        import jax
        assert len(jax.devices()) == 8, jax.devices()
        """
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], check=True, env=_env(8), cwd=ROOT, timeout=600
    )
    _assert_same(_table(tmp_path), reference, rtol=1e-5)


@pytest.mark.slow
def test_killed_sweep_resumes_without_lost_or_duplicated_rows(tmp_path, reference):
    code = _SCRIPT.format(tiny=repr(TINY)) + "\nimport time; time.sleep(0)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], env=_env(), cwd=ROOT, start_new_session=True
    )
    deadline = time.time() + 600
    while time.time() < deadline and not list(tmp_path.glob("part-*.parquet")):
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(tmp_path.glob("part-*.parquet"))
    assert 1 <= len(done) < 3, f"kill should land mid-sweep, found {len(done)} chunks"
    before = {f.name: pq.read_table(f).num_rows for f in done}
    run_sweep(SweepConfig(chunk_size=4, **TINY), tmp_path, progress=False)
    for name, rows in before.items():  # completed chunks are kept as they were
        assert pq.read_table(tmp_path / name).num_rows == rows
    _assert_same(_table(tmp_path), reference)


def test_two_stage_batch_fn_equals_one_function():
    """make_batch_fn's two compiled stages (links, then evaluation from the coupling gain) give
    the same columns as one jit(vmap) of sample_snapshot + evaluate_snapshot via simulate."""
    import jax

    from dtwin.areas import area_type
    from dtwin.sweep import (
        _snapshot_keys,
        evaluate_snapshot,
        make_batch_fn,
        sample_cm,
        sample_snapshot,
    )

    area = area_type("urban")
    network, fn = make_batch_fn(area, 7, 4)
    keys = _snapshot_keys(3, np.arange(5, dtype=np.int32))

    def one(key):
        k_cm, k_snap = jax.random.split(key)
        cm = sample_cm(k_cm, DEFAULT_CM_SCHEMA, network.n_cells, "broad")
        return evaluate_snapshot(network, sample_snapshot(k_snap, network, area, 4, cm))

    got, want = fn(keys), jax.jit(jax.vmap(one))(keys)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(
            np.asarray(got[k], np.float64),
            np.asarray(want[k], np.float64),
            rtol=1e-5,
            atol=1e-4,
            equal_nan=True,
            err_msg=k,
        )


def test_mixed_cm_sampling_covers_default_and_broad():
    """``mixed``: on the grid, within bounds, some cells near the default and some far, and the
    share of near-default cells varies between snapshots (drawn per snapshot)."""
    import jax

    from dtwin.cm import DEFAULT_CM_SCHEMA as S
    from dtwin.sweep import sample_cm

    n = 57
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    cms = jax.vmap(lambda k: sample_cm(k, S, n, "mixed"))(keys)
    default = S.default(n)
    near = np.ones((400, n), bool)
    for p in S.params:
        v = np.asarray(cms[p.name])
        assert v.min() >= p.low - 1e-6 and v.max() <= p.high + 1e-6
        np.testing.assert_allclose((v - p.low) / p.step, np.round((v - p.low) / p.step), atol=1e-4)
        near &= np.abs(v - np.asarray(default[p.name])) <= p.step + 1e-6
    share = near.mean(axis=1)
    # a broad cell is within one step of the default in every parameter with probability
    # prod(3 / n_values) ~ 3/16 * 3/20 * 3/13 < 1 %; local cells always are
    assert share.min() < 0.1 and share.max() > 0.9
    assert 0.35 < share.mean() < 0.65
    with pytest.raises(ValueError, match="mixed"):
        sample_cm(keys[0], S, n, "everywhere")


def test_ue_clustering_pulls_each_cells_ues_toward_one_hotspot():
    """Clustered UEs = uniform drop + p (hotspot - x) per cell (same key): recover p and the
    hotspot per cell by least squares and check them against the documented ranges."""
    import dataclasses

    import jax

    from dtwin.areas import area_type, network_for_area
    from dtwin.sweep import SweepConfig, sample_population

    area = area_type("urban")
    net = network_for_area(area, 1)
    key = jax.random.PRNGKey(3)
    upc = 10
    uni, _ = sample_population(key, net, area, upc)
    same, _ = sample_population(key, net, area.with_ue_clustering(0.0), upc)
    np.testing.assert_array_equal(np.asarray(uni.ues.xy_m), np.asarray(same.ues.xy_m))
    clu, _ = sample_population(key, net, area.with_ue_clustering(0.9), upc)
    x = np.asarray(uni.ues.xy_m, np.float64).reshape(net.n_cells, upc, 2)
    y = np.asarray(clu.ues.xy_m, np.float64).reshape(net.n_cells, upc, 2)
    topo = net.topology
    for c in range(net.n_cells):
        # y = (1 - p) x + p h: linear in (a = 1 - p, b = p h)
        a_mat = np.zeros((2 * upc, 3))
        a_mat[:, 0] = x[c].reshape(-1)
        a_mat[0::2, 1] = 1.0
        a_mat[1::2, 2] = 1.0
        sol, *_ = np.linalg.lstsq(a_mat, y[c].reshape(-1), rcond=None)
        np.testing.assert_allclose(a_mat @ sol, y[c].reshape(-1), atol=1e-2)
        p = 1.0 - sol[0]
        assert 0.0 <= p <= 0.9 + 1e-4, p
        if p > 0.05:  # the hotspot is identifiable
            h = sol[1:] / p
            d = h - np.asarray(topo.site_xy_m)[int(topo.cell_site[c])]
            dist = np.hypot(*d)
            assert 0.15 * area.isd_m - 1.0 <= dist <= 0.55 * area.isd_m + 1.0, dist
    # the other draws (indoor state, demand, activity) are unchanged
    np.testing.assert_array_equal(np.asarray(uni.demand_mbps), np.asarray(clu.demand_mbps))
    np.testing.assert_array_equal(np.asarray(uni.weight), np.asarray(clu.weight))
    with pytest.raises(ValueError, match="ue_clustering"):
        area.with_ue_clustering(1.5)
    with pytest.raises(ValueError, match="ue_clustering"):
        dataclasses.replace(SweepConfig(), ue_clustering=-0.1)


def test_stratified_hours_cover_the_day_evenly():
    """Every hour of the day carries 1/24 of the total weight for n >= 24; fewer snapshots are
    spread evenly; weights average 1."""
    from dtwin.sweep import stratified_hours

    for n in (24, 64, 100):
        h, w = (np.asarray(a) for a in stratified_hours(n))
        per_hour = np.bincount(h.astype(int), weights=w, minlength=24)
        np.testing.assert_allclose(per_hour, n / 24, rtol=1e-6)
        np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-6)
    h, w = (np.asarray(a) for a in stratified_hours(8))
    np.testing.assert_array_equal(h, [0, 3, 6, 9, 12, 15, 18, 21])
    np.testing.assert_array_equal(w, 1.0)
    with pytest.raises(ValueError, match="n must be"):
        stratified_hours(0)


def test_sample_population_at_a_given_hour_follows_the_diurnal_profile():
    """With ``hour`` given, the active UEs per cell are round((lo + (hi - lo) a(h)) x level),
    level ~ U(0.7, 1.3), a the diurnal activity (closed form), and the hour is returned."""
    import jax

    from dtwin.areas import area_type, network_for_area
    from dtwin.sweep import diurnal_activity, sample_population

    area = area_type("urban")
    net = network_for_area(area, 1)
    upc = 10
    lo, hi = area.active_ues_per_cell
    for hour in (4.0, 18.0):
        act = float(diurnal_activity(hour))
        for i in range(4):
            pop, h = sample_population(jax.random.PRNGKey(i), net, area, upc, hour=hour)
            assert float(h) == hour
            n_active = np.asarray(pop.weight).reshape(net.n_cells, upc).sum(1)
            lo_n = np.clip(np.round((lo + (hi - lo) * act) * 0.7), 1, upc)
            hi_n = np.clip(np.round((lo + (hi - lo) * act) * 1.3), 1, upc)
            assert np.all((n_active >= lo_n) & (n_active <= hi_n)), (hour, n_active)
