"""OLS and ElasticNet: closed form, PCA invariance, recovery within their own scatter, seeding."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _methods_synthetic import synthetic_map

from hpcsys.config import MethodsSection
from hpcsys.measure.honest import sandwich_lmax
from hpcsys.measure.sandwich import harmonic_geometry, ols_covariance
from hpcsys.methods import run_method
from hpcsys.methods.regression import sky_patches
from hpcsys.seeds import seed_sequence

A_TRUE = np.array([0.02, 0.0, -0.015, 0.01, 0.0])


def test_ols_equals_closed_form():
    data = synthetic_map(10, a=A_TRUE)
    T, d = data.templates, data.delta
    N, K = T.shape[1], T.shape[0]
    for pca in (False, True):
        r = run_method("OLS", data, MethodsSection(pca=pca), seed_sequence(1, "method", 0))
        TT_inv = np.linalg.inv(T @ T.T)
        a = TT_inv @ T @ d
        resid = d - a @ T
        s2 = resid @ resid / (N - K)
        np.testing.assert_allclose(r.a, a, rtol=0, atol=1e-12)
        # independent pixels: the textbook covariance, under its own names
        np.testing.assert_allclose(r.cov_indep[:K, :K], s2 * TT_inv, rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(r.a_err_indep, np.sqrt(np.diag(s2 * TT_inv)), rtol=1e-10)
        # the default error is the harmonic sandwich, band methods.sandwich_lmax
        geo = harmonic_geometry(data.pixels, data.nside,
                                sandwich_lmax(data.nside, MethodsSection().sandwich_lmax))
        _, cov = ols_covariance(d, T, geo)
        np.testing.assert_allclose(r.cov[:K, :K], cov, rtol=1e-9, atol=1e-12 * cov.max())
        np.testing.assert_allclose(r.a_err, np.sqrt(np.diag(cov)), rtol=1e-9)
        np.testing.assert_allclose(r.corrected, d - a @ T, rtol=0, atol=1e-12)
        assert r.sigma == pytest.approx(np.sqrt(s2), rel=1e-12)
        assert np.all(np.isnan(r.cov[K:, :])) and np.all(np.isnan(r.cov_indep[K:, :]))
        assert np.all(np.isnan(r.b_err_indep))


def test_ols_pca_on_off_agree():
    data = synthetic_map(11, a=A_TRUE, rho=0.6)
    seed = seed_sequence(1, "method", 0)
    off = run_method("OLS", data, MethodsSection(pca=False), seed)
    on = run_method("OLS", data, MethodsSection(pca=True), seed)
    np.testing.assert_allclose(on.a, off.a, rtol=0, atol=1e-10)
    np.testing.assert_allclose(on.cov[:5, :5], off.cov[:5, :5], rtol=1e-8, atol=1e-14)


def test_ols_recovers_truth_within_its_errors():
    """Pulls (a_hat - a)/a_err over 20 independent maps: mean 0, std 1."""
    M = 20
    pulls = np.array([
        (r.a - A_TRUE) / r.a_err
        for r in (run_method("OLS", synthetic_map(100 + i, a=A_TRUE), MethodsSection(),
                             seed_sequence(1, "method", i)) for i in range(M))
    ])
    # per-template mean pull: N(0, 1/M); 4 sigma
    assert np.all(np.abs(pulls.mean(axis=0)) < 4 / np.sqrt(M))
    # pull standard deviation over M*K values: error of a std is ~ 1/sqrt(2 M K)
    assert abs(pulls.std() - 1.0) < 4 / np.sqrt(2 * pulls.size)


def test_sky_patches_are_healpix_parents():
    import healpy as hp

    pix = np.arange(12 * 16 * 16)
    groups = sky_patches(pix, 16, 4)
    nest_parent = hp.ring2nest(16, pix) // 16  # 4^2 children per NSIDE-4 pixel
    np.testing.assert_array_equal(groups, hp.nest2ring(4, nest_parent))


EN_SETTINGS = MethodsSection(elasticnet_folds=3, elasticnet_l1_ratio=(0.5, 1.0))


@pytest.fixture(scope="module")
def en_runs():
    """ElasticNet on 6 independent maps of 10k pixels (3 folds to keep it quick)."""
    maps = [synthetic_map(200 + i, a=A_TRUE, npix=10000) for i in range(6)]
    return maps, [run_method("ElasticNet", m, EN_SETTINGS, seed_sequence(1, "method", i))
                  for i, m in enumerate(maps)]


def test_elasticnet_recovers_truth_within_its_scatter(en_runs):
    """Mean over maps within 4 standard errors of the truth (shrinkage bias included)."""
    maps, runs = en_runs
    a = np.array([r.a for r in runs])
    M = a.shape[0]
    # scatter per template (floored at the OLS error, for coefficients shrunk to exactly 0)
    err = np.maximum(a.std(axis=0, ddof=1), 0.3 / np.sqrt(10000)) / np.sqrt(M)
    assert np.all(np.abs(a.mean(axis=0) - A_TRUE) < 4 * err)
    for m, r in zip(maps, runs):
        assert r.model == "additive" and np.all(np.isnan(r.a_err))
        np.testing.assert_allclose(r.corrected, m.delta - r.a @ m.templates, rtol=0, atol=1e-12)


def test_elasticnet_is_reproducible_for_a_seed():
    data = synthetic_map(300, a=A_TRUE, npix=8000)
    r1 = run_method("ElasticNet", data, EN_SETTINGS, seed_sequence(7, "method", 3))
    r2 = run_method("ElasticNet", data, EN_SETTINGS, seed_sequence(7, "method", 3))
    np.testing.assert_array_equal(r1.a, r2.a)
    assert r1.diagnostics.message == r2.diagnostics.message


def test_elasticnet_gram_solver_matches_full_design_within_solver_tolerance():
    """The Gram-matrix solver (default) selects the same penalty as scikit-learn's "auto"
    (the implementation before: full N x K design for the final fit) and the same
    coefficients within the bound the duality-gap tolerance implies.

    Both stop when the duality gap of the final fit is below ``tol * |y_c|^2`` (scaled
    objective); the objective is ``mu``-strongly convex with ``mu >= lambda_min(X_c^T X_c)``,
    so each solution lies within ``sqrt(2 tol |y_c|^2 / mu)`` of the optimum. A strongly
    contaminated map with correlated templates.
    """
    K = 8
    a = np.linspace(-0.04, 0.05, K)
    data = synthetic_map(400, a=a, K=K, rho=0.6, npix=20000, nside=64)
    seed = seed_sequence(3, "method", 1)
    settings = MethodsSection(elasticnet_folds=3, elasticnet_l1_ratio=(0.5, 1.0))
    gram = run_method("ElasticNet", data, settings, seed)
    full = run_method("ElasticNet", data, MethodsSection(
        elasticnet_folds=3, elasticnet_l1_ratio=(0.5, 1.0), elasticnet_precompute=False), seed)
    assert gram.diagnostics.converged and full.diagnostics.converged
    # same selected model: penalty and mixing ratio (the CV paths are the same computation)
    assert gram.diagnostics.message == full.diagnostics.message
    Xc = data.templates - data.templates.mean(axis=1, keepdims=True)
    yc = data.delta - data.delta.mean()
    mu = np.linalg.eigvalsh(Xc @ Xc.T)[0]
    bound = 2.0 * np.sqrt(2.0 * 1e-4 * (yc @ yc) / mu)  # tol = 1e-4, two solutions
    assert np.linalg.norm(gram.a - full.a) <= bound
    np.testing.assert_allclose(gram.corrected, data.delta - gram.a @ data.templates, atol=1e-12)
