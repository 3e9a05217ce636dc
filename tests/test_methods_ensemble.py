"""MCMC-add / MCMC-comb: batched log posteriors, emcee vs device-resident sampler, recovery, pole."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from _methods_synthetic import synthetic_map
from scipy.stats import chi2, ks_2samp

from hpcsys.config import MethodsSection
from hpcsys.core.fit import fit_mle
from hpcsys.core.likelihood import loglike, min_jacobian_factor
from hpcsys.methods import MapData, run_method
from hpcsys.methods.chains import autocorr_time as _autocorr
from hpcsys.methods.chains import split_rhat, summarise_samples
from hpcsys.methods.ensemble import (
    additive_logpost,
    additive_stats,
    combined_logpost,
    pixel_chunks,
    run_mcmc_comb,
    sample_emcee,
    sample_jax,
)
from hpcsys.seeds import seed_sequence

A_TRUE = np.array([0.02, 0.0, -0.015])
B_TRUE = np.array([0.06, -0.04, 0.0])


def test_additive_logpost_equals_core_loglike():
    data = synthetic_map(30, npix=3000, K=3, a=A_TRUE)
    g = np.random.default_rng(0)
    theta = np.concatenate([A_TRUE + 0.01 * g.standard_normal((40, 3)),
                            0.3 + 0.01 * g.standard_normal((40, 1))], axis=1)
    theta[0, -1] = -0.1  # s <= 0: outside the domain
    ref = np.asarray(loglike(jnp.asarray(theta), jnp.asarray(data.delta), jnp.asarray(data.templates),
                             "additive", "gaussian"))
    got = np.asarray(additive_logpost(jnp.asarray(theta), additive_stats(data.delta, data.templates)))
    assert np.isneginf(got[0]) and np.isneginf(ref[0])
    np.testing.assert_allclose(got[1:], ref[1:], rtol=1e-11)


def test_combined_logpost_equals_core_loglike_with_padding_and_pole():
    data = synthetic_map(31, npix=1000, K=3, a=A_TRUE, b=B_TRUE)
    g = np.random.default_rng(1)
    theta = np.concatenate([A_TRUE + 0.01 * g.standard_normal((40, 3)),
                            B_TRUE + 0.02 * g.standard_normal((40, 3)),
                            0.3 + 0.01 * g.standard_normal((40, 1))], axis=1)
    theta[0, 3:6] = [0.6, 0.0, 0.0]  # 1 + b.t <= 0 on some pixel: beyond the pole
    theta[1, -1] = 0.0
    d, T = jnp.asarray(data.delta), jnp.asarray(data.templates)
    assert float(min_jacobian_factor(jnp.asarray(theta[0, 3:6]), T)) < 0
    ref = np.asarray(loglike(jnp.asarray(theta), d, T, "combined", "gaussian"))
    for chunk in (300, 1000, 4096):  # padded chunks, one exact chunk, chunk > npix
        got = np.asarray(combined_logpost(jnp.asarray(theta), pixel_chunks(data.delta, data.templates, chunk)))
        assert np.isneginf(got[:2]).all() and np.isneginf(ref[:2]).all()
        np.testing.assert_allclose(got[2:], ref[2:], rtol=1e-11)


# One map shape and one chain configuration for the sampler tests: every JAX program
# (fit_mle, the chain) is compiled once per shape, and compiling dominates their cost.
NPIX, K2 = 4000, 2
A2, B2 = A_TRUE[:2], B_TRUE[:2]
W, STEPS, BURN = 32, 3000, 500
ST_JAX = MethodsSection(mcmc_backend="jax", mcmc_walkers=W, mcmc_steps=STEPS, mcmc_burn_in=BURN)


def _thinned(samples: np.ndarray, step: int) -> np.ndarray:
    return samples[::step].reshape(-1, samples.shape[-1])


@pytest.fixture(scope="module")
def both_backends():
    """Same posterior (combined model, K = 2), same start, both samplers."""
    data = synthetic_map(32, npix=NPIX, K=K2, a=A2, b=B2)
    mle = fit_mle(jnp.asarray(data.delta), jnp.asarray(data.templates), "combined", "gaussian")
    err = np.sqrt(np.diag(mle.cov))
    p0 = mle.theta + 0.1 * err * np.random.default_rng(5).standard_normal((W, mle.theta.size))
    chunks = pixel_chunks(data.delta, data.templates)
    runs = {name: fn(combined_logpost, chunks, p0, STEPS, BURN, 1, seed_sequence(3, "method", 0, i))
            for i, (name, fn) in enumerate((("emcee", sample_emcee), ("jax", sample_jax)))}
    return mle, runs


def test_backends_agree_on_the_posterior(both_backends):
    mle, runs = both_backends
    e, j = runs["emcee"], runs["jax"]
    S = STEPS - BURN
    assert e.samples.shape == j.samples.shape == (S, W, 5)
    tau = np.maximum(_autocorr(e.samples, 1), _autocorr(j.samples, 1))
    assert np.all(S > 30 * tau)  # long enough for the comparison
    step = int(np.ceil(2 * tau.max()))
    P = e.samples.shape[-1]
    for p in range(P):
        xe, xj = _thinned(e.samples, step)[:, p], _thinned(j.samples, step)[:, p]
        assert ks_2samp(xe, xj).pvalue > 0.001 / P  # Bonferroni over parameters
    n_eff = S * W / tau
    me, mj = e.samples.mean(axis=(0, 1)), j.samples.mean(axis=(0, 1))
    se, sj = e.samples.std(axis=(0, 1)), j.samples.std(axis=(0, 1))
    assert np.all(np.abs(me - mj) < 4 * np.sqrt(2 / n_eff) * se)
    assert np.all(np.abs(se / sj - 1) < 4 * np.sqrt(1 / n_eff))  # var(std)/std^2 ~ 1/(2 n_eff), twice
    # both agree with the Laplace approximation at the MLE (near-Gaussian posterior)
    np.testing.assert_allclose(se, np.sqrt(np.diag(mle.cov)), rtol=0.15)
    for r in (e, j):
        assert 0.2 < r.acceptance.mean() < 0.8
        assert r.n_outside == 0


def test_jax_backend_is_reproducible():
    data = synthetic_map(33, npix=NPIX, K=K2, a=A2)
    r1 = run_method("MCMC-add", data, ST_JAX, seed_sequence(1, "method", 9))
    r2 = run_method("MCMC-add", data, ST_JAX, seed_sequence(1, "method", 9))
    np.testing.assert_array_equal(r1.a_mean, r2.a_mean)
    r3 = run_method("MCMC-add", data, ST_JAX, seed_sequence(1, "method", 10))
    assert not np.array_equal(r1.a_mean, r3.a_mean)


def test_mcmc_add_matches_the_analytic_posterior():
    """Flat prior, additive model: posterior mean = OLS, posterior std = OLS error."""
    data = synthetic_map(34, npix=NPIX, K=K2, a=A2)
    r = run_method("MCMC-add", data, ST_JAX, seed_sequence(1, "method", 1))
    ols = run_method("OLS", data, ST_JAX, seed_sequence(1, "method", 1))
    np.testing.assert_array_equal(r.a, r.a_mean)  # the point estimate is the posterior mean
    n_eff = r.a_ess  # per parameter
    assert n_eff.shape == (K2,) and np.all(n_eff >= r.diagnostics.effective_samples)
    assert r.diagnostics.effective_samples > 1000
    # the posterior of a is symmetric about the OLS solution: mean = OLS up to MC error
    assert np.all(np.abs(r.a_mean - ols.a) < 4 * ols.a_err / np.sqrt(n_eff))
    assert np.all(np.abs(r.a_median - ols.a) < 4 * 1.253 * ols.a_err / np.sqrt(n_eff))
    # posterior std = OLS error up to Monte Carlo error (and the N/(N-K) dof factor)
    assert np.all(np.abs(r.a_std / ols.a_err - 1) < 4 / np.sqrt(2 * n_eff) + 1e-3)
    # white pixels: the sandwich error equals the likelihood error up to its own scatter
    np.testing.assert_allclose(r.a_err, r.a_std, rtol=0.1)
    assert np.all(np.abs(r.a - A2) < 4 * r.a_err)
    np.testing.assert_allclose(r.corrected, data.delta - r.a @ data.templates, atol=1e-12)
    assert not r.diagnostics.hit_pole
    assert np.all(np.isnan(r.b_mean)) and np.all(r.b == 0) and np.all(r.weights == 1)
    assert np.all(np.isnan(r.b_ci68)) and np.all(np.isnan(r.b_ess))
    # the 68 / 95 % intervals of a near-Gaussian posterior: mean -+ 1 and 1.96 std
    for ci, z in ((r.a_ci68, 1.0), (r.a_ci95, 1.96)):
        np.testing.assert_allclose(ci[:, 1] - ci[:, 0], 2 * z * r.a_std, rtol=0.05)
    assert r.diagnostics.converged and r.diagnostics.rhat_max < ST_JAX.mcmc_rhat_max
    assert r.diagnostics.stop_reason.startswith("fixed length")


def test_mcmc_comb_recovers_truth_within_its_posterior():
    data = synthetic_map(35, npix=NPIX, K=K2, a=A2, b=B2)
    r = run_method("MCMC-comb", data, ST_JAX, seed_sequence(1, "method", 2))
    dev = np.concatenate([r.a - A2, r.b - B2])
    assert dev @ np.linalg.solve(r.cov[:2 * K2, :2 * K2], dev) < chi2.ppf(0.999, 2 * K2)
    np.testing.assert_allclose(r.a_err, r.a_std, rtol=0.1)  # white pixels (see above)
    np.testing.assert_allclose(r.b_err, r.b_std, rtol=0.1)
    np.testing.assert_array_equal(np.concatenate([r.a, r.b]), np.concatenate([r.a_mean, r.b_mean]))
    for lo_hi, mid in ((r.a_ci68, r.a_median), (r.b_ci68, r.b_median)):
        assert np.all(lo_hi[:, 0] < mid) and np.all(mid < lo_hi[:, 1])
    assert np.all(r.a_ci95[:, 0] < r.a_ci68[:, 0]) and np.all(r.a_ci68[:, 1] < r.a_ci95[:, 1])
    factor = 1.0 + r.b @ data.templates
    np.testing.assert_allclose(r.weights, 1.0 / factor, rtol=1e-12)
    np.testing.assert_allclose(r.corrected, (data.delta - r.a @ data.templates) / factor, rtol=1e-10)
    assert r.diagnostics.acceptance_fraction > 0.2 and r.diagnostics.effective_samples > 500
    assert np.all(r.b_ess >= r.diagnostics.effective_samples)


@pytest.mark.parametrize("name", ["MCMC-add", "MCMC-comb"])
def test_mcmc_reuses_the_model_comparisons_sandwich(name: str):
    """With the map's model comparison at hand the MCMC takes its Gaussian sandwich
    covariance (the same maximum), and it equals the one computed afresh."""
    from hpcsys.core.comparison import compare_models
    from hpcsys.measure.honest import mle_covariances, sandwich_setup

    data = synthetic_map(36, npix=NPIX, K=K2, a=A2, b=B2)
    setup = sandwich_setup(data.pixels, data.nside, ST_JAX.sandwich_lmax,
                           np.asarray(data.templates, dtype=float))
    data = dataclasses.replace(data, sandwich=setup)
    comp = compare_models(data.delta, data.templates, ("gaussian",),
                          covariance=mle_covariances(setup, data.delta, data.templates))
    seed = seed_sequence(1, "method", 3)
    fresh = run_method(name, data, ST_JAX, seed)
    reused = run_method(name, dataclasses.replace(data, comparison=comp), ST_JAX, seed)
    assert "model comparison's MLE" in reused.diagnostics.message
    assert "model comparison's MLE" not in fresh.diagnostics.message
    m = K2 if name == "MCMC-add" else 2 * K2
    np.testing.assert_allclose(reused.cov[:m, :m], fresh.cov[:m, :m], rtol=1e-5, atol=0)
    np.testing.assert_array_equal(reused.a, fresh.a)  # the chain itself is untouched


def test_skewed_posterior_mean_differs_from_the_mle_and_matches_quadrature():
    """A posterior skewed by the pole of 1 + b.t: its mean is not the MLE, and MCMC finds it.

    K = 1, 200 pixels, a lognormal (right-skewed) template: ``1 + b t_p > 0`` bounds
    ``b`` from below at ``-1/max t`` (about 1.5 sigma_b away), and the Jacobian
    term makes the posterior of ``b`` skewed to positive values. The reference is
    the posterior mean by quadrature on a (61)^3 grid over +-7 Laplace sigmas
    (edge mass < 1e-5). Monte Carlo error of the chain mean: ``std / sqrt(ESS)``.
    """
    from hpcsys.seeds import rng

    n = 200
    g = rng(1, "synthetic", 900)
    t = np.exp(g.standard_normal(n))
    t = (t - t.mean()) / t.std()
    delta = 0.3 * g.standard_normal(n)
    data = MapData(delta, t[None], np.arange(n), 64, ("t0",))
    st = MethodsSection(mcmc_backend="jax", mcmc_walkers=32, mcmc_steps=2500, mcmc_burn_in=500,
                        pca=False)
    r = run_method("MCMC-comb", data, st, seed_sequence(1, "method", 77))
    mle = fit_mle(jnp.asarray(delta), jnp.asarray(t[None]), "combined", "gaussian")
    th, e = np.asarray(mle.theta), np.sqrt(np.diag(np.asarray(mle.cov)))
    axes = [np.linspace(th[i] - 7 * e[i], th[i] + 7 * e[i], 61) for i in range(3)]
    pts = np.stack([x.ravel() for x in np.meshgrid(*axes, indexing="ij")], axis=1)
    chunks = pixel_chunks(delta, t[None])
    lp = np.concatenate([np.asarray(combined_logpost(jnp.asarray(pts[i:i + 20000]), chunks))
                         for i in range(0, len(pts), 20000)])
    w = np.where(np.isfinite(lp), np.exp(lp - np.max(lp[np.isfinite(lp)])), 0.0)
    ref = w @ pts / w.sum()
    edge = w.reshape(61, 61, 61)[:, [0, -1]].sum() / w.sum()
    assert edge < 1e-4
    mc = np.array([r.a_std[0] / np.sqrt(r.a_ess[0]), r.b_std[0] / np.sqrt(r.b_ess[0])])
    got = np.array([r.a[0], r.b[0]])
    assert np.all(np.abs(got - ref[:2]) < 4 * mc), (got, ref, mc)
    # the skew: the exact posterior mean of b sits far from the maximum ...
    assert ref[1] - mle.b[0] > 0.3 * r.b_std[0]
    # ... and the chain's mean is many Monte Carlo errors from it
    assert r.b[0] - mle.b[0] > 10 * mc[1]
    assert r.b_median[0] < r.b[0]  # right skew: median below the mean
    assert r.diagnostics.converged


def test_extension_until_the_ess_target_or_the_step_cap():
    data = synthetic_map(37, npix=2000, K=K2, a=A2, b=B2)
    short = MethodsSection(mcmc_backend="jax", mcmc_walkers=16, mcmc_steps=300, mcmc_burn_in=100,
                           mcmc_ess_target=400.0)
    fixed = run_mcmc_comb(data, short, seed_sequence(1, "method", 3))
    assert not fixed.diagnostics.converged and fixed.diagnostics.n_iterations == 300
    ext = run_mcmc_comb(data, short, seed_sequence(1, "method", 3), extend=True)
    d = ext.diagnostics
    assert d.converged and d.stop_reason.startswith("ESS target and R-hat threshold met")
    assert d.effective_samples >= 400 and d.rhat_max <= short.mcmc_rhat_max
    assert (d.n_iterations - 300) % 200 == 0 and d.n_iterations > 300
    capped = dataclasses.replace(short, mcmc_max_steps=700)
    cap = run_mcmc_comb(data, capped, seed_sequence(1, "method", 3), extend=True)
    assert cap.diagnostics.n_iterations == 700 and not cap.diagnostics.converged
    assert cap.diagnostics.stop_reason.startswith("step cap reached")
    # the capped chain is the start of the extended one: same seeds, same blocks
    assert d.n_iterations > 700


def test_split_rhat_and_ess_on_known_chains():
    """AR(1) chains of known autocorrelation time; a drifting chain fails R-hat."""
    g = np.random.default_rng(11)
    S, W, rho = 4000, 32, 0.8
    x = np.empty((S, W, 2))
    x[0] = g.standard_normal((W, 2))
    for i in range(1, S):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho**2) * g.standard_normal((W, 2))
    tau_true = (1 + rho) / (1 - rho)
    summ = summarise_samples(x, 1)
    np.testing.assert_allclose(summ.tau, tau_true, rtol=0.1)
    np.testing.assert_allclose(summ.ess, S * W / tau_true, rtol=0.1)
    # mixed, stationary: R - 1 = O(1/ESS)
    assert np.all(np.abs(summ.rhat - 1) < 10 / summ.ess.min() + 1e-3)
    drift = x + np.linspace(0, 1.0, S)[:, None, None]  # a trend of one std over the chain
    assert np.all(split_rhat(drift) > 1.01)
    stuck = x.copy()
    stuck[:, : W // 2] += 0.5  # half of the walkers in another place
    assert np.all(split_rhat(stuck) > 1.01)
    thin = summarise_samples(x[::4], 4)  # in steps whatever the thinning
    np.testing.assert_allclose(thin.tau, tau_true, rtol=0.2)


@pytest.mark.parametrize("backend", ["emcee", "jax"])
def test_sampler_never_crosses_the_pole(backend):
    """A small map with the pole of 1 + b.t inside the posterior: proposals beyond it are refused."""
    npix, w, steps, burn = 150, 16, 400, 100
    data = synthetic_map(36, npix=npix, K=K2, b=[0.28, 0.0], a=[0.0, 0.0])
    T = data.templates
    st = MethodsSection(mcmc_backend=backend, mcmc_walkers=w, mcmc_steps=steps, mcmc_burn_in=burn,
                        pca=False)
    from hpcsys.methods.ensemble import _initial_ball

    mle = fit_mle(jnp.asarray(data.delta), jnp.asarray(T), "combined", "gaussian")
    chunks = pixel_chunks(data.delta, T)
    p0 = _initial_ball(mle, combined_logpost, chunks, 4 * w, np.random.default_rng(0))
    p0[:, K2:2 * K2] = mle.b + 10.0 * (p0[:, K2:2 * K2] - mle.b)  # wide start: walkers near the pole
    lp0 = np.asarray(combined_logpost(jnp.asarray(p0), chunks))
    p0 = p0[np.isfinite(lp0)][:w]
    assert p0.shape[0] == w
    sampler = sample_emcee if backend == "emcee" else sample_jax
    chain = sampler(combined_logpost, chunks, p0, steps, burn, 1, seed_sequence(1, "method", 5))
    b = chain.samples[..., K2:2 * K2].reshape(-1, K2)
    assert np.min(1.0 + b @ T) > 0.0  # every kept sample inside the domain
    assert chain.n_outside > 0  # ... although proposals beyond the pole were made
    assert np.all(np.isfinite(chain.log_prob))
    r = run_method("MCMC-comb", data, st, seed_sequence(1, "method", 6))
    assert np.min(1.0 + r.b @ T) > 0.0
    assert r.diagnostics.hit_pole  # this posterior reaches the pole: reported, never crossed


@pytest.mark.parametrize(("steps", "burn", "thin"), [(40, 10, 1), (41, 10, 3), (30, 0, 7)])
def test_jax_chain_keeps_the_steps_emcee_keeps(steps: int, burn: int, thin: int):
    """The compiled chain equals a step-by-step loop of the same stretch move, bit for bit:
    kept steps ``i >= burn`` with ``(i - burn + 1) % thin == 0`` (emcee's ``discard``/``thin``),
    acceptance and outside counts over all steps (a remainder after the last kept step too)."""
    import jax

    from hpcsys.methods import ensemble as E
    from hpcsys.methods import samplers as S

    data = synthetic_map(500, K=3, npix=600, a=[0.01, 0.0, -0.01], b=[0.02, 0.0, 0.01])
    chunks = E.pixel_chunks(data.delta, data.templates, 128)
    rng = np.random.default_rng(5)
    p0 = np.concatenate([rng.normal(0, 1e-3, (16, 6)), 0.3 + rng.normal(0, 1e-3, (16, 1))], axis=1)
    key = jax.random.PRNGKey(3)
    buf, lbuf, acc, out = S._jax_chain(key, jnp.asarray(p0), chunks, E.combined_logpost,
                                       steps, burn, thin)
    pos, lp = jnp.asarray(p0), E.combined_logpost(jnp.asarray(p0), chunks)
    kept, kept_lp, acc_ref, out_ref = [], [], np.zeros(16, int), 0
    step = jax.jit(lambda k, x, lx: S._stretch_step(k, x, lx, E.combined_logpost, chunks))
    for i in range(steps):
        pos, lp, a, o = step(jax.random.fold_in(key, i), pos, lp)
        acc_ref += np.asarray(a)
        out_ref += int(o)
        if i >= burn and (i - burn + 1) % thin == 0:
            kept.append(np.asarray(pos))
            kept_lp.append(np.asarray(lp))
    np.testing.assert_array_equal(np.asarray(buf), np.array(kept))
    np.testing.assert_array_equal(np.asarray(lbuf), np.array(kept_lp))
    np.testing.assert_array_equal(np.asarray(acc), acc_ref)
    assert int(out) == out_ref
