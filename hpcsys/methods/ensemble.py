"""Ensemble MCMC of the additive and combined models: MCMC-add and MCMC-comb.

Posterior (Berlfein+24 Section 3.3): the Gaussian pixel likelihood of Eq. 17
with flat priors, restricted to the domain ``s > 0`` and ``1 + b.t_p > 0`` on
every pixel (the log-likelihood is ``-inf`` outside, so no walker can cross
the pole of the Jacobian term: a proposal beyond it is always rejected).

* ``MCMC-add``: additive model (Eq. 11), parameters ``(a, s)``.
* ``MCMC-comb``: combined model (Eq. 13), parameters ``(a, b, s)``.

Sampler: the affine-invariant ensemble sampler of Goodman & Weare (2010) with
the stretch move (``a = 2``), as in emcee. Two interchangeable backends,
chosen by ``methods.mcmc_backend``:

``emcee``
    The reference: :class:`emcee.EnsembleSampler` with ``vectorize=True``, so
    every half-ensemble update is **one** batched, jit-compiled JAX call over
    the walkers.
``jax``
    Device-resident: the whole chain (burn-in, sampling, thinning) is one
    compiled XLA program, a :func:`jax.lax.scan` over steps of the same
    stretch move with emcee's random red/blue split. This is written here
    rather than taken from :class:`numpyro.infer.AIES`, because that kernel
    re-evaluates the log density of the current walkers at every half step
    (twice the likelihood cost) and its default move is differential evolution;
    the two backends are checked against each other (K-S and moments) in
    ``tests/test_methods_ensemble.py``.

Likelihood evaluation (walkers ``W``, pixels ``N``, templates ``K``):

* additive: exact sufficient statistics, ``sum_p (delta_p - a.t_p)^2 =
  delta.delta - 2 a.(T delta) + a^T (T T^T) a``, so a walker costs
  ``O(K^2)`` instead of ``O(N K)``;
* combined: pixels are processed in cache-sized chunks (``lax.scan``) so the
  ``(W, N)`` intermediates are never materialised; padding pixels have
  ``t = 0, delta = 0`` and contribute exactly zero. Per chunk, ``a.t`` and
  ``b.t`` are two products (XLA fuses the first into the ``chi^2`` sum), the
  Jacobian term is the log of products of :data:`LOG_GROUP` factors, and a
  factor at or beyond the pole enters that product as NaN, which marks the
  walker outside the domain without a separate pass over the factors. The
  ``2 x W x K x N`` flops of the two products are the floor of the kernel
  (``benchmarks/bench_core.py`` prints both).

Both are compiled once per shape and are tested equal to
:func:`hpcsys.core.likelihood.loglike`.

Start, point estimate and errors: walkers start in a ball of ``0.1 x`` the
MLE errors around the maximum-likelihood fit (:func:`hpcsys.core.fit.fit_mle`).
The point estimate ``a``, ``b`` is the **posterior mean** (the estimator of
Berlfein+24 Section 3.3; it differs from the MLE where the posterior is skewed,
e.g. near the pole ``1 + b.t_p = 0``); the median, the central 68 % / 95 %
intervals and the standard deviation of the samples are reported beside it
(``a_median``, ``a_ci68``, ``a_ci95``, ``a_std``). The posterior assumes
independent pixels, so its width is not the scatter of the estimate on a
correlated sky: ``a_err``, ``b_err`` and ``cov`` are the sandwich covariance
(:func:`hpcsys.measure.sandwich.mle_covariance`) of the Gaussian-likelihood
estimator at the posterior maximum (the best sample refined by
:func:`~hpcsys.core.fit.fit_mle`), which the posterior mean shares to first
order; ``a_mean +- a_err`` is the sandwich-adjusted interval.

Diagnostics (:mod:`hpcsys.methods.chains`): acceptance fraction (mean over
walkers, over all steps), integrated autocorrelation time (max over
parameters, in steps), effective sample size per parameter (``a_ess``,
``b_ess``; ``effective_samples`` the minimum over the sampled parameters and
the reported coefficients), split-R-hat over walker halves and chain halves
(``rhat_max``). ``converged`` when the minimum ESS reaches
``methods.mcmc_ess_target`` and the maximum R-hat is at most
``methods.mcmc_rhat_max``. Mock runs sample ``methods.mcmc_steps``;
``hpcsys fit`` extends the chain until converged or ``methods.mcmc_max_steps``
(``stop_reason`` says which). ``hit_pole`` when any proposal fell outside the
domain (it was rejected).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from hpcsys.config import MethodsSection
from hpcsys.core.fit import MLEResult, fit_mle
from hpcsys.core.likelihood import ParamLayout, param_layout
from hpcsys.core.models import FIT_MODELS, MODELS
from hpcsys.methods._shared import FitBasis, MethodInputError, fit_basis, make_result
from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult
from hpcsys.methods.chains import ChainSummary, summarise_samples
from hpcsys.methods.samplers import SAMPLERS, ChainResult, child_seed, sample_emcee, sample_jax

__all__ = [
    "AdditiveStats",
    "ChainResult",
    "PixelChunks",
    "additive_logpost",
    "additive_stats",
    "combined_logpost",
    "pixel_chunks",
    "run_mcmc_add",
    "run_mcmc_comb",
    "sample_emcee",
    "sample_jax",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Walkers start within this fraction of the MLE errors around the MLE.
BALL_SCALE = 0.1
#: Pixels per chunk of the combined-model likelihood.
CHUNK = 1024
#: Pixels whose Jacobian factors are multiplied before one logarithm (chunks are a
#: multiple of it): the logarithm was the dearest operation of the walker likelihood.
LOG_GROUP = 8
#: Each factor enters the product clipped to ``[tiny, max] ** (1 / LOG_GROUP)`` of its dtype
#: (halved), so a group never leaves the normal range (float64: 1e-38 .. 1e38; float32:
#: 2e-5 .. 3e4); only factors beyond those, where ``r^2/(1 + b.t)^2`` already decides
#: the sample, are affected.
def _factor_clip(dtype) -> tuple[float, float]:
    fi = jnp.finfo(dtype)
    return 2.0 * float(fi.tiny) ** (1.0 / LOG_GROUP), 0.5 * float(fi.max) ** (1.0 / LOG_GROUP)


# --------------------------------------------------------------------------- log posteriors


class AdditiveStats(NamedTuple):
    """Sufficient statistics of the Gaussian additive likelihood.

    ``dd = delta.delta``, ``td = T delta`` (K,), ``tt = T T^T`` (K, K), ``n = N``.
    """

    dd: Array
    td: Array
    tt: Array
    n: Array


class PixelChunks(NamedTuple):
    """Templates ``(C, K, chunk)`` and map ``(C, chunk)`` in zero-padded pixel chunks; ``n = N``."""

    templates: Array
    delta: Array
    n: Array


def additive_stats(delta: np.ndarray, templates: np.ndarray) -> AdditiveStats:
    """Sufficient statistics of ``delta`` and ``T`` for :func:`additive_logpost`."""
    d = jnp.asarray(delta)
    T = jnp.asarray(templates)
    return AdditiveStats(d @ d, T @ d, T @ T.T, jnp.asarray(d.shape[0], dtype=d.dtype))


def pixel_chunks(delta: np.ndarray, templates: np.ndarray, chunk: int = CHUNK) -> PixelChunks:
    """Zero-padded pixel chunks of ``delta`` and ``T`` for :func:`combined_logpost`.

    The chunk length is rounded up to a multiple of :data:`LOG_GROUP`; padded pixels
    (``delta = 0``, ``t = 0``) add nothing to the likelihood.
    """
    K, npix = templates.shape
    chunk = -(-int(min(chunk, npix)) // LOG_GROUP) * LOG_GROUP
    n_chunks = -(-npix // chunk)
    pad = n_chunks * chunk - npix
    T = np.pad(np.asarray(templates, dtype=float), ((0, 0), (0, pad)))
    d = np.pad(np.asarray(delta, dtype=float), (0, pad))
    return PixelChunks(
        jnp.asarray(T.reshape(K, n_chunks, chunk).transpose(1, 0, 2)),
        jnp.asarray(d.reshape(n_chunks, chunk)),
        jnp.asarray(float(npix)),
    )


@jax.jit
def additive_logpost(theta: Array, stats: AdditiveStats) -> Array:
    """Log posterior of the additive model, Gaussian likelihood (Berlfein+24 Eq. 17), flat prior.

    Parameters
    ----------
    theta : array, shape (W, K + 1)
        ``(a, s)`` per walker.
    stats : AdditiveStats

    Returns
    -------
    array, shape (W,)
        ``-N/2 ln(2 pi s^2) - (dd - 2 a.td + a^T tt a)/(2 s^2)``; ``-inf`` for ``s <= 0``.
    """
    a, s = theta[:, :-1], theta[:, -1]
    chi = stats.dd - 2.0 * a @ stats.td + jnp.einsum("wi,ij,wj->w", a, stats.tt, a)
    s_safe = jnp.where(s > 0.0, s, 1.0)
    lnl = -0.5 * stats.n * (_LOG_2PI + 2.0 * jnp.log(s_safe)) - 0.5 * chi / (s_safe * s_safe)
    return jnp.where(s > 0.0, lnl, -jnp.inf)


@jax.jit
def combined_logpost(theta: Array, chunks: PixelChunks) -> Array:
    """Log posterior of the combined model, Gaussian likelihood (Berlfein+24 Eqs. 13, 17), flat prior.

    Parameters
    ----------
    theta : array, shape (W, 2K + 1)
        ``(a, b, s)`` per walker.
    chunks : PixelChunks

    Returns
    -------
    array, shape (W,)
        ``-N/2 ln(2 pi s^2) - sum ln(1 + b.t) - sum r^2/(2 s^2)`` with
        ``r = (delta - a.t)/(1 + b.t)``; ``-inf`` where ``s <= 0`` or
        ``1 + b.t_p <= 0`` on any pixel.
    """
    K = chunks.templates.shape[1]
    s = theta[:, -1]
    W = theta.shape[0]
    a, b = theta[:, :K], theta[:, K:2 * K]
    lo, hi = _factor_clip(theta.dtype)

    def body(carry, xs):
        chi, logj = carry
        t, d = xs
        # two products, not one stacked (2W, K) product: XLA fuses a.t into the chi^2 sum
        f = 1.0 + b @ t
        r = (d[None, :] - a @ t) / f
        # sum of logs as the log of products over groups of LOG_GROUP pixels; a factor
        # at or beyond the pole enters as NaN, which the product and the sums carry to
        # the end (one pass over f instead of a separate minimum)
        g = jnp.prod(jnp.where(f > 0.0, jnp.clip(f, lo, hi), jnp.nan).reshape(W, -1, LOG_GROUP),
                     axis=2)
        return (chi + jnp.sum(r * r, axis=1), logj + jnp.sum(jnp.log(g), axis=1)), None

    zero = jnp.zeros(W, dtype=theta.dtype)
    (chi, logj), _ = lax.scan(body, (zero, zero), (chunks.templates, chunks.delta))
    s_safe = jnp.where(s > 0.0, s, 1.0)
    lnl = -0.5 * chunks.n * (_LOG_2PI + 2.0 * jnp.log(s_safe)) - logj - 0.5 * chi / (s_safe * s_safe)
    return jnp.where((s > 0.0) & ~jnp.isnan(logj), lnl, -jnp.inf)


# --------------------------------------------------------------------------- the methods


def _initial_ball(mle: MLEResult, logpost, data, W: int, rng: np.random.Generator) -> np.ndarray:
    """``W`` walkers around the MLE, scaled by its errors, all inside the domain."""
    theta = np.asarray(mle.theta, dtype=float)
    err = np.sqrt(np.abs(np.diag(np.asarray(mle.cov, dtype=float))))
    bad = ~np.isfinite(err) | (err == 0)
    err[bad] = 1e-4 * np.maximum(np.abs(theta[bad]), 1e-3)
    p0 = theta + BALL_SCALE * err * rng.standard_normal((W, theta.size))
    for _ in range(100):
        lp = np.asarray(logpost(jnp.asarray(p0), data))
        out = ~np.isfinite(lp)
        if not out.any():
            return p0
        p0[out] = theta + BALL_SCALE * err * rng.standard_normal((int(out.sum()), theta.size))
    raise RuntimeError("MCMC start: could not place the walkers inside the domain around the MLE")


class _MCMCSetup(NamedTuple):
    """Everything :func:`_run_mcmc` prepares before sampling."""

    data: MapData
    delta: np.ndarray
    T: np.ndarray
    lay: ParamLayout
    basis: FitBasis
    logpost: Callable
    pdata: Any
    d_j: Array
    T_j: Array
    mle0: MLEResult
    p0: np.ndarray


def _mcmc_setup(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence,
                model: str, name: str) -> _MCMCSetup:
    """Check the settings, build the posterior in the fitting basis and start at the MLE."""
    delta = np.asarray(data.delta, dtype=float)
    T = np.asarray(data.templates, dtype=float)
    K = T.shape[0]
    lay = param_layout(model, "gaussian", K)
    P = lay.size
    W = settings.mcmc_walkers
    if W < 2 * P:
        raise MethodInputError(
            f"methods.mcmc_walkers: {name} with K={K} has {P} parameters and needs at least "
            f"{2 * P} walkers (2 per parameter), got {W}"
        )
    if settings.mcmc_backend == "jax" and W % 2:
        raise MethodInputError(f"methods.mcmc_walkers: the jax backend needs an even number, got {W}")
    n_keep = (settings.mcmc_steps - settings.mcmc_burn_in) // settings.mcmc_thin
    if n_keep < 1:
        raise MethodInputError(
            f"methods.mcmc_thin: no samples kept after burn-in "
            f"({settings.mcmc_steps} steps, {settings.mcmc_burn_in} burn-in, thin {settings.mcmc_thin})"
        )
    basis: FitBasis = fit_basis(data, settings.pca)
    Tf = basis.templates
    if model == "additive":
        logpost, pdata = additive_logpost, additive_stats(delta, Tf)
    else:
        logpost, pdata = combined_logpost, pixel_chunks(delta, Tf)
    d_j, T_j = jnp.asarray(delta), jnp.asarray(Tf)
    mle0 = fit_mle(d_j, T_j, model, "gaussian", max_iter=settings.mle_max_iter, tol=settings.mle_tol)
    rng = np.random.default_rng(child_seed(seed, 0))
    p0 = _initial_ball(mle0, logpost, pdata, W, rng)
    return _MCMCSetup(data, delta, T, lay, basis, logpost, pdata, d_j, T_j, mle0, p0)


def _mcmc_sample(setup: _MCMCSetup, settings: MethodsSection, seed: np.random.SeedSequence,
                 name: str, extend: bool) -> tuple[ChainResult, int, str]:
    """Run the configured sampler from the initial ball; with ``extend``, until converged.

    Returns the chain, the steps run and why it stopped. Extension continues the
    ensemble from its last kept state in blocks of ``mcmc_steps - mcmc_burn_in``
    steps (one compiled program for the jax backend; block ``i`` seeded by child
    ``2 + i`` of ``seed``) until :func:`_chain_converged` or until the next block
    would pass ``methods.mcmc_max_steps``.
    """
    sampler = SAMPLERS[settings.mcmc_backend]
    thin = settings.mcmc_thin
    chain = sampler(setup.logpost, setup.pdata, setup.p0, settings.mcmc_steps,
                    settings.mcmc_burn_in, thin, child_seed(seed, 1))
    n_steps = settings.mcmc_steps
    reason = f"fixed length: methods.mcmc_steps = {n_steps}"
    if extend:
        block = max(thin, (settings.mcmc_steps - settings.mcmc_burn_in) // thin * thin)
        i = 0
        while True:
            if _chain_converged(setup, chain, settings)[0]:
                reason = f"ESS target and R-hat threshold met after {n_steps} steps"
                break
            if n_steps + block > settings.mcmc_max_steps:
                reason = (f"step cap reached: {n_steps} steps (methods.mcmc_max_steps = "
                          f"{settings.mcmc_max_steps}), ESS target not met")
                break
            more = sampler(setup.logpost, setup.pdata, chain.samples[-1], block, 0, thin,
                           child_seed(seed, 2 + i))
            chain = ChainResult(
                np.concatenate([chain.samples, more.samples]),
                np.concatenate([chain.log_prob, more.log_prob]),
                (chain.acceptance * n_steps + more.acceptance * block) / (n_steps + block),
                chain.n_outside + more.n_outside, chain.wall_time + more.wall_time)
            n_steps += block
            i += 1
    if not np.all(np.isfinite(chain.log_prob)):
        raise RuntimeError(f"{name}: a kept sample lies outside the domain (sampler error)")
    return chain, n_steps, reason


def _coefficient_samples(setup: _MCMCSetup, samples: np.ndarray) -> np.ndarray:
    """Flat samples ``(S W, m)`` of ``(a[, b])`` in the original template basis."""
    lay, basis = setup.lay, setup.basis
    flat = samples.reshape(-1, lay.size)
    parts = [basis.coef_to_original(flat[:, lay.a])]
    if lay.b is not None:
        parts.append(basis.coef_to_original(flat[:, lay.b]))
    return np.concatenate(parts, axis=1)


def _chain_converged(setup: _MCMCSetup, chain: ChainResult, settings: MethodsSection
                     ) -> tuple[bool, float, float, ChainSummary, ChainSummary]:
    """ESS target and R-hat threshold, over the sampled parameters and the reported coefficients.

    Returns ``(converged, min ESS, max R-hat, summary of the sampled parameters,
    summary of the original-basis coefficients)``.
    """
    thin = settings.mcmc_thin
    sampled = summarise_samples(chain.samples, thin)
    coef = summarise_samples(chain.samples, thin, _coefficient_samples(setup, chain.samples))
    ess = float(min(np.min(sampled.ess), np.min(coef.ess)))
    rhat = float(max(np.max(sampled.rhat), np.max(coef.rhat)))
    ok = bool(ess >= settings.mcmc_ess_target and rhat <= settings.mcmc_rhat_max)
    return ok, ess, rhat, sampled, coef


def _mcmc_refine(setup: _MCMCSetup, chain: ChainResult, settings: MethodsSection,
                 model: str) -> tuple[np.ndarray, MLEResult, str]:
    """Posterior maximum: the best sample (or the MLE start, if better) refined by ``fit_mle``."""
    P = setup.lay.size
    flat = chain.samples.reshape(-1, P)
    flat_lp = chain.log_prob.reshape(-1)
    best = flat[int(np.argmax(flat_lp))]
    best_lp = float(flat_lp.max())
    mle0 = setup.mle0
    start_lp = float(np.asarray(setup.logpost(jnp.asarray(mle0.theta)[None, :], setup.pdata))[0])
    if start_lp > best_lp:
        best, best_lp = np.asarray(mle0.theta, dtype=float), start_lp
    mle = fit_mle(setup.d_j, setup.T_j, model, "gaussian", theta0=jnp.asarray(best),
                  max_iter=settings.mle_max_iter, tol=settings.mle_tol)
    # same function evaluated two ways: allow for rounding of a sum over N pixels
    if mle.converged and np.isfinite(mle.loglike) and mle.loglike >= best_lp - 1e-10 * abs(best_lp) - 1e-8:
        return np.asarray(mle.theta, dtype=float), mle, "maximum refined by fit_mle"
    return best, mle, f"fit_mle refinement failed ({mle.message}); maximum = best sample"


def _honest_cov(setup: _MCMCSetup, theta_max: np.ndarray, model: str,
                settings: MethodsSection) -> tuple[np.ndarray, str]:
    """Sandwich covariance of ``(a[, b])`` at the posterior maximum, in the original basis.

    :func:`hpcsys.measure.sandwich.mle_covariance` of the Gaussian pixel
    likelihood at ``theta_max`` mapped to the original templates (the
    likelihood depends on ``a.t`` and ``b.t`` only, so the maximum and its
    covariance are basis-equivariant), with the run's sandwich setup
    (``data.sandwich``: band ``methods.sandwich_lmax``, the fixed templates'
    transform) or one built for this map. Falls back to ``nan`` (with the
    reason) where the Hessian is singular there.
    """
    from hpcsys.measure.honest import designs_for, sandwich_setup
    from hpcsys.measure.sandwich import mle_covariance

    lay, basis, data = setup.lay, setup.basis, setup.data
    idx = np.concatenate([np.arange(lay.size)[lay.a]]
                         + ([np.arange(lay.size)[lay.b]] if lay.b is not None else []))
    m = idx.size
    theta = np.array(theta_max, dtype=float)
    for sl in (lay.a, lay.b):
        if sl is not None:
            theta[sl] = basis.coef_to_original(theta[sl])
    cached = _comparison_cov(data, theta, model, m)
    if cached is not None:
        return cached, "errors: sandwich at the posterior maximum (= the model comparison's MLE)"
    sw = data.sandwich or sandwich_setup(data.pixels, data.nside, settings.sandwich_lmax)
    T = np.asarray(data.templates, dtype=float)
    try:
        full = mle_covariance(theta, setup.delta, T, model, "gaussian", sw.geometry,
                              designs_for(sw, T))
    except np.linalg.LinAlgError as exc:
        return np.full((m, m), np.nan), f"sandwich failed ({exc}); errors nan"
    cov = full[np.ix_(idx, idx)]
    if not np.all(np.isfinite(np.diag(cov))) or np.any(np.diag(cov) < 0):
        return np.full((m, m), np.nan), "sandwich covariance not positive at the maximum; errors nan"
    return 0.5 * (cov + cov.T), "errors: sandwich at the posterior maximum"


#: A posterior maximum is the model comparison's maximum when no parameter differs by
#: more than this fraction of its error (both are Newton maxima of the same likelihood).
SAME_MAXIMUM = 1e-4


def _comparison_cov(data: MapData, theta: np.ndarray, model: str, m: int) -> np.ndarray | None:
    """The model comparison's sandwich covariance of ``(a[, b])`` if its Gaussian
    maximum of ``model`` is ``theta`` (original basis), else ``None``."""
    comp = data.comparison
    if comp is None or "gaussian" not in comp.likelihoods:
        return None
    f, j = FIT_MODELS.index(model), comp.likelihoods.index("gaussian")
    fit = comp.fits[f * len(comp.likelihoods) + j]
    if fit.model != model or fit.likelihood != "gaussian" or not fit.converged:
        return None
    cov = np.asarray(comp.mle.cov[f, j], dtype=float)[:m, :m]
    err = np.sqrt(np.diag(cov))
    ref = np.asarray(fit.theta, dtype=float)
    if ref.shape != theta.shape or not np.all(np.isfinite(err)) or np.any(err <= 0):
        return None
    scale = np.concatenate([err, np.abs(ref[m:]) + 1e-300])  # s (and g): relative
    if np.max(np.abs(theta - ref) / scale) > SAME_MAXIMUM:
        return None
    return 0.5 * (cov + cov.T)


def _mcmc_summarise(setup: _MCMCSetup, chain: ChainResult, n_steps: int, reason: str,
                    theta_max: np.ndarray, mle: MLEResult, msg: str, settings: MethodsSection,
                    model: str, name: str, t0: float) -> MethodResult:
    """Back to the original basis: posterior summaries, honest errors, diagnostics, corrected map."""
    lay, T, delta = setup.lay, setup.T, setup.delta
    K, npix = T.shape
    W = settings.mcmc_walkers
    samples = chain.samples
    converged, ess_min, rhat_max, sampled, coef = _chain_converged(setup, chain, settings)
    has_b = MODELS[model][1]
    m = coef.mean.size
    a_hat = coef.mean[:K]
    b_hat = coef.mean[K:] if has_b else None
    cov = np.full((2 * K, 2 * K), np.nan)
    honest, cov_msg = _honest_cov(setup, theta_max, model, settings)
    cov[:m, :m] = honest
    err = np.sqrt(np.diag(honest))
    hit_pole = bool(has_b and (chain.n_outside > 0 or mle.hit_pole or setup.mle0.hit_pole))
    b_for_map = np.zeros(K) if b_hat is None else b_hat
    factor = 1.0 + b_for_map @ T
    corrected = (delta - a_hat @ T) / factor
    weights = 1.0 / factor if has_b else None
    diag = MethodDiagnostics(
        converged=converged,
        n_iterations=n_steps,
        acceptance_fraction=float(np.mean(chain.acceptance)),
        autocorr_time=float(max(np.max(sampled.tau), np.max(coef.tau))),
        effective_samples=ess_min,
        rhat_max=rhat_max,
        hit_pole=hit_pole,
        wall_time=time.perf_counter() - t0,
        stop_reason=reason,
        message=(f"backend={settings.mcmc_backend} walkers={W} steps={n_steps} "
                 f"kept={samples.shape[0]}x{W}; {reason}; min ESS {ess_min:.0f} (target "
                 f"{settings.mcmc_ess_target:g}), max split-R-hat {rhat_max:.4f} (max "
                 f"{settings.mcmc_rhat_max:g}): {'converged' if converged else 'NOT converged'}; "
                 f"point estimate = posterior mean; {msg}; {cov_msg}; {chain.n_outside} "
                 f"proposals outside the domain rejected; sampling {chain.wall_time:.2f}s"),
    )
    post = {"a_mean": coef.mean[:K], "a_std": coef.std[:K], "a_median": coef.median[:K],
            "a_ci68": coef.ci68[:K], "a_ci95": coef.ci95[:K], "a_ess": coef.ess[:K]}
    if has_b:
        post.update(b_mean=coef.mean[K:], b_std=coef.std[K:], b_median=coef.median[K:],
                    b_ci68=coef.ci68[K:], b_ci95=coef.ci95[K:], b_ess=coef.ess[K:])
    return make_result(
        name, model, K, npix, corrected, diag,
        a=a_hat, b=b_hat, a_err=err[:K], b_err=err[K:] if has_b else None,
        cov=cov, sigma=float(sampled.mean[lay.s]), weights=weights,
        # the posterior width treats pixels as independent: the MCMC's *_indep errors
        a_err_indep=coef.std[:K], b_err_indep=coef.std[K:] if has_b else np.full(K, np.nan),
        **post,
    )


def _run_mcmc(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence,
              model: str, name: str, extend: bool) -> MethodResult:
    """Set up, sample (extending if asked), find the maximum, summarise (one MCMC method)."""
    t0 = time.perf_counter()
    setup = _mcmc_setup(data, settings, seed, model, name)
    chain, n_steps, reason = _mcmc_sample(setup, settings, seed, name, extend)
    theta_max, mle, msg = _mcmc_refine(setup, chain, settings, model)
    return _mcmc_summarise(setup, chain, n_steps, reason, theta_max, mle, msg, settings, model,
                           name, t0)


def run_mcmc_add(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence, *,
                 extend: bool = False) -> MethodResult:
    """MCMC-add: ensemble sampling of ``(a, s)`` of the additive model (Berlfein+24 Eqs. 11, 17).

    Parameters
    ----------
    data : MapData
    settings : MethodsSection
        Uses ``pca``, ``mcmc_backend``, ``mcmc_walkers``, ``mcmc_steps``,
        ``mcmc_burn_in``, ``mcmc_thin``, ``mcmc_ess_target``, ``mcmc_rhat_max``,
        ``mcmc_max_steps`` (with ``extend``), ``mle_max_iter``, ``mle_tol``.
    seed : numpy.random.SeedSequence
        All randomness (initial ball, sampler, extension blocks).
    extend : bool
        Extend the chain past ``mcmc_steps`` until the ESS target and the R-hat
        threshold are met or ``mcmc_max_steps`` is reached (``hpcsys fit``);
        the mock pipeline runs the fixed length, as the cost model assumes.

    Returns
    -------
    MethodResult
        ``a`` = posterior mean; ``a_median``, ``a_ci68``, ``a_ci95``, ``a_std``,
        ``a_ess`` the other posterior summaries; ``a_err``/``cov`` the sandwich
        covariance at the posterior maximum; ``corrected = delta - a.t``;
        ``diagnostics.stop_reason`` says why the chain stopped.
    """
    return _run_mcmc(data, settings, seed, "additive", "MCMC-add", extend)


def run_mcmc_comb(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence, *,
                  extend: bool = False) -> MethodResult:
    """MCMC-comb: ensemble sampling of ``(a, b, s)`` of the combined model (Eqs. 13, 17).

    See :func:`run_mcmc_add`. ``corrected = (delta - a.t)/(1 + b.t)`` and
    ``weights = 1/(1 + b.t)`` with the posterior means ``a``, ``b``.
    """
    return _run_mcmc(data, settings, seed, "combined", "MCMC-comb", extend)
