"""Large-scale parameters (TR 38.901 clause 7.5 step 4, Table 7.5-6) and shadow fading.

References: Sionna 2.2 (deterministic log-mean/std, Cholesky factors, and sampled
distributions) and the Table 7.5-6 / 7.5-7 / 7.5-8 formulas evaluated by hand.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin.channel import (
    LSP_ORDER,
    InHOffice,
    RMa,
    UMa,
    UMi,
    lsp_log_statistics,
    sample_lsps,
    shadow_fading_std_db,
)
from tests.dtwin.channel import _sionna_ref as ref

N = 20000
SCEN = {"UMa": (UMa, 25.0), "UMi": (UMi, 10.0), "RMa": (RMa, 35.0), "InH-Office": (InHOffice, 3.0)}
CONDITIONS = [(True, False), (False, False), (True, True), (False, True)]  # (los, indoor)


def _conds(los: bool, indoor: bool):
    """Full-size condition arrays, so tests of one scenario share a compiled sampler."""
    return np.full(N, los), np.full(N, indoor)


def _log_lsps(lsps) -> np.ndarray:
    """LSPs -> [n, 7] in LSP_ORDER: SF, K in dB; spreads as log10."""
    cols = {
        "SF": lsps.sf_db, "K": lsps.k_db, "DS": jnp.log10(lsps.ds_s),
        "ASD": jnp.log10(lsps.asd_deg), "ASA": jnp.log10(lsps.asa_deg),
        "ZSD": jnp.log10(lsps.zsd_deg), "ZSA": jnp.log10(lsps.zsa_deg),
    }  # fmt: skip
    return np.stack([np.asarray(cols[n]) for n in LSP_ORDER], -1)


@pytest.mark.reference
@pytest.mark.parametrize(
    ("name", "h_uts"),
    [("UMa", (1.5, 7.5)), ("UMi", (1.5, 13.5)), ("RMa", (1.5, 8.0)), ("InH-Office", (1.0,))],
)
def test_log_statistics_match_sionna(name, h_uts):
    """Per-link log-mean and log-std of all 7 LSPs equal Sionna's (spec 16.1) to 1e-4."""
    cls, h_bs = SCEN[name]
    d = np.geomspace(10.0, 150.0 if name == "InH-Office" else 6000.0, 25).astype(np.float32)
    worst = 0.0
    for fc in (0.7e9, 3.5e9, 28e9):
        for h_ut in h_uts:
            for los, indoor in CONDITIONS:
                indoor = indoor or name == "InH-Office"
                m_ref, s_ref = ref.log_mean_std(name, fc, d, h_bs, h_ut, los, indoor)
                m, s = lsp_log_statistics(cls(), los, indoor, fc, d, h_bs, h_ut)
                worst = max(worst, float(np.abs(m - m_ref).max()), float(np.abs(s - s_ref).max()))
    print(f"max |LSP log-mean/std - Sionna| {name}: {worst:.2e}")
    assert worst < 1e-4


@pytest.mark.reference
@pytest.mark.parametrize("name", list(SCEN))
def test_cholesky_matches_sionna(name):
    """Cholesky factors of our Table 7.5-6 correlation matrices equal Sionna's."""
    cls = SCEN[name][0]
    s = cls()
    for (los, indoor), col in zip(CONDITIONS[:3], ("los_lsp", "nlos_lsp", "o2i_lsp"), strict=True):
        if name == "InH-Office" and col == "o2i_lsp":
            continue
        ours = np.linalg.cholesky(np.asarray(getattr(s, col).correlation))
        theirs = ref.cross_correlation_cholesky(name, 3.5e9, los, indoor or name == "InH-Office")
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=f"{name} {col}")


DIST_CASES = [
    ("UMa", True, False, 3.5e9),
    ("UMa", False, True, 3.5e9),
    ("UMi", False, False, 28e9),
    ("RMa", False, False, 3.5e9),
    ("InH-Office", True, False, 28e9),
]


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("case", DIST_CASES, ids=[f"{c[0]}-los{c[1]}-in{c[2]}" for c in DIST_CASES])
def test_distributions_match_sionna(case):
    """N = 20000 links each: |d mean| < 4 SE, |d std| < 4 SE, |d corr| < 0.05 (log domain)."""
    name, los, indoor, fc = case
    cls, h_bs = SCEN[name]
    rng = np.random.default_rng(1)
    d = rng.uniform(10.0, 100.0 if name == "InH-Office" else 1000.0, N).astype(np.float32)
    h_ut = 1.0 if name == "InH-Office" else 1.5
    indoor = indoor or name == "InH-Office"
    theirs = ref.sample_log_lsps(name, fc, d, h_bs, h_ut, los, indoor)
    ours = _log_lsps(sample_lsps(jax.random.key(5), cls(), *_conds(los, indoor), fc, d, h_bs, h_ut))
    keep = [i for i, n in enumerate(LSP_ORDER) if n != "K" or (los and not indoor)]
    a, b = ours[:, keep], theirs[:, keep]
    sa, sb = a.std(0), b.std(0)
    d_mean = np.abs(a.mean(0) - b.mean(0))
    d_std = np.abs(sa - sb)
    d_corr = np.abs(np.corrcoef(a.T) - np.corrcoef(b.T)).max()
    print(
        f"{name} los={los} indoor={indoor}: max|dmean|/SE="
        f"{(d_mean / np.sqrt((sa**2 + sb**2) / N)).max():.2f}, max|dcorr|={d_corr:.3f}"
    )
    assert np.all(d_mean < 4 * np.sqrt((sa**2 + sb**2) / N))
    assert np.all(d_std < 4 * np.sqrt((sa**2 + sb**2) / (2 * N)))
    assert d_corr < 0.05


_CAP_LOG10 = {"ASD": math.log10(104.0), "ASA": math.log10(104.0), "ZSD": math.log10(52.0),
              "ZSA": math.log10(52.0)}  # fmt: skip


def _clipped_normal_moments(mu: float, sigma: float, cap: float | None) -> tuple[float, float]:
    """Mean and std of ``min(X, cap)``, ``X ~ N(mu, sigma^2)`` (closed form)."""
    if cap is None:
        return mu, sigma
    a = (cap - mu) / sigma
    pdf = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(a / math.sqrt(2))
    m1 = -pdf + a * tail
    m2 = (1 - tail) - a * pdf + a * a * tail
    return mu + sigma * m1, sigma * math.sqrt(m2 - m1 * m1)


def _check_against_table(x, expected_mean, expected_std, expected_corr):
    """Sample moments vs the table's (clip-corrected) moments within 4 standard errors."""
    for j, name in enumerate(LSP_ORDER):
        if name in expected_mean:
            sig = expected_std[name]
            mu_c, sig_c = _clipped_normal_moments(expected_mean[name], sig, _CAP_LOG10.get(name))
            assert abs(x[:, j].mean() - mu_c) < 4 * sig / math.sqrt(N), name
            assert abs(x[:, j].std() - sig_c) < 4 * sig / math.sqrt(2 * N), name
    for (p, q), rho in expected_corr.items():
        r = np.corrcoef(x[:, LSP_ORDER.index(p)], x[:, LSP_ORDER.index(q)])[0, 1]
        assert abs(r - rho) < 0.05, (p, q, r)


def test_uma_los_against_table_7_5_6():
    """UMa LOS at 3.5 GHz (fc < 6 GHz -> 6), d_2D = 200 m, h_UT = 1.5 m (Tables 7.5-6, 7.5-7).

    Spreads are compared with the moments of the normal clipped at log10(104) / log10(52).
    """
    lf = math.log10(6.0)
    mean = {"SF": 0.0, "K": 9.0, "DS": -6.955 - 0.0963 * lf, "ASD": 1.06 + 0.1114 * lf,
            "ASA": 1.81, "ZSD": max(-0.5, -2.1 * 0.2 + 0.75), "ZSA": 0.95}  # fmt: skip
    std = {"SF": 4.0, "K": 3.5, "DS": 0.66, "ASD": 0.28, "ASA": 0.20, "ZSD": 0.40, "ZSA": 0.16}
    corr = {("ASD", "DS"): 0.4, ("DS", "SF"): -0.4, ("DS", "K"): -0.4, ("ZSD", "ASD"): 0.5,
            ("ZSA", "SF"): -0.8, ("ZSD", "DS"): -0.2}  # fmt: skip
    x = _log_lsps(sample_lsps(jax.random.key(1), UMa(), *_conds(True, False), 3.5e9,
                              jnp.full(N, 200.0), 25.0, 1.5))  # fmt: skip
    _check_against_table(x, mean, std, corr)


def test_umi_nlos_against_table_7_5_6():
    """UMi NLOS at 28 GHz (log10(1 + fc)), d_2D = 100 m, h_BS = 10 m (Tables 7.5-6, 7.5-8)."""
    lf = math.log10(1.0 + 28.0)
    mean = {"SF": 0.0, "DS": -0.24 * lf - 6.83, "ASD": -0.23 * lf + 1.53,
            "ASA": -0.08 * lf + 1.81, "ZSA": -0.04 * lf + 0.92,
            "ZSD": max(-0.5, -3.1 * 0.1 + 0.01 * max(1.5 - 10.0, 0.0) + 0.2)}  # fmt: skip
    std = {"SF": 7.82, "DS": 0.16 * lf + 0.28, "ASD": 0.11 * lf + 0.33, "ASA": 0.05 * lf + 0.3,
           "ZSA": -0.07 * lf + 0.41, "ZSD": 0.35}  # fmt: skip
    corr = {("DS", "SF"): -0.7, ("ZSD", "DS"): -0.5}  # pairs without heavily clipped spreads
    x = _log_lsps(sample_lsps(jax.random.key(2), UMi(), *_conds(False, False), 28e9,
                              jnp.full(N, 100.0), 10.0, 1.5))  # fmt: skip
    _check_against_table(x, mean, std, corr)


def test_clipping_and_k_factor():
    los = np.arange(N) % 2 == 0
    out = sample_lsps(jax.random.key(4), UMa(), los, np.full(N, False), 3.5e9, jnp.full(N, 300.0),
                      25.0, 1.5)  # fmt: skip
    assert float(out.asa_deg.max()) == pytest.approx(104.0)  # the clip is active
    assert float(out.asd_deg.max()) <= 104.0 and float(out.zsa_deg.max()) <= 52.0
    assert float(out.zsd_deg.max()) <= 52.0
    assert np.all(np.isneginf(np.asarray(out.k_db)[~np.asarray(los)]))
    assert np.all(np.isfinite(np.asarray(out.k_db)[np.asarray(los)]))


def test_shadow_fading_std_table_7_4_1_1():
    los = jnp.array([True, False, True, False])
    indoor = jnp.array([False, False, True, True])
    np.testing.assert_allclose(shadow_fading_std_db(UMa(), los, indoor), [4, 6, 7, 7])
    np.testing.assert_allclose(shadow_fading_std_db(UMi(), los, indoor), [4, 7.82, 7, 7])
    np.testing.assert_allclose(shadow_fading_std_db(RMa(), los, indoor), [4, 8, 8, 8])
    np.testing.assert_allclose(shadow_fading_std_db(InHOffice(), los, indoor), [3, 8.03, 3, 8.03])
    # RMa LOS: 4 dB before, 6 dB after d_BP = 2 pi h_BS h_UT fc / c (3.85 km here).
    d = jnp.array([1000.0, 5000.0])
    got = shadow_fading_std_db(RMa(), True, False, distance_2d_m=d, h_bs_m=35.0, h_ut_m=1.5,
                               carrier_hz=3.5e9)  # fmt: skip
    np.testing.assert_allclose(got, [4.0, 6.0])
    # Broadcasting as used by the network model: los [ues, cells], indoor [ues, 1].
    chex.assert_shape(
        shadow_fading_std_db(UMa(), jnp.ones((5, 3), bool), jnp.ones((5, 1), bool)), (5, 3)
    )


def test_shapes_jit_vmap_grad():
    key = jax.random.key(0)
    d = jnp.linspace(20.0, 400.0, 12).reshape(3, 4)
    los = d < 150.0
    keys = jax.random.split(key, 5)
    batched = jax.jit(jax.vmap(lambda k: sample_lsps(k, UMi(), los, False, 3.5e9, d, 10.0, 1.5)))(
        keys
    )
    for leaf in jax.tree.leaves(batched):
        chex.assert_shape(leaf, (5, 3, 4))
        chex.assert_type(leaf, jnp.float32)

    # Reparameterised gradient w.r.t. scenario leaves: d sf_db / d sigma_SF(NLOS) = sf_db / sigma
    # for the NLOS links.
    def mean_nlos_sf(s):
        lsp = sample_lsps(keys[0], s, los, False, 3.5e9, d, 10.0, 1.5)
        return jnp.sum(jnp.where(los, 0.0, lsp.sf_db))

    val, g = jax.value_and_grad(mean_nlos_sf)(UMi())
    # The un-batched (grad) path draws what the jit+vmap path drew for the same key.
    assert float(val) == pytest.approx(float(jnp.where(los, 0.0, batched.sf_db[0]).sum()), rel=1e-5)
    assert float(g.nlos_lsp.sf_std_db) == pytest.approx(float(val) / 7.82, rel=1e-4)
    chex.assert_tree_all_finite(g)
    # Distance gradient of the lgZSD mean: Table 7.5-8 UMi LOS slope -14.8 / 1000 per metre.
    gz = jax.grad(lambda x: lsp_log_statistics(UMi(), True, False, 3.5e9, x, 10.0, 1.5)[0][5])(30.0)
    assert float(gz) == pytest.approx(-14.8 / 1000, rel=1e-4)


def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="distance_2d_m"):
        sample_lsps(key, UMa(), True, False, 3.5e9, -5.0, 25.0, 1.5)
    with pytest.raises(ValueError, match="indoor"):
        sample_lsps(key, UMa(), True, 2.0, 3.5e9, 50.0, 25.0, 1.5)
    with pytest.raises(ValueError, match="carrier_hz"):
        sample_lsps(key, RMa(), True, False, 50e9, 50.0, 35.0, 1.5)
    with pytest.raises(ValueError, match="los"):
        shadow_fading_std_db(UMa(), 1.5, False)
    with pytest.raises(ValueError, match="los .*indoor"):
        lsp_log_statistics(UMa(), np.ones(3, bool), np.ones(2, bool), 3.5e9, 50.0, 25.0, 1.5)
