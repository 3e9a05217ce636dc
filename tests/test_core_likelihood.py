"""Pixel likelihoods (Berlfein+24 Eqs. 17-18) against an independent NumPy/SciPy version."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from hpcsys.core.fit import loglike_derivatives
from hpcsys.core.likelihood import log_ndtr, loglike, param_layout
from hpcsys.core.models import LIKELIHOODS, MODELS
from hpcsys.seeds import rng

COMBOS = list(itertools.product(MODELS, LIKELIHOODS))
MASTER = 20240601


def reference_loglike(theta, delta, templates, model, likelihood):
    """Independent plain NumPy/SciPy lnL for one parameter vector (Eqs. 17-18)."""
    K = templates.shape[0]
    lay = param_layout(model, likelihood, K)
    a = theta[lay.a] if lay.a is not None else np.zeros(K)
    b = theta[lay.b] if lay.b is not None else np.zeros(K)
    s = theta[lay.s]
    factor = 1.0 + b @ templates
    if s <= 0 or np.any(factor <= 0):
        return -np.inf
    r = (delta - a @ templates) / factor
    if likelihood == "gaussian":
        dens = scipy.stats.norm.logpdf(r, loc=0.0, scale=s)
    else:
        g = theta[lay.g]
        # zero-mean skew-normal: location -s delta sqrt(2/pi), delta = g/sqrt(1+g^2)
        loc = -s * g / np.sqrt(1 + g * g) * np.sqrt(2 / np.pi)
        dens = scipy.stats.skewnorm.logpdf(r, g, loc=loc, scale=s)
        assert abs(scipy.stats.skewnorm.mean(g, loc=loc, scale=s)) < 1e-12
    return float(np.sum(dens) - np.sum(np.log(factor)))


def reference_loglike_jax(theta, delta, templates, model, likelihood):
    """The same lnL written directly in jax.numpy (whole map, no chunks) for autodiff."""
    K = templates.shape[0]
    lay = param_layout(model, likelihood, K)
    a = theta[lay.a] if lay.a is not None else jnp.zeros(K)
    b = theta[lay.b] if lay.b is not None else jnp.zeros(K)
    s = theta[lay.s]
    factor = 1.0 + b @ templates
    r = (delta - a @ templates) / factor
    if likelihood == "gaussian":
        dens = jax.scipy.stats.norm.logpdf(r, loc=0.0, scale=s)
    else:
        g = theta[lay.g]
        loc = -s * g / jnp.sqrt(1 + g * g) * np.sqrt(2 / np.pi)
        z = (r - loc) / s
        dens = np.log(2.0) + jax.scipy.stats.norm.logpdf(z) - jnp.log(s) + jax.scipy.special.log_ndtr(g * z)
    return jnp.sum(dens) - jnp.sum(jnp.log(factor))


def _problem(index: int, K: int = 4, npix: int = 3000, outliers: bool = True):
    gen = rng(MASTER, "synthetic", 100, index)
    templates = gen.standard_normal((K, npix))
    delta = 0.3 * gen.standard_normal(npix) + 0.05 * gen.standard_normal(K) @ templates
    if outliers:
        # two outliers put g z far below -20 for many walkers: the asymptotic branch of ln Phi
        delta[7], delta[8] = -6.0, 6.0
    return gen, delta, templates


def _random_theta(gen, model, likelihood, K, n):
    lay = param_layout(model, likelihood, K)
    theta = np.zeros((n, lay.size))
    if lay.a is not None:
        theta[:, lay.a] = gen.normal(0, 0.05, (n, K))
    if lay.b is not None:
        theta[:, lay.b] = gen.normal(0, 0.03, (n, K))
    theta[:, lay.s] = gen.uniform(0.2, 0.5, n)
    if lay.g is not None:
        theta[:, lay.g] = gen.normal(0, 2.0, n)
    return theta


@pytest.mark.parametrize(("model", "likelihood"), COMBOS)
def test_loglike_matches_scipy(model, likelihood):
    """Single vectors, a chunked walker batch and the Gram path all equal SciPy to 1e-10."""
    gen, delta, templates = _problem(COMBOS.index((model, likelihood)))
    K = templates.shape[0]
    # 300 walkers on 3000 pixels: chunks of 1747 pixels plus a tail (the chunked path);
    # additive Gaussian with >= K walkers: the Gram-matrix path
    theta = _random_theta(gen, model, likelihood, K, 300)
    got = np.asarray(loglike(jnp.asarray(theta), jnp.asarray(delta), jnp.asarray(templates),
                             model, likelihood))
    ref = np.array([reference_loglike(t, delta, templates, model, likelihood) for t in theta])
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # one vector (whole-map path) and a (2, 3, P) batch keep their shapes
    one = float(loglike(jnp.asarray(theta[0]), delta, templates, model, likelihood))
    assert one == pytest.approx(ref[0], rel=1e-10)
    batch = loglike(jnp.asarray(theta[:6].reshape(2, 3, -1)), delta, templates, model, likelihood)
    assert batch.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(batch).ravel(), ref[:6], rtol=1e-10)


@pytest.mark.parametrize(("model", "likelihood"), COMBOS)
def test_gradient_matches_finite_differences(model, likelihood):
    gen, delta, templates = _problem(10 + COMBOS.index((model, likelihood)), npix=2000)
    K = templates.shape[0]
    theta = _random_theta(gen, model, likelihood, K, 1)[0]
    # one compiled program per case (eager jax.grad dispatches, and compiles, op by op: 2x the CPU)
    grad = np.asarray(jax.jit(jax.grad(loglike), static_argnums=(3, 4))(
        jnp.asarray(theta), delta, templates, model, likelihood))
    h = 1e-6
    fd = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        fd[i] = (reference_loglike(theta + e, delta, templates, model, likelihood)
                 - reference_loglike(theta - e, delta, templates, model, likelihood)) / (2 * h)
    # central differences of a sum of ~2000 O(1) terms: error ~ h^2 f''' + eps |f| / h
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(("model", "likelihood"), COMBOS)
def test_derivatives_equal_autodiff_and_chunking(model, likelihood):
    """The Gram-matrix Hessian of the fit equals autodiff of a direct lnL; chunking is exact."""
    # no outliers: jax.scipy.special.log_ndtr (the reference) loses ~1e-6 in its second
    # derivative below -20, where ours is exact (test_log_ndtr_matches_scipy)
    gen, delta, templates = _problem(20 + COMBOS.index((model, likelihood)), npix=2000,
                                     outliers=False)
    K = templates.shape[0]
    theta = jnp.asarray(_random_theta(gen, model, likelihood, K, 1)[0])
    val, grad, hess = loglike_derivatives(theta, delta, templates, model, likelihood)
    args = (jnp.asarray(delta), jnp.asarray(templates), model, likelihood)
    ref_val = reference_loglike(np.asarray(theta), delta, templates, model, likelihood)
    ref_grad = jax.jit(jax.grad(reference_loglike_jax), static_argnums=(3, 4))(theta, *args)
    ref_hess = jax.jit(jax.hessian(reference_loglike_jax), static_argnums=(3, 4))(theta, *args)
    scale = float(jnp.max(jnp.abs(ref_hess)))
    assert float(val) == pytest.approx(float(ref_val), rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(hess, ref_hess, rtol=1e-9, atol=1e-12 * scale)
    if model == "combined":  # chunking is model-independent: check it on the largest model
        val_c, grad_c, hess_c = loglike_derivatives(theta, delta, templates, model, likelihood,
                                                    chunk=300)
        assert float(val_c) == pytest.approx(float(val), rel=1e-12)
        np.testing.assert_allclose(grad_c, grad, rtol=1e-9, atol=1e-9 * scale)
        np.testing.assert_allclose(hess_c, hess, rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.parametrize(("model", "likelihood"), COMBOS)
def test_minus_inf_outside_domain(model, likelihood):
    gen, delta, templates = _problem(30, npix=500)
    K = templates.shape[0]
    lay = param_layout(model, likelihood, K)
    theta = _random_theta(gen, model, likelihood, K, 1)[0]
    assert np.isfinite(float(loglike(jnp.asarray(theta), delta, templates, model, likelihood)))
    bad_s = theta.copy()
    bad_s[lay.s] = 0.0
    bad = [bad_s]
    if lay.b is not None:
        # put the pole 1 + b.t_p = 0 exactly on one pixel, then just past it
        p = int(np.argmax(np.abs(templates[0])))
        for shift in (0.0, -1e-9):
            pole = theta.copy()
            rest = theta[lay.b][1:] @ templates[1:, p]
            pole[lay.b.start] = (-1.0 - rest) / templates[0, p] * (1 - shift)
            bad.append(pole)
    out = np.asarray(loglike(jnp.asarray(np.array(bad)), delta, templates, model, likelihood))
    assert np.all(out == -np.inf)
    assert all(reference_loglike(t, delta, templates, model, likelihood) == -np.inf for t in bad)


def test_log_ndtr_matches_scipy():
    x = np.concatenate([np.linspace(-300.0, 40.0, 34001), [-20.0, -20.0 - 1e-9, -20.0 + 1e-9, 0.0]])
    ref = scipy.special.log_ndtr(x)
    got = np.asarray(jax.jit(log_ndtr)(jnp.asarray(x)))
    neg = x < 0
    np.testing.assert_allclose(got[neg], ref[neg], rtol=1e-14)
    np.testing.assert_allclose(got[~neg], ref[~neg], rtol=1e-14, atol=1e-15)
    # first and second derivatives are finite everywhere and continuous at the branch point
    d1 = jax.jit(jax.vmap(jax.grad(log_ndtr)))(jnp.asarray(x))
    d2 = jax.jit(jax.vmap(jax.hessian(log_ndtr)))(jnp.asarray(x))
    assert bool(jnp.all(jnp.isfinite(d1)) & jnp.all(jnp.isfinite(d2)))
    inside = np.abs(x) < 30
    mills = np.exp(scipy.stats.norm.logpdf(x[inside]) - ref[inside])
    np.testing.assert_allclose(np.asarray(d1)[inside], mills, rtol=1e-10)
    # second derivative against 50-digit arithmetic, across the branch point and deep in the tail
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    pts = np.array([-150.0, -60.0, -20.1, -19.9, -5.0, 0.0, 3.0])
    want = [float(mpmath.diff(lambda t: mpmath.log(mpmath.ncdf(t)), float(p), 2)) for p in pts]
    got2 = np.asarray(jax.jit(jax.vmap(jax.hessian(log_ndtr)))(jnp.asarray(pts)))
    np.testing.assert_allclose(got2, want, rtol=1e-10)  # ~x^2 eps just above -20
