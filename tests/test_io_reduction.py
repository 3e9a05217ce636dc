"""Reduction over realisations (Tables 2 and 3, recovery) on ensembles with known answers.

Tolerances come from each estimator's own scatter: binomial bands for rejection
fractions, k sigma / sqrt(N) for means, exact identities at 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hpcsys.io import (
    CalibrationData,
    DiagnosticsArrays,
    JackknifeArrays,
    LRTArrays,
    MethodArrays,
    MLEArrays,
    ScenarioData,
    TimingArrays,
    render_report,
)
from hpcsys.reduction import recovery_table, table2, table3

K, B = 3, 6
METHODS = ("OLS", "ISD-1", "MCMC-comb")
MODELS = ("additive", "multiplicative", "combined")
PAIRS = ("null/additive", "additive/combined")
LIKES = ("gaussian",)


def scenario(name: str, N: int, rng: np.random.Generator, *, lam: np.ndarray | None = None,
             dof: int = K, w_true: np.ndarray | None = None, w_obs: np.ndarray | None = None,
             w_corr: np.ndarray | None = None, est_noise: float = 0.01,
             err_scale: float = 1.0, indep_scale: float = 1 / 3,
             wald: np.ndarray | None = None, jk_scale: float = 0.0) -> ScenarioData:
    """A ScenarioData whose pieces the test controls; the rest is seeded noise."""
    M, Q, L = len(METHODS), len(PAIRS), len(LIKES)
    a_true = np.tile(rng.normal(0, 0.05, K), (N, 1))
    b_true = np.tile(rng.normal(0, 0.05, K), (N, 1))
    if lam is None:
        lam = rng.chisquare(dof, size=(N, Q, L))
    pvalue = stats.chi2.sf(lam, dof)
    if wald is None:
        wald = rng.chisquare(dof, size=(N, Q, L))
    w_true = rng.normal(size=(N, B)) if w_true is None else w_true
    w_obs = w_true if w_obs is None else w_obs
    w_corr = np.repeat(w_true[:, None], M, axis=1) if w_corr is None else w_corr
    methods = {}
    for meth, model in zip(METHODS, MODELS):
        a = a_true + rng.normal(0, est_noise, (N, K))
        b = b_true + rng.normal(0, est_noise, (N, K))
        err = np.full((N, K), est_noise * err_scale)
        ind = np.full((N, K), est_noise * indep_scale)
        nanK = np.full((N, K), np.nan)
        methods[meth] = MethodArrays(
            name=meth, model=model, a=a, b=b, a_err=err, b_err=err,
            cov=np.zeros((N, 2 * K, 2 * K)), a_mean=nanK, b_mean=nanK, a_std=nanK, b_std=nanK,
            a_err_indep=ind, b_err_indep=ind, cov_indep=np.zeros((N, 2 * K, 2 * K)),
            sigma=np.ones(N), diagnostics=DiagnosticsArrays(
                converged=np.ones(N, bool), n_iterations=np.ones(N, int),
                acceptance_fraction=np.full(N, np.nan), autocorr_time=np.full(N, np.nan),
                effective_samples=np.full(N, np.nan), hit_pole=np.zeros(N, bool),
                wall_time=np.zeros(N), message=np.array([""] * N)))
    F = 4
    z = np.zeros
    return ScenarioData(
        scenario=name, index=np.arange(N), seed_words=z((N, 4), np.uint32), a_true=a_true,
        b_true=b_true, w_true=w_true, w_obs=w_obs, w_corrected=w_corr,
        w_corrected_diag=w_corr.copy(), w_remeasured=w_corr.copy(), methods=methods,
        mle=MLEArrays(*(z((N, F, L)),) * 3, *(z((N, F, L, K)),) * 4, z((N, F, L)),
                      z((N, F, L)), z((N, F, L, 2 * K, 2 * K)), z((N, F, L, K)), z((N, F, L, K))),
        lrt=LRTArrays(lam, pvalue, np.full((N, Q), dof), wald, stats.chi2.sf(wald, dof),
                      np.full((N, Q), dof)),
        jackknife=JackknifeArrays(
            np.full(N, 40), np.broadcast_to((est_noise * jk_scale) ** 2 * np.eye(2 * K),
                                            (N, M, 2 * K, 2 * K)).copy(),
            z((N, F, L, K)), z((N, F, L, K))),
        timings=TimingArrays(z((N, 6)), z(N)))


def calibration_set(scenarios: tuple[str, ...], lam: np.ndarray, dof: int = K
                    ) -> CalibrationData:
    """A CalibrationData holding the given calibration lambdas (M, S, Q, L)."""
    M, S = lam.shape[:2]
    return CalibrationData(
        scenarios=scenarios, bootstrap_models=("additive", "multiplicative"),
        index=np.arange(M), seed_words=np.zeros((M, 4), np.uint32), statistic=lam,
        null_pvalue=stats.chi2.sf(lam[:, 0], dof), bootstrap_a=np.zeros((S, 2, K)),
        bootstrap_b=np.zeros((S, 2, K)))


def test_table2_wilks_size_and_power() -> None:
    rng = np.random.default_rng(1)
    N, M, alpha = 400, 399, 0.05
    null = scenario("null", N, rng)
    strong = scenario("additive", N, rng, lam=rng.chisquare(K, (N, 2, 1)) + 60.0)
    cal = calibration_set(("null", "additive"), rng.chisquare(K, (M, 2, 2, 1)))
    t = table2({"null": null, "additive": strong}, PAIRS, LIKES, alpha, cal)
    band = 3 * np.sqrt(alpha * (1 - alpha) / N)
    assert np.all(np.abs(t.fraction_wilks[0] - alpha) < band)  # correct size under the null
    np.testing.assert_allclose(t.error_wilks[0], np.sqrt(t.fraction_wilks[0] *
                                                         (1 - t.fraction_wilks[0]) / N))
    assert np.all(t.fraction_wilks[1] == 1.0) and np.all(t.fraction_calibrated[1] == 1.0)
    # independent calibration set: binomial band of the evaluation and of the calibration
    band_cal = 3 * np.sqrt(alpha * (1 - alpha) * (1 / N + 1 / M))
    assert np.all(np.abs(t.fraction_calibrated[0] - alpha) < band_cal)
    np.testing.assert_allclose(t.critical_lambda[:, :, 0],
                               np.quantile(cal.statistic[:, :, :, 0], 1 - alpha, axis=0))
    assert t.n_calibration == M
    # null/additive is a size in the null scenario, a power in the additive one
    np.testing.assert_array_equal(t.null_true, [[True, True], [False, True]])
    # the Wilks size of the tests of the null model on the calibration's exact null mocks
    k = np.sum(cal.null_pvalue[:, 0, 0] < alpha)
    np.testing.assert_allclose(t.calibration_wilks_fraction[0, 0], k / M, rtol=1e-12)
    assert np.isnan(t.calibration_wilks_fraction[1, 0])  # additive/combined: bootstrap


def test_table2_calibrated_pvalue_is_the_exact_formula() -> None:
    """p = (1 + #{lam_cal >= lam}) / (1 + M) from the calibration set alone, per cell."""
    rng = np.random.default_rng(11)
    N, M, alpha = 30, 59, 0.05
    ev = scenario("null", N, rng)
    lam_cal = rng.chisquare(K, (M, 1, 2, 1))
    t = table2({"null": ev}, PAIRS, LIKES, alpha, calibration_set(("null",), lam_cal))
    for q in range(2):
        lam = ev.lrt.statistic[:, q, 0]
        p = (1 + (lam_cal[:, 0, q, 0][None, :] >= lam[:, None]).sum(axis=1)) / (1 + M)
        assert t.fraction_calibrated[0, q, 0] == np.mean(p <= alpha)


def test_table2_calibration_fixes_an_anticonservative_wilks() -> None:
    """lambda 3x wider than chi2 (correlated pixels): Wilks over-rejects, calibration does not."""
    rng = np.random.default_rng(2)
    N, M, alpha = 400, 399, 0.05
    wide = lambda *shape: 3.0 * rng.chisquare(K, shape)  # noqa: E731
    t = table2({"null": scenario("null", N, rng, lam=wide(N, 2, 1))}, PAIRS, LIKES, alpha,
               calibration_set(("null",), wide(M, 1, 2, 1)))
    assert np.all(t.fraction_wilks[0] > 0.3)
    band = 3 * np.sqrt(alpha * (1 - alpha) * (1 / N + 1 / M))
    assert np.all(np.abs(t.fraction_calibrated[0] - alpha) < band)


def test_table2_without_calibration_set() -> None:
    rng = np.random.default_rng(3)
    t = table2({"additive": scenario("additive", 20, rng)}, PAIRS, LIKES, 0.05)
    assert t.n_calibration == 0 and np.all(np.isnan(t.fraction_calibrated))
    assert np.all(np.isfinite(t.fraction_wilks))
    from hpcsys.io import render_report

    assert "no calibration set" in render_report(t, None, None, "text")
    with pytest.raises(ValueError, match="lacks scenario"):
        table2({"additive": scenario("additive", 20, rng)}, PAIRS, LIKES, 0.05,
               calibration_set(("null",), rng.chisquare(K, (5, 1, 2, 1))))


def test_table3_exact_shift_and_unbiased_methods() -> None:
    rng = np.random.default_rng(4)
    N = 60
    w0 = np.geomspace(1.0, 0.05, B)
    L = np.tril(rng.normal(0, 0.02, (B, B))) + np.diag(np.full(B, 0.05))
    w_true = w0 + rng.normal(size=(N, B)) @ L.T
    c = 0.3
    w_obs = w_true + c * w0  # uncorrected: an amplitude offset
    M = len(METHODS)
    w_corr = np.repeat(w_true[:, None], M, axis=1)
    w_corr[:, 2] += rng.normal(0, 0.01, (N, B))  # a noisy but unbiased method
    t = table3({"s": scenario("s", N, rng, w_true=w_true, w_obs=w_obs, w_corr=w_corr)}, METHODS)
    # independent GLS computation (Berlfein+24 Eqs. 25-26)
    C = np.cov(w_true, rowvar=False)
    Ci = (N - B - 2) / (N - 1) * np.linalg.inv(C)
    w_ref = w_true.mean(0)
    sigma = (w_ref @ Ci @ w_ref) ** -0.5
    expected = c * (w_ref @ Ci @ w0) / (w_ref @ Ci @ w_ref) / sigma
    assert t.sigma_A[0] == pytest.approx(sigma, rel=1e-12)
    assert t.hartlap_factor[0] == pytest.approx((N - B - 2) / (N - 1), rel=1e-15)
    assert t.mean_dA_over_sigma[0, 0] == pytest.approx(expected, rel=1e-10)
    assert t.error_dA_over_sigma[0, 0] < 1e-10  # the same shift in every realisation
    # estimators: uncorrected, OLS and ISD-1 (exact w_true), MCMC-comb (noisy, unbiased)
    assert t.mean_dA_over_sigma[0, 1] == 0.0 and t.mean_dA_over_sigma[0, 2] == 0.0
    assert t.mean_dA_over_sigma[0, 3] != 0.0
    assert abs(t.mean_dA_over_sigma[0, 3]) < 4 * t.error_dA_over_sigma[0, 3]
    assert t.estimators == ("uncorrected", *METHODS)
    # what each correction changed, paired: the fit is linear, so the mean shift is
    # exactly the difference of the mean biases; OLS and ISD-1 undo the offset exactly
    np.testing.assert_allclose(t.mean_shift_over_sigma[0],
                               t.mean_dA_over_sigma[0] - t.mean_dA_over_sigma[0, 0], atol=1e-12)
    assert t.mean_shift_over_sigma[0, 0] == 0.0 and t.error_shift_over_sigma[0, 0] == 0.0
    assert t.error_shift_over_sigma[0, 1] < 1e-10
    assert t.error_shift_over_sigma[0, 3] == pytest.approx(t.error_dA_over_sigma[0, 3], rel=1e-6)


@pytest.mark.parametrize("N", [2, 3, B, B + 2])
def test_table3_at_few_realisations_uses_shrinkage(N: int) -> None:
    """N <= B + 2: no Hartlap inverse; Ledoit-Wolf (diagonal where its shrinkage
    vanishes, N = 2) gives finite entries and says so.

    The GLS amplitude is linear in w, so ``w_x = w_true + c w_ref`` gives
    ``dA / sigma_A = c / sigma_A`` exactly whatever the covariance.
    """
    from hpcsys.io import render_report
    from hpcsys.reduction import w_covariance_inverse

    rng = np.random.default_rng(5)
    w_true = rng.normal(1.0, 0.1, (N, B)) * np.linspace(1.0, 0.2, B)
    c = 0.3
    w_ref = w_true.mean(axis=0)
    w_corr = np.repeat(w_true[:, None], len(METHODS), axis=1)
    w_corr[:, 0] += c * w_ref
    d = scenario("s", N, rng, w_true=w_true, w_obs=w_true + c * w_ref, w_corr=w_corr)
    t = table3({"s": d}, METHODS)
    kind = "diagonal covariance" if N == 2 else "Ledoit-Wolf shrinkage"
    assert np.isnan(t.hartlap_factor[0]) and t.covariance_note[0].startswith(kind)
    assert np.all(np.isfinite(t.mean_dA_over_sigma)) and np.all(np.isfinite(t.error_dA_over_sigma))
    assert np.all(np.isfinite(t.mean_dA_over_sigma_diag))
    np.testing.assert_allclose(t.mean_dA_over_sigma[0, :2], c / t.sigma_A[0], rtol=1e-10)
    np.testing.assert_allclose(t.mean_dA_over_sigma[0, 2:], 0.0, atol=1e-12)
    cinv, _, _ = w_covariance_inverse(w_true)
    assert np.all(np.linalg.eigvalsh(cinv) > 0)
    text = render_report(None, t, None, "text")
    assert f"Covariance (s): {kind}" in text and "nan" not in text
    big = table3({"s": scenario("s", B + 3, rng)}, METHODS)
    assert big.hartlap_factor[0] == pytest.approx(1 / (B + 2))
    assert "Hartlap factor" in big.covariance_note[0]


def test_recovery_honest_and_overconfident_errors() -> None:
    rng = np.random.default_rng(6)
    N = 400
    honest = scenario("honest", N, rng, est_noise=0.01, err_scale=1.0, jk_scale=2.0)
    over = scenario("over", N, rng, est_noise=0.01, err_scale=1 / 3)
    r = recovery_table({"honest": honest, "over": over}, METHODS, K)
    assert r.parameters == ("a_0", "a_1", "a_2", "b_0", "b_1", "b_2")
    # OLS is additive: no b; MCMC-comb both; ISD-1 weights the map: judged through w only
    assert np.all(np.isnan(r.bias[:, 0, K:])) and np.all(np.isfinite(r.bias[:, 0, :K]))
    assert np.all(np.isnan(r.bias[:, 1])) and np.all(np.isfinite(r.bias[:, 2]))
    assert r.w_only == ("ISD-1",)
    from hpcsys.io import render_report

    assert "ISD-1: judged through w(theta) only" in render_report(None, None, r, "text")
    ok = np.isfinite(r.bias[0])
    # unbiased estimators: bias / (scatter / sqrt N) ~ N(0, 1)
    assert np.all(np.abs(r.bias_over_error[0][ok]) < 4.5)
    # honest errors: pulls of unit width, nominal coverage (binomial bands)
    se_std = 1 / np.sqrt(2 * (N - 1))
    assert np.all(np.abs(r.pull_std[0][ok] - 1) < 5 * se_std)
    assert np.all(np.abs(r.coverage68[0][ok] - 0.6827) < 4 * np.sqrt(0.68 * 0.32 / N))
    assert np.all(np.abs(r.coverage95[0][ok] - 0.9545) < 4 * np.sqrt(0.95 * 0.05 / N))
    assert np.all(np.abs(r.error_ratio[0][ok] - 1) < 5 * se_std)
    # errors 3x too small: scatter / error ~ 3, pulls ~ 3, coverage far below nominal
    assert np.all(np.abs(r.error_ratio[1][ok] - 3) < 15 * se_std)
    assert np.all(np.abs(r.pull_std[1][ok] - 3) < 15 * se_std)
    assert np.all(r.coverage68[1][ok] < 0.35)
    # the independent-pixel errors (3x too small here) have their own coverage columns
    assert np.all(r.coverage68_indep[0][ok] < 0.35)
    assert np.all(np.abs(r.coverage95_indep[0][ok] - 2 * stats.norm.cdf(1.96 / 3) + 1)
                  < 4 * np.sqrt(0.5 * 0.5 / N))
    # and the jackknife errors (2x too large here; absent in "over": nan)
    # (pulls of width 1/2: the 1-sigma interval covers P(|Z| < 2))
    assert np.all(np.abs(r.coverage68_jackknife[0][ok] - (2 * stats.norm.cdf(2.0) - 1))
                  < 4 * np.sqrt(0.05 * 0.95 / N))
    assert np.all(np.isnan(r.coverage68_jackknife[1]))


def test_table2_wald_column() -> None:
    """The Wald rejection fraction: size alpha for chi2 statistics, power for large ones."""
    rng = np.random.default_rng(7)
    N, alpha = 400, 0.05
    null = scenario("null", N, rng, lam=3.0 * rng.chisquare(K, (N, 2, 1)))
    strong = scenario("additive", N, rng, wald=rng.chisquare(K, (N, 2, 1)) + 60.0)
    t = table2({"null": null, "additive": strong}, PAIRS, LIKES, alpha)
    band = 3 * np.sqrt(alpha * (1 - alpha) / N)
    assert np.all(np.abs(t.fraction_wald[0] - alpha) < band)
    assert np.all(t.fraction_wilks[0] > 0.3)  # the wide lambda: Wilks over-rejects
    np.testing.assert_allclose(t.error_wald[0], np.sqrt(t.fraction_wald[0]
                                                        * (1 - t.fraction_wald[0]) / N))
    assert np.all(t.fraction_wald[1] == 1.0)
    text = render_report(t, None, None, "text")
    assert "Wald" in text and "assumes independent pixels" in text


def test_report_warns_when_too_few_calibration_mocks() -> None:
    from hpcsys.io import render_report

    rng = np.random.default_rng(7)
    small = {"null": scenario("null", 14, rng), "additive": scenario("additive", 14, rng)}
    cal = calibration_set(("null", "additive"), rng.chisquare(K, (13, 2, 2, 1)))
    t = table2(small, PAIRS, LIKES, 0.05, cal)
    assert np.all(t.fraction_calibrated == 0.0)  # p >= 1/14 > 0.05 for every draw
    assert "13 calibration mocks cannot calibrate" in render_report(t, None, None, "text")
    big = calibration_set(("null",), rng.chisquare(K, (40, 1, 2, 1)))
    assert "cannot calibrate" not in render_report(
        table2({"null": small["null"]}, PAIRS, LIKES, 0.05, big), None, None, "text")
