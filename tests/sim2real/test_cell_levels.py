"""Per-cell levels from commercial data (`sim2real.fit_cell_levels`, `sim2real.CellLevels`)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim2real import CellLevels, fit_cell_levels, make_ensemble, predict
from sim2real.surrogate import apply

from .conftest import hex_topo, make_batch


@pytest.fixture(scope="module")
def setup():
    topo = hex_topo()
    batch = make_batch(np.random.default_rng(3), topo, 16, commercial=True, cm_mode="local")
    ens = make_ensemble(jax.random.key(1), 2, batch)
    z = np.asarray(jnp.mean(eqx.filter_vmap(lambda m: apply(m, batch))(ens), axis=0))
    return batch, ens, z


def _with_targets(batch, z):
    return dataclasses.replace(batch, targets=jnp.asarray(np.exp(z), jnp.float32))


def test_recovers_known_levels_and_the_raw_means(setup):
    """Targets = the ensemble's mean prediction times exp(level_c) (x noise): without noise
    the fit returns the levels; with noise and ``shrink=False`` each cell's sample mean of
    (level + noise), computed here directly."""
    batch, ens, z = setup
    rng = np.random.default_rng(0)
    n_cells = batch.n_cells
    true = rng.normal(0.0, 0.2, n_cells)
    lv = fit_cell_levels(ens, _with_targets(batch, z + true[None, :, None]), chunk=5)
    np.testing.assert_array_equal(np.asarray(lv.cell_id), np.asarray(batch.cell_id))
    np.testing.assert_allclose(np.asarray(lv.offset)[:, 0], true, atol=2e-4)
    assert np.all(np.asarray(lv.n_rows) == np.asarray(batch.mask).sum(axis=0))
    noise = rng.normal(0.0, 0.3, z.shape)
    data = _with_targets(batch, z + true[None, :, None] + noise)
    m = np.asarray(batch.mask)
    geo = fit_cell_levels(ens, data, shrink=False, level="geometric")
    expect = [np.mean((true[c] + noise[:, c, 0])[m[:, c]]) for c in range(n_cells)]
    np.testing.assert_allclose(np.asarray(geo.offset)[:, 0], expect, atol=2e-4)
    ari = fit_cell_levels(ens, data, shrink=False)  # default: log of the mean ratio
    expect = [np.log(np.mean(np.exp(true[c] + noise[:, c, 0])[m[:, c]])) for c in range(n_cells)]
    np.testing.assert_allclose(np.asarray(ari.offset)[:, 0], expect, atol=2e-4)
    with pytest.raises(ValueError, match="level must be"):
        fit_cell_levels(ens, data, level="median")


def test_arithmetic_level_is_the_lognormal_mean(setup):
    """Log-normal noise of sigma around the prediction: the arithmetic level exceeds the
    geometric one by sigma^2 / 2 (the log-normal mean, closed form), so exp(prediction + level)
    is the KPI's mean, not its median; the common level likewise."""
    batch, ens, z = setup
    rng = np.random.default_rng(11)
    sigma = 0.5
    big = batch.take(np.tile(np.arange(batch.n_snapshots), 25))  # 400 rows per cell
    zb = np.tile(z, (25, 1, 1))
    data = _with_targets(big, zb + rng.normal(0.0, sigma, zb.shape))
    ari = fit_cell_levels(ens, data, shrink=False)
    geo = fit_cell_levels(ens, data, shrink=False, level="geometric")
    d = np.asarray(ari.offset - geo.offset)[:, 0]
    assert abs(d.mean() - sigma**2 / 2) < 0.02, d.mean()  # 0.125
    assert np.all(np.abs(d - sigma**2 / 2) < 0.08), d
    assert float(ari.common[0] - geo.common[0]) == pytest.approx(sigma**2 / 2, abs=0.02)


def test_shrinkage_beats_raw_means_and_keeps_equal_cells_equal(setup):
    """James-Stein: with 4 rows per cell and noise comparable to the cells' spread, the shrunk
    levels are closer to the truth than the raw means (mean squared error over 20 draws);
    cells that do not differ at all end up (nearly) at the common level."""
    batch, ens, z = setup
    few = batch.take(np.arange(4))
    zf = z[:4]
    err_raw = err_js = 0.0
    for k in range(20):
        rng = np.random.default_rng(100 + k)
        true = rng.normal(0.0, 0.1, batch.n_cells)
        data = _with_targets(few, zf + true[None, :, None] + rng.normal(0, 0.3, zf.shape))
        raw = np.asarray(fit_cell_levels(ens, data, shrink=False, level="geometric").offset)[:, 0]
        js = np.asarray(fit_cell_levels(ens, data, level="geometric").offset)[:, 0]
        err_raw += np.mean((raw - true) ** 2)
        err_js += np.mean((js - true) ** 2)
    assert err_js < 0.7 * err_raw, (err_js, err_raw)
    rng = np.random.default_rng(7)
    data = _with_targets(few, zf + 0.05 + rng.normal(0, 0.3, zf.shape))  # one common level
    raw = np.asarray(fit_cell_levels(ens, data, shrink=False).offset)[:, 0]
    js = np.asarray(fit_cell_levels(ens, data).offset)[:, 0]
    assert np.std(js) < 0.5 * np.std(raw)


def test_apply_matches_cells_by_id_and_zeroes_the_residual(setup):
    """Applied to the fitted batch, the prediction's mean log residual per cell vanishes
    (shrink=False); cells are matched by id whatever their order, unknown cells get 0."""
    batch, ens, z = setup
    true = np.linspace(-0.3, 0.3, batch.n_cells)
    data = _with_targets(batch, z + true[None, :, None])
    lv = fit_cell_levels(ens, data, shrink=False)
    zz = np.asarray(jnp.mean(eqx.filter_vmap(lambda m: apply(m, lv.apply(data)))(ens), axis=0))
    np.testing.assert_allclose(zz, np.log(np.asarray(data.targets)), atol=3e-4)
    rev = CellLevels(lv.cell_id[::-1], lv.offset[::-1], lv.n_rows[::-1], lv.common, lv.target_names)
    np.testing.assert_allclose(rev.for_batch(batch), lv.for_batch(batch), atol=0)
    common = jnp.array([0.25])
    part = CellLevels(lv.cell_id[:3], lv.offset[:3], lv.n_rows[:3], common, lv.target_names)
    got = part.for_batch(batch)
    np.testing.assert_allclose(got[:3], np.asarray(lv.offset)[:3])
    assert np.all(got[3:] == 0.25)  # cells it does not know: the common level
    mean0, _ = predict(ens, batch)
    mean1, _ = predict(ens, part.apply(batch))
    np.testing.assert_allclose(
        np.asarray(mean1)[:, :3], np.asarray(mean0)[:, :3] * np.exp(got[None, :3]), rtol=1e-4
    )


def test_cells_without_rows_get_the_common_level(setup):
    """A cell with no row has no entry and gets the row-weighted mean residual; a cell with one
    row is shrunk (nearly) to it, one with many rows keeps its own level."""
    batch, ens, z = setup
    rng = np.random.default_rng(5)
    true = rng.normal(0.0, 0.3, batch.n_cells)
    mask = np.ones((batch.n_snapshots, batch.n_cells), bool)
    mask[:, 0] = False  # cell 0: no row
    mask[1:, 1] = False  # cell 1: one row
    data = dataclasses.replace(
        _with_targets(batch, z + true[None, :, None] + rng.normal(0, 0.2, z.shape)),
        mask=jnp.asarray(mask),
    )
    lv = fit_cell_levels(ens, data)
    ids = np.asarray(batch.cell_id)
    assert ids[0] not in np.asarray(lv.cell_id) and len(lv.cell_id) == batch.n_cells - 1
    m = np.asarray(data.mask)
    resid = (np.log(np.asarray(data.targets)) - z)[..., 0]
    grand = np.log(np.exp(resid[m]).mean())  # every row weighted alike
    np.testing.assert_allclose(float(lv.common[0]), grand, atol=1e-5)
    got = lv.for_batch(batch)[:, 0]
    assert got[0] == pytest.approx(grand, abs=1e-5)
    raw = fit_cell_levels(ens, data, shrink=False).for_batch(batch)[:, 0]
    f1, f5 = ((got[c] - grand) / (raw[c] - grand) for c in (1, 5))  # kept share of the raw
    assert 0.0 < f1 < f5 <= 1.0 and f5 > 0.95, (f1, f5)  # one row: pulled; 16 rows: kept


def test_csv_round_trip_and_bad_input(setup, tmp_path):
    batch, ens, z = setup
    lv = fit_cell_levels(ens, _with_targets(batch, z + 0.1))
    path = lv.to_csv(tmp_path / "levels.csv")
    back = CellLevels.from_csv(path)
    np.testing.assert_array_equal(np.asarray(back.cell_id), np.asarray(lv.cell_id))
    np.testing.assert_allclose(np.asarray(back.offset), np.asarray(lv.offset), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(back.common), np.asarray(lv.common), rtol=1e-6)
    assert back.target_names == lv.target_names
    head = "cell_id,n_rows,level_x\n"
    for text, words in [
        ("cell,n_rows,level_x\n1,2,0.1\n", "header"),
        (head, "common"),  # no rows at all
        (head + "common,4,0.0\n", "common"),  # no cell
        (head + "common,4,0.0\n7,2\n", "line 3"),  # a field missing
        (head + "common,4,0.0\n7,2,abc\n", "line 3"),
        (head + "common,4,0.0\n7,2,nan\n", "non-finite"),
        (head + "common,4,0.0\n7,2,0.1\n7,2,0.2\n", "duplicate"),
    ]:
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(ValueError, match="bad.csv") as e:
            CellLevels.from_csv(tmp_path / "bad.csv")
        assert words in str(e.value), (text, str(e.value))
    empty = dataclasses.replace(batch, mask=jnp.zeros_like(batch.mask))
    with pytest.raises(ValueError, match="no row"):
        fit_cell_levels(ens, empty)
    other = dataclasses.replace(lv, target_names=("dl_volume_mb",))
    with pytest.raises(ValueError, match="targets"):
        other.for_batch(batch)
    with pytest.raises(ValueError, match="duplicate"):
        CellLevels(jnp.array([1, 1]), jnp.zeros((2, 1)), jnp.array([1, 1]), jnp.zeros(1), ("x",))
