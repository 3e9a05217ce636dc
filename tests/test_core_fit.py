"""Maximum-likelihood fits and the likelihood-ratio test on synthetic maps.

Synthetic maps: templates with a fixed correlation, an independent-pixel true
field (Gaussian for the Gaussian likelihood, zero-mean skew-normal with
``g = 3`` for the skew-normal likelihood, so that every parameter is
identifiable: with a Gaussian field the skew-normal ``g`` sits where its
Fisher information vanishes), contaminated with known ``(a, b)``. All random
numbers come from the ``synthetic`` stream of :mod:`hpcsys.seeds`.

Shapes are shared between tests (K = 5 or 25, 20,000 pixels, batches of 50
maps) so each (model, likelihood, K) compiles once.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hpcsys.core.contamination import contaminate
from hpcsys.core.fit import MLEResult, fit_mle, loglike_derivatives
from hpcsys.core.likelihood import loglike, n_params, pack, param_layout
from hpcsys.core.models import LIKELIHOODS, MODELS
from hpcsys.core.stats import binomial_fraction, likelihood_ratio_test
from hpcsys.seeds import rng

MASTER = 20240602
NPIX = 20_000
BATCH = 50
SIGMA = 0.3  # scale of the true field
G_TRUE = 3.0  # skew-normal shape of the true field for skew-normal fits


def templates_for(K: int) -> np.ndarray:
    """K correlated, standardised templates (fixed per K)."""
    gen = rng(MASTER, "synthetic", 0, K)
    mix = np.eye(K) + 0.3 * gen.standard_normal((K, K)) / np.sqrt(K)
    t = mix @ gen.standard_normal((K, NPIX))
    t -= t.mean(axis=1, keepdims=True)
    return t / t.std(axis=1, keepdims=True)


def truth_for(model: str, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Known coefficients: a ~ 0.02-0.05, b ~ 0.01-0.04 with alternating signs, one zero."""
    has_a, has_b = MODELS[model]
    k = np.arange(K)
    sign = np.where(k % 2 == 0, 1.0, -1.0)
    a = sign * (0.02 + 0.03 * k / K) * has_a
    b = -sign * (0.01 + 0.03 * k / K) * has_b
    a[-1] = 0.0
    b[-1] = 0.0
    return a, b


def draw_fields(likelihood: str, n: int, *index: int) -> np.ndarray:
    """``n`` independent true fields with zero mean and scale ``SIGMA``."""
    gen = rng(MASTER, "synthetic", *index)
    if likelihood == "gaussian":
        return SIGMA * gen.standard_normal((n, NPIX))
    loc = -SIGMA * G_TRUE / np.sqrt(1 + G_TRUE**2) * np.sqrt(2 / np.pi)
    return scipy.stats.skewnorm.rvs(G_TRUE, loc=loc, scale=SIGMA, size=(n, NPIX), random_state=gen)


def true_theta(model: str, likelihood: str, a, b) -> np.ndarray:
    return np.asarray(pack(model, likelihood, a, b, SIGMA, G_TRUE if likelihood == "skewnormal" else None))


def zscore(n_tests: int, family_alpha: float = 0.0027) -> float:
    """Two-sided threshold with family-wise false-alarm rate of one 3-sigma test (Bonferroni)."""
    return max(3.0, float(scipy.stats.norm.isf(family_alpha / (2 * n_tests))))


def fit_mle_many(deltas, T, model: str, likelihood: str) -> list[MLEResult]:
    """``jax.vmap`` of :func:`fit_mle` over maps, split into one result per map."""
    batched = jax.vmap(functools.partial(fit_mle, templates=jnp.asarray(T), model=model,
                                         likelihood=likelihood))(jnp.asarray(deltas))
    assert batched.theta.shape[0] == len(deltas)
    return [jax.tree_util.tree_map(lambda x, i=i: np.asarray(x)[i], batched)
            for i in range(len(deltas))]


@functools.cache
def batch_fits(model: str, likelihood: str, K: int):
    """50 maps contaminated by ``model`` with known (a, b), and their fits (shared by tests)."""
    T = templates_for(K)
    a, b = truth_for(model, K)
    idx = (7, list(MODELS).index(model), LIKELIHOODS.index(likelihood), K)
    fields = draw_fields(likelihood, BATCH, *idx)
    deltas = np.asarray(contaminate(fields, T, a, b))
    return T, a, b, deltas, fit_mle_many(deltas, T, model, likelihood)


# --------------------------------------------------------------------------- exactness


def test_closed_form_equals_least_squares():
    T = templates_for(5)
    a, _ = truth_for("additive", 5)
    delta = draw_fields("gaussian", 1, 1, 0)[0] + a @ T
    res = fit_mle(delta, T, "additive", "gaussian")
    a_ls, *_ = np.linalg.lstsq(T.T, delta, rcond=None)
    resid = delta - a_ls @ T
    np.testing.assert_allclose(res.a, a_ls, rtol=1e-10)
    assert res.s == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-12)
    assert res.converged and res.n_iter == 0 and not res.hit_pole
    # errors: inverse Hessian = s^2 (T T^T)^-1 for the additive Gaussian model
    np.testing.assert_allclose(res.a_err, res.s * np.sqrt(np.diag(np.linalg.inv(T @ T.T))), rtol=1e-8)
    assert np.all(res.b == 0) and np.all(np.isnan(res.b_err)) and res.g == 0.0
    null = fit_mle(delta, T, "null", "gaussian")
    assert null.s == pytest.approx(np.sqrt(np.mean(delta**2)), rel=1e-12)


@pytest.mark.parametrize(("model", "likelihood"), list(itertools.product(MODELS, LIKELIHOODS)))
def test_fit_reaches_the_maximum(model, likelihood):
    """Zero gradient, negative-definite Hessian, and no random nearby point is higher."""
    K = 5
    T, _, _, deltas, fits = batch_fits(model, likelihood, K)
    gen = rng(MASTER, "synthetic", 3, list(MODELS).index(model), LIKELIHOODS.index(likelihood))
    for delta, res in zip(deltas[:2], fits[:2]):
        assert res.converged, res.message
        assert res.theta.shape == (n_params(model, likelihood, K),)
        theta = jnp.asarray(res.theta)
        val, grad, hess = loglike_derivatives(theta, delta, T, model, likelihood)
        assert float(val) == pytest.approx(res.loglike, rel=1e-13)
        assert np.all(np.linalg.eigvalsh(-np.asarray(hess)) > 0)
        assert float(grad @ np.linalg.solve(-np.asarray(hess), grad)) < 2e-9  # Newton decrement
        # perturbations of ~0.3 sigma in random directions all lower lnL
        steps = gen.standard_normal((64, res.theta.size)) @ np.linalg.cholesky(res.cov).T * 0.3
        around = np.asarray(loglike(jnp.asarray(res.theta + steps), delta, T, model, likelihood))
        assert np.all(around < res.loglike)


def test_vmapped_fit_equals_single_fits():
    T, _, _, deltas, many = batch_fits("combined", "skewnormal", 5)
    for d, m in zip(deltas[:2], many[:2]):
        one = fit_mle(d, T, "combined", "skewnormal")
        np.testing.assert_allclose(m.theta, one.theta, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(m.cov, one.cov, rtol=1e-6)
        assert m.loglike == pytest.approx(one.loglike, rel=1e-12)
        assert m.converged and one.converged


def test_pole_is_never_crossed():
    """A start next to the pole 1 + b.t_p = 0 ends inside the domain and says so."""
    T = templates_for(5)
    _, b = truth_for("multiplicative", 5)
    field = draw_fields("gaussian", 1, 5, 0)[0]
    delta = np.asarray(contaminate(field, T, np.zeros(5), b))
    lay = param_layout("multiplicative", "gaussian", 5)
    p = int(np.argmax(T[0]))
    theta0 = np.zeros(lay.size)
    theta0[lay.b.start] = -0.999 / T[0, p]  # 1 + b.t_p = 0.001 on pixel p
    theta0[lay.s] = 1.0
    res = fit_mle(delta, T, "multiplicative", "gaussian", theta0=theta0)
    assert np.min(1 + res.b @ T) > 0
    assert res.converged
    assert res.hit_pole  # the first Newton step from there crosses the pole
    ref = fit_mle(delta, T, "multiplicative", "gaussian")
    np.testing.assert_allclose(res.theta, ref.theta, rtol=1e-7, atol=1e-9)


def test_bad_input_raises():
    T = templates_for(5)
    delta = draw_fields("gaussian", 1, 6, 0)[0]
    with pytest.raises(ValueError, match="model"):
        fit_mle(delta, T, "quadratic", "gaussian")
    with pytest.raises(ValueError, match="likelihood"):
        fit_mle(delta, T, "additive", "student")
    with pytest.raises(ValueError, match="templates"):
        fit_mle(delta, T[:, :-1], "additive", "gaussian")
    with pytest.raises(ValueError, match="delta"):
        fit_mle(np.where(np.arange(NPIX) == 3, np.nan, delta), T, "additive", "gaussian")
    with pytest.raises(ValueError, match="theta0"):
        fit_mle(delta, T, "additive", "gaussian", theta0=np.zeros(3))
    with pytest.raises(ValueError, match="theta0"):
        fit_mle(delta, T, "additive", "gaussian", theta0=np.zeros(6))  # s = 0


# --------------------------------------------------------------------------- recovery


RECOVERY = [(m, lk, 5) for m, lk in itertools.product(MODELS, LIKELIHOODS)] + [
    ("combined", "gaussian", 25),
    ("combined", "skewnormal", 25),
]


@pytest.mark.parametrize(("model", "likelihood", "K"), RECOVERY)
def test_mle_unbiased_with_calibrated_errors(model, likelihood, K):
    """50 seeded maps: bias < z sigma/sqrt(N) per parameter, pulls have unit width.

    ``z`` is 3 made family-wise (Bonferroni over the P parameters). Pull
    widths: pooled over all parameters in [0.8, 1.2]; each parameter inside
    its own chi^2_N band at the same family-wise level.
    """
    _, a, b, _, fits = batch_fits(model, likelihood, K)
    assert all(f.converged for f in fits), [f.message for f in fits if not f.converged]
    est = np.array([f.theta for f in fits])
    err = np.array([np.sqrt(np.diag(f.cov)) for f in fits])
    truth = true_theta(model, likelihood, a, b)
    P = truth.size
    n = est.shape[0]
    bias = est.mean(axis=0) - truth
    scatter = est.std(axis=0, ddof=1)
    assert np.all(np.abs(bias) < zscore(P) * scatter / np.sqrt(n)), bias / (scatter / np.sqrt(n))
    pulls = (est - truth) / err
    pooled = np.sqrt(np.mean(pulls**2))
    assert 0.8 < pooled < 1.2, pooled
    alpha = 0.0027 / P
    lo = np.sqrt(scipy.stats.chi2.ppf(alpha / 2, n) / n)
    hi = np.sqrt(scipy.stats.chi2.isf(alpha / 2, n) / n)
    width = np.sqrt(np.mean(pulls**2, axis=0))
    assert np.all((width > lo) & (width < hi)), (lo, hi, width)


# --------------------------------------------------------------------------- LRT


def _lrt(deltas, T, null_model, alt_model, likelihood):
    nulls = fit_mle_many(deltas, T, null_model, likelihood)
    alts = fit_mle_many(deltas, T, alt_model, likelihood)
    assert all(f.converged for f in (*nulls, *alts))
    dof = n_params(alt_model, likelihood, T.shape[0]) - n_params(null_model, likelihood, T.shape[0])
    return likelihood_ratio_test(np.array([f.loglike for f in nulls]),
                                 np.array([f.loglike for f in alts]), dof)


def test_lrt_size_additive_truth():
    """Additive truth: combined-vs-additive rejects at 5 % within the binomial 3-sigma band,
    and the Wilks p-values are uniform (K-S)."""
    K = 5
    T = templates_for(K)
    a, _ = truth_for("additive", K)
    pvalues = []
    for batch in range(4):  # 200 maps
        deltas = draw_fields("gaussian", BATCH, 8, batch) + a @ T
        res = _lrt(deltas, T, "additive", "combined", "gaussian")
        assert np.all(np.asarray(res.statistic) > -1e-6)  # nested maxima
        pvalues.append(np.asarray(res.pvalue))
    p = np.concatenate(pvalues)
    n = p.size
    frac, _ = binomial_fraction(np.sum(p < 0.05), n)
    band = 3 * np.sqrt(0.05 * 0.95 / n)
    assert abs(float(frac) - 0.05) < band, float(frac)
    assert scipy.stats.kstest(p, "uniform").pvalue > 0.001


def test_lrt_power_combined_truth():
    """Combined truth at the amplitudes of the mocks (b ~ 0.01-0.04): rejected in every draw."""
    T, _, _, deltas, alts = batch_fits("combined", "gaussian", 5)
    nulls = fit_mle_many(deltas, T, "additive", "gaussian")
    res = likelihood_ratio_test(np.array([f.loglike for f in nulls]),
                                np.array([f.loglike for f in alts]), T.shape[0])
    assert np.mean(np.asarray(res.pvalue) < 0.05) >= 0.98
