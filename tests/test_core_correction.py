"""PCA rotation (App. A), the w(theta) correction (Eqs. 15-16, 21) and reduction statistics."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.stats

from hpcsys.core.contamination import contaminate
from hpcsys.core.correction import (
    contaminate_w,
    correct_w,
    correct_w_diag,
    correct_w_unbiased,
    debias,
    quadratic_form,
)
from hpcsys.core.fit import fit_mle
from hpcsys.core.pca import cov_to_original, pca_rotation, rotate_templates, to_original
from hpcsys.core.stats import (
    amplitude_fit,
    binomial_fraction,
    empirical_pvalue,
    hartlap_inverse,
    likelihood_ratio_test,
    sample_covariance,
)
from hpcsys.seeds import rng

MASTER = 20240603


def correlated_templates(K=6, npix=4000, index=0):
    gen = rng(MASTER, "synthetic", 200, index)
    mix = np.eye(K) + 0.6 * gen.standard_normal((K, K))
    return mix @ gen.standard_normal((K, npix)), gen


# --------------------------------------------------------------------------- PCA


def test_pca_rotation_identities():
    T, gen = correlated_templates()
    K, npix = T.shape
    rot = pca_rotation(T)
    V, D = np.asarray(rot.V), np.asarray(rot.D)
    C = T @ T.T / npix
    np.testing.assert_allclose(V @ V.T, np.eye(K), atol=1e-12)
    np.testing.assert_allclose(V @ np.diag(D) @ V.T, C, rtol=1e-12, atol=1e-12 * np.abs(C).max())
    assert np.all(np.diff(D) <= 0)
    Tr = np.asarray(rotate_templates(T, rot))
    np.testing.assert_allclose(Tr @ Tr.T / npix, np.diag(D), atol=1e-12 * D.max())
    # coefficients: a'.(V^T T) = (V a').T, and the round trip back
    a_rot = gen.standard_normal(K)
    a = np.asarray(to_original(a_rot, rot))
    np.testing.assert_allclose(a_rot @ Tr, a @ T, rtol=1e-12, atol=1e-12 * np.abs(a @ T).max())
    np.testing.assert_allclose(V.T @ a, a_rot, atol=1e-12)
    A = gen.standard_normal((K, K))
    cov_rot = A @ A.T
    cov = np.asarray(cov_to_original(cov_rot, rot))
    np.testing.assert_allclose(V.T @ cov @ V, cov_rot, atol=1e-12 * np.abs(cov_rot).max())
    # batched coefficients
    batch = gen.standard_normal((3, K))
    np.testing.assert_allclose(np.asarray(to_original(batch, rot)), batch @ V.T, atol=1e-13)


def test_fit_on_rotated_templates_maps_back():
    """Fitting on V^T T and mapping back equals fitting on T (the model is basis-independent)."""
    T, gen = correlated_templates(K=4, npix=3000, index=1)
    a = np.array([0.05, -0.03, 0.0, 0.02])
    b = np.array([0.01, 0.0, -0.02, 0.01]) / 3
    delta = np.asarray(contaminate(0.3 * gen.standard_normal(T.shape[1]), T, a, b))
    rot = pca_rotation(T)
    direct = fit_mle(delta, T, "combined", "gaussian")
    rotated = fit_mle(delta, rotate_templates(T, rot), "combined", "gaussian")
    np.testing.assert_allclose(to_original(rotated.a, rot), direct.a, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(to_original(rotated.b, rot), direct.b, rtol=1e-7, atol=1e-10)
    assert rotated.loglike == pytest.approx(direct.loglike, rel=1e-12)
    K = T.shape[0]
    cov_a = np.asarray(cov_to_original(rotated.cov[:K, :K], rot))
    np.testing.assert_allclose(cov_a, direct.cov[:K, :K], rtol=1e-6)


# --------------------------------------------------------------------------- correction


def test_debias_equation_21():
    coef = np.array([0.3, -0.3, 0.1, -0.05, 0.0])
    var = np.array([0.05, 0.05, 0.02, 0.01, 0.01])
    got = np.asarray(debias(coef, var))
    want = np.sign(coef) * np.sqrt(np.maximum(coef**2 - var, 0.0))
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(got**2, np.maximum(coef**2 - var, 0.0), atol=1e-15)
    assert got[1] < 0 and got[3] == 0.0


def test_correct_w_inverts_forward_model():
    gen = rng(MASTER, "synthetic", 201)
    B, K = 12, 5
    theta = np.geomspace(0.1, 3.0, B)
    w_true = 0.01 * theta**-0.8
    # a valid set of template correlation matrices: Xi(theta) = sum of PSD terms
    L = gen.standard_normal((K, K))
    xi = np.exp(-theta)[:, None, None] * (L @ L.T)[None] + 0.1 * np.eye(K)[None] * theta[:, None, None] ** -1
    a = gen.normal(0, 0.03, K)
    b = gen.normal(0, 0.02, K)
    w_obs = np.asarray(contaminate_w(w_true, a, b, xi))
    assert np.all(w_obs != w_true)
    np.testing.assert_allclose(np.asarray(correct_w(w_obs, a, b, xi)), w_true, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(quadratic_form(a, xi)),
                               np.einsum("k,bkl,l->b", a, xi, a), rtol=1e-13)
    # autocorrelations only: exact when Xi is diagonal, biased otherwise
    auto = np.einsum("bkk->bk", xi)
    xi_diag = auto[:, :, None] * np.eye(K)[None]
    w_obs_diag = np.asarray(contaminate_w(w_true, a, b, xi_diag))
    np.testing.assert_allclose(np.asarray(correct_w_diag(w_obs_diag, a, b, auto)), w_true, rtol=1e-12)
    assert np.max(np.abs(np.asarray(correct_w_diag(w_obs, a, b, auto)) - w_true)) > 1e-6
    # batched over realisations
    wb = np.stack([w_obs, 2 * w_obs])
    ab = np.stack([a, a])
    bb = np.stack([b, b])
    out = np.asarray(correct_w(wb, ab, bb, xi))
    assert out.shape == (2, B)
    np.testing.assert_allclose(out[0], w_true, rtol=1e-12)


# --------------------------------------------------------------------------- statistics


def test_unbiased_correction_removes_the_noise_of_the_quadratic_forms():
    """Noisy coefficients with a full covariance: tr(Xi C) makes the correction unbiased.

    Null truth (a = b = 0): the truncated per-coefficient Eq. 21 (``debias``)
    over-corrects on average (E[max(a^2 - var, 0)] > 0), the trace form does
    not; tested on 4000 draws against the mean's own standard error. With
    C = 0 the trace form is exactly ``correct_w``.
    """
    gen = rng(MASTER, "synthetic", 210)
    K, B, n = 4, 3, 4000
    L = gen.standard_normal((K, K))
    xi = np.stack([np.exp(-t) * (L @ L.T + np.eye(K)) for t in range(B)])
    M = 0.3 * gen.standard_normal((K, K))
    C = 1e-4 * (M @ M.T + 0.2 * np.eye(K))  # correlated coefficient noise
    w_true = np.array([0.02, 0.01, 0.005])
    a = gen.multivariate_normal(np.zeros(K), C, size=n)
    zero = np.zeros((n, K))
    w_obs = contaminate_w(np.broadcast_to(w_true, (n, B)), zero, zero, xi)
    noisy = np.asarray(correct_w_unbiased(w_obs, a, zero, np.broadcast_to(C, (n, K, K)),
                                          np.zeros((n, K, K)), xi))
    shift = noisy - w_true
    assert np.all(np.abs(shift.mean(0)) < 4 * shift.std(0, ddof=1) / np.sqrt(n)), shift.mean(0)
    trunc = np.asarray(correct_w(w_obs, np.asarray(debias(a, np.diag(C))), zero, xi)) - w_true
    assert np.all(trunc.mean(0) < -6 * trunc.std(0, ddof=1) / np.sqrt(n)), trunc.mean(0)
    b = 0.01 * gen.standard_normal((n, K))
    np.testing.assert_allclose(
        np.asarray(correct_w_unbiased(w_obs, a, b, np.zeros((n, K, K)), np.zeros((n, K, K)), xi)),
        np.asarray(correct_w(w_obs, a, b, xi)), rtol=1e-13)


def test_lrt_pvalue_is_chi2_survival():
    lnl_null = np.array([-100.0, -50.0, 10.0])
    lnl_alt = np.array([-95.0, -49.0, 10.0])
    res = likelihood_ratio_test(lnl_null, lnl_alt, 3)
    np.testing.assert_allclose(np.asarray(res.statistic), [10.0, 2.0, 0.0])
    np.testing.assert_allclose(np.asarray(res.pvalue), scipy.stats.chi2.sf([10.0, 2.0, 0.0], 3),
                               rtol=1e-12)
    assert np.all(np.asarray(res.dof) == 3)


def test_empirical_pvalue():
    null = np.arange(1.0, 100.0)  # 99 null statistics
    p = np.asarray(empirical_pvalue(np.array([0.5, 50.0, 99.0, 200.0]), np.append(null, np.nan)))
    np.testing.assert_allclose(p, [1.0, 51 / 100, 2 / 100, 1 / 100])
    # exact size on exchangeable draws: P(p <= alpha) = alpha for alpha = k/(M+1)
    gen = rng(MASTER, "synthetic", 202)
    draws = gen.standard_normal((4000, 20))
    pv = np.asarray(jax.vmap(empirical_pvalue)(draws[:, 0], draws[:, 1:]))
    np.testing.assert_allclose(np.sort(np.unique(pv)), np.arange(1, 21) / 20)
    frac = np.mean(pv <= 0.05)
    assert abs(frac - 0.05) < 3 * np.sqrt(0.05 * 0.95 / pv.size), frac


def test_hartlap_and_sample_covariance():
    gen = rng(MASTER, "synthetic", 203)
    B, n = 4, 60
    x = gen.standard_normal((n, B)) @ np.diag([1.0, 2.0, 0.5, 1.5])
    cov = np.asarray(sample_covariance(x))
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-12)
    inv = np.asarray(hartlap_inverse(cov, n))
    np.testing.assert_allclose(inv, (n - B - 2) / (n - 1) * np.linalg.inv(cov), rtol=1e-12)
    with pytest.raises(ValueError, match="n_realisations"):
        hartlap_inverse(cov, B + 2)


def test_amplitude_fit_equations_25_26():
    gen = rng(MASTER, "synthetic", 204)
    B = 8
    w_ref = np.geomspace(1e-2, 1e-4, B)
    L = gen.standard_normal((B, B)) * 1e-4
    cov = L @ L.T + np.diag((0.1 * w_ref) ** 2)
    cinv = np.linalg.inv(cov)
    A_true = np.array([1.0, 1.2, 0.7])
    res = amplitude_fit(A_true[:, None] * w_ref, w_ref, cinv)
    np.testing.assert_allclose(np.asarray(res.A), A_true, rtol=1e-12)
    sigma = 1 / np.sqrt(w_ref @ cinv @ w_ref)
    np.testing.assert_allclose(np.asarray(res.sigma_A), sigma, rtol=1e-12)
    # GLS: the scatter of A over noisy realisations is sigma_A
    noise = gen.multivariate_normal(np.zeros(B), cov, size=4000)
    A = np.asarray(amplitude_fit(w_ref + noise, w_ref, cinv).A)
    assert abs(A.mean() - 1.0) < 4 * sigma / np.sqrt(A.size)
    assert abs(A.std() / sigma - 1) < 4 / np.sqrt(2 * A.size)


def test_binomial_fraction():
    f, e = binomial_fraction(np.array([5, 0, 200]), 200)
    np.testing.assert_allclose(np.asarray(f), [0.025, 0.0, 1.0])
    np.testing.assert_allclose(np.asarray(e), [np.sqrt(0.025 * 0.975 / 200), 0.0, 0.0])
