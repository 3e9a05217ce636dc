"""prepare_run / run_realisation: completeness, determinism, independence, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
from _pipeline_small import SMALL, digest
from scipy import stats

from hpcsys.config import REMEASURED_METHODS, ConfigError, parse_config
from hpcsys.core.likelihood import n_params
from hpcsys.core.models import FIT_MODELS, LRT_PAIRS
from hpcsys.methods.base import MethodResult
from hpcsys.pipeline import (
    STAGES,
    make_mock,
    prepare_run,
    run_realisation,
)


@pytest.fixture(scope="module")
def ctx():
    return prepare_run(parse_config(SMALL))


@pytest.fixture(scope="module")
def combined(ctx):
    return run_realisation(ctx, "combined", 3)


def test_context_contents(ctx):
    K = 3
    assert ctx.fixed is not None
    assert ctx.fixed.templates.shape == (K, ctx.footprint.n_pixels)
    assert ctx.fixed.xi.shape == (6, K, K)
    np.testing.assert_allclose(ctx.fixed.V.T @ ctx.fixed.V, np.eye(K), atol=1e-12)
    # zero lag: rotated templates are uncorrelated; at theta > 0 the cross terms remain
    T_rot = ctx.fixed.V.T @ ctx.fixed.templates
    C = T_rot @ T_rot.T / T_rot.shape[1]
    np.testing.assert_allclose(C - np.diag(np.diag(C)), 0, atol=1e-12)
    assert ctx.theta_arcmin.shape == (6,)
    assert ctx.nbar_pixel == pytest.approx(hp.nside2pixarea(32, degrees=True) * 3600)
    assert ctx.truth.a.shape == (K,) and ctx.truth.b.shape == (K,)


def test_prepare_run_is_deterministic(ctx):
    again = prepare_run(parse_config(SMALL))
    np.testing.assert_array_equal(again.fixed.templates, ctx.fixed.templates)
    np.testing.assert_array_equal(again.fixed.xi, ctx.fixed.xi)
    np.testing.assert_array_equal(again.truth.a, ctx.truth.a)


def test_run_realisation_fully_populated(ctx, combined):
    r = combined
    cfg = ctx.config
    K, M, L, F, Q, B = 3, len(cfg.methods.names), len(cfg.methods.likelihoods), len(FIT_MODELS), \
        len(LRT_PAIRS), 6
    assert (r.scenario, r.index) == ("combined", 3)
    assert r.seed_words.shape == (4,) and r.seed_words.dtype == np.uint32
    np.testing.assert_array_equal(r.a_true, ctx.truth.a)
    np.testing.assert_array_equal(r.b_true, ctx.truth.b)
    shapes = {
        "theta_arcmin": (B,), "w_true": (B,), "w_obs": (B,), "w_corrected": (M, B),
        "w_corrected_diag": (M, B), "w_remeasured": (M, B), "mle.loglike": (F, L),
        "mle.converged": (F, L), "mle.hit_pole": (F, L), "mle.a": (F, L, K), "mle.b": (F, L, K),
        "mle.a_err": (F, L, K), "mle.b_err": (F, L, K), "mle.s": (F, L), "mle.g": (F, L),
        "lrt.statistic": (Q, L), "lrt.pvalue": (Q, L), "lrt.dof": (Q,),
        "timings.stage_seconds": (len(STAGES),),
        "mle.cov": (F, L, 2 * K, 2 * K), "mle.a_err_indep": (F, L, K),
        "mle.b_err_indep": (F, L, K), "lrt.wald_statistic": (Q, L), "lrt.wald_pvalue": (Q, L),
        "lrt.wald_dof": (Q,),
    }

    def get(name: str) -> np.ndarray:
        obj = r
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    for name, shape in shapes.items():
        assert get(name).shape == shape, name
    for name in ("theta_arcmin", "w_true", "w_obs", "w_corrected", "w_remeasured", "mle.loglike",
                 "mle.a", "mle.b", "mle.s", "mle.g", "lrt.statistic", "lrt.pvalue",
                 "lrt.wald_statistic", "lrt.wald_pvalue", "timings.stage_seconds"):
        assert np.all(np.isfinite(get(name))), name
    is_weighting = np.array([n in REMEASURED_METHODS for n in cfg.methods.names])
    assert np.all(np.isfinite(r.w_corrected_diag[~is_weighting]))
    assert np.all(np.isnan(r.w_corrected_diag[is_weighting]))
    np.testing.assert_array_equal(r.w_corrected[is_weighting], r.w_remeasured[is_weighting])
    # errors exist exactly where the model has the term
    for f, model in enumerate(FIT_MODELS):
        has_a = model in ("additive", "combined")
        has_b = model in ("multiplicative", "combined")
        assert np.all(np.isfinite(r.mle.a_err[f]) == has_a)
        assert np.all(np.isfinite(r.mle.b_err[f]) == has_b)
        assert np.all(np.isfinite(r.mle.a_err_indep[f]) == has_a)
        assert np.all(np.isfinite(r.mle.b_err_indep[f]) == has_b)
    for q, (null, alt) in enumerate(LRT_PAIRS):
        assert r.lrt.dof[q] == n_params(alt, "gaussian", K) - n_params(null, "gaussian", K)
    assert np.all(r.lrt.statistic > -1e-6)  # nested maxima
    assert np.all((r.lrt.pvalue >= 0) & (r.lrt.pvalue <= 1))
    assert len(r.methods) == M
    assert all(isinstance(m, MethodResult) for m in r.methods)
    assert [m.name for m in r.methods] == list(cfg.methods.names)
    assert np.all(r.timings.stage_seconds > 0)
    assert r.timings.stage_seconds[-1] >= r.timings.stage_seconds[:-1].sum() * 0.99
    assert r.timings.peak_memory_mb > 10


def test_stored_sandwich_and_wald_equal_a_direct_recomputation(ctx, combined):
    """The task's honest errors and Wald tests == mle_covariance / ols_covariance from scratch."""
    from hpcsys.core.fit import fit_mle
    from hpcsys.core.likelihood import param_layout
    from hpcsys.core.models import MODELS
    from hpcsys.measure.honest import sandwich_lmax
    from hpcsys.measure.sandwich import harmonic_geometry, mle_covariance, ols_covariance

    cfg, r = ctx.config, combined
    K, nside = 3, cfg.sky.nside
    assert ctx.sandwich is not None and ctx.sandwich.designs is not None  # built once per run
    geo = harmonic_geometry(ctx.footprint.pixels, nside,
                            sandwich_lmax(nside, cfg.methods.sandwich_lmax))
    assert ctx.sandwich.geometry.lmax == geo.lmax
    d, T = make_mock(ctx, "combined", 3).delta_obs, ctx.fixed.templates
    for j, lik in enumerate(cfg.methods.likelihoods):
        for q, (null, alt) in enumerate(LRT_PAIRS):
            fit = fit_mle(d, T, alt, lik, max_iter=cfg.methods.mle_max_iter,
                          tol=cfg.methods.mle_tol)
            cov = mle_covariance(np.asarray(fit.theta), d, T, alt, lik, geo)
            lay = param_layout(alt, lik, K)
            (null_a, null_b), extra = MODELS[null], []
            if lay.a is not None and not null_a:
                extra += range(lay.size)[lay.a]
            if lay.b is not None and not null_b:
                extra += range(lay.size)[lay.b]
            idx = list(extra)
            th = np.asarray(fit.theta)[idx]
            W = th @ np.linalg.solve(cov[np.ix_(idx, idx)], th)
            assert r.lrt.wald_dof[q] == len(idx)
            np.testing.assert_allclose(r.lrt.wald_statistic[q, j], W, rtol=1e-8)
            np.testing.assert_allclose(r.lrt.wald_pvalue[q, j], stats.chi2.sf(W, len(idx)),
                                       rtol=1e-7, atol=1e-300)
            if lay.a is not None:
                f = FIT_MODELS.index(alt)
                np.testing.assert_allclose(r.mle.a_err[f, j], np.sqrt(np.diag(cov)[lay.a]),
                                           rtol=1e-8)
    ols = r.methods[list(cfg.methods.names).index("OLS")]
    _, cov = ols_covariance(d, T, geo)
    np.testing.assert_allclose(ols.cov[:K, :K], cov, rtol=1e-8, atol=1e-12 * cov.max())
    assert np.all(ols.a_err_indep < ols.a_err * 10) and np.all(np.isfinite(ols.cov_indep[:K, :K]))


def test_stored_jackknife_equals_a_direct_recomputation(ctx, combined):
    """The task's jackknife == the measure/methods functions on the same map and regions."""
    from hpcsys.measure.jackknife import jackknife_covariance, jackknife_regions, mle_deletions
    from hpcsys.seeds import rng

    cfg, r = ctx.config, combined
    R = cfg.methods.jackknife_regions
    regions = jackknife_regions(ctx.footprint.pixels, cfg.sky.nside, R,
                                rng(cfg.run.master_seed, "jackknife"))
    np.testing.assert_array_equal(ctx.regions.labels, regions.labels)
    assert r.jackknife.n_regions == R
    d, T = make_mock(ctx, "combined", 3).delta_obs, ctx.fixed.templates
    K, f = 3, FIT_MODELS.index("combined")
    names = list(cfg.methods.names)
    ols = r.methods[names.index("OLS")]
    from hpcsys.measure.jackknife import ols_deletions

    np.testing.assert_allclose(r.jackknife.method_cov[names.index("OLS")][:K, :K],
                               jackknife_covariance(ols_deletions(d, T, regions)), rtol=1e-10)
    # every method but ISD (methods.jackknife_isd off) and every MLE fit with
    # coefficients have finite jackknife errors
    for m, name in enumerate(names):
        assert np.all(np.isfinite(r.jackknife.method_cov[m])) == (not name.startswith("ISD"))
    assert np.all(np.isfinite(r.jackknife.mle_a_err[FIT_MODELS.index("additive")]))
    assert np.all(np.isfinite(r.jackknife.mle_b_err[f]))
    # ElasticNet has no covariance of its own: it reports (and is debiased with) its jackknife
    en = r.methods[names.index("ElasticNet")]
    np.testing.assert_array_equal(en.cov, r.jackknife.method_cov[names.index("ElasticNet")])
    # the MLE jackknife of the combined Gaussian fit from its stored maximum
    from hpcsys.core.fit import fit_mle

    fit = fit_mle(d, T, "combined", "gaussian", max_iter=cfg.methods.mle_max_iter,
                  tol=cfg.methods.mle_tol)
    var = np.diag(jackknife_covariance(mle_deletions(np.asarray(fit.theta), d, T, "combined",
                                                     "gaussian", regions)))
    j = list(cfg.methods.likelihoods).index("gaussian")
    np.testing.assert_allclose(r.jackknife.mle_a_err[f, j], np.sqrt(var[:K]), rtol=1e-6)
    # jackknife and sandwich errors of OLS describe the same scatter: same order of magnitude
    ratio = np.sqrt(np.diag(r.jackknife.method_cov[names.index("OLS")])[:K]) / ols.a_err
    assert np.all((ratio > 0.3) & (ratio < 3.0)), ratio


def test_null_without_shot_noise_observes_the_true_w(combined):
    """a = b = 0 and no shot noise: w_obs equals w_true exactly (same run, same shapes)."""
    cfg = parse_config({**SMALL, "sky": {**SMALL["sky"], "shot_noise": False}})
    r = run_realisation(prepare_run(cfg), "null", 1)
    assert not r.a_true.any() and not r.b_true.any()
    np.testing.assert_allclose(r.w_obs, r.w_true, rtol=1e-12, atol=0)


def test_scenarios_share_the_true_field_and_inject_their_truth(ctx):
    null = make_mock(ctx, "null", 5)
    comb = make_mock(ctx, "combined", 5)
    add = make_mock(ctx, "additive", 5)
    np.testing.assert_array_equal(null.delta_true, comb.delta_true)
    T = ctx.fixed.templates
    a, b = ctx.truth.a, ctx.truth.b
    np.testing.assert_allclose(comb.delta_hat, comb.delta_true * (1 + b @ T) + a @ T, atol=1e-14)
    np.testing.assert_allclose(add.delta_hat, add.delta_true + a @ T, atol=1e-14)
    np.testing.assert_array_equal(null.delta_hat, null.delta_true)


def test_different_indices_give_independent_fields():
    """Per-multipole correlation of two realisations' fields is consistent with zero.

    For independent fields r_l = C_l^12 / sqrt(C_l^11 C_l^22) has variance
    ~1/(2l+1), so S = sum_l (2l+1) r_l^2 is ~chi^2 with one dof per multipole.
    The same index gives r_l = 1 (positive control).
    """
    cfg = parse_config({**SMALL, "sky": {"nside": 32, "footprint": "full"}})
    c = prepare_run(cfg)
    m0 = make_mock(c, "null", 0).delta_true
    m1 = make_mock(c, "null", 1).delta_true
    lmax = 64
    c00, c11, c01 = (hp.anafast(x, y, lmax=lmax, iter=0) for x, y in ((m0, m0), (m1, m1), (m0, m1)))
    ell = np.arange(2, lmax + 1)
    r = c01[2:] / np.sqrt(c00[2:] * c11[2:])
    S = np.sum((2 * ell + 1) * r**2)
    assert stats.chi2.sf(S, ell.size) > 1e-3, S
    assert abs(np.corrcoef(m0, m1)[0, 1]) < 0.1
    again = make_mock(c, "null", 0).delta_true
    np.testing.assert_array_equal(again, m0)


def test_redrawn_templates_change_with_index():
    cfg = parse_config({**SMALL, "templates": {"n_templates": 2, "redraw": True}})
    c = prepare_run(cfg)
    assert c.fixed is None
    t0, t1 = c.templates_for(0), c.templates_for(1)
    assert not np.allclose(t0.templates, t1.templates)
    np.testing.assert_array_equal(c.templates_for(0).templates, t0.templates)


_SCRIPT = textwrap.dedent("""
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    from _pipeline_small import SMALL, digest
    from hpcsys.config import parse_config
    from hpcsys.pipeline import prepare_run, run_realisation
    ctx = prepare_run(parse_config(SMALL))
    print(json.dumps(digest(run_realisation(ctx, "combined", 3))))
""")


@pytest.mark.slow
def test_bit_identical_in_separate_processes(combined, tmp_path):
    """A fresh interpreter reproduces this process's result bit for bit."""
    tests_dir = str(Path(__file__).resolve().parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tests_dir, env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                         timeout=600, check=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == digest(combined)


@pytest.mark.parametrize(
    ("section", "key", "value", "pattern"),
    [
        ("sky", "nside", 100, r"^sky\.nside: must be a power of two"),
        ("sky", "number_density", -1.0, r"^sky\.number_density: must be > 0"),
        ("templates", "n_templates", 0, r"^templates\.n_templates: must be >= 1"),
        ("sky", "footprint", "moon", r"^sky\.footprint: must be one of"),
        ("twopoint", "theta_max_arcmin", 100.0, r"^twopoint\.theta_max_arcmin"),
    ],
)
def test_bad_config_values_raise_config_error(section, key, value, pattern):
    raw = {k: dict(v) for k, v in SMALL.items()}
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=pattern):
        prepare_run(parse_config(raw))


def test_unreadable_mask_file_names_the_file(tmp_path):
    bad = tmp_path / "garbage_mask.fits"
    bad.write_bytes(b"\\x00not a fits file")
    cfg = parse_config({**SMALL, "sky": {"nside": 32, "footprint": "file",
                                         "mask_file": str(bad)}})
    with pytest.raises(ConfigError, match=r"^sky\.mask_file: .*garbage_mask\.fits"):
        prepare_run(cfg)
