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
  ``t = 0, delta = 0`` and contribute exactly zero.

Both are compiled once per shape and are tested equal to
:func:`hpcsys.core.likelihood.loglike`.

Start and point estimate: walkers start in a ball of ``0.1 x`` the MLE errors
around the maximum-likelihood fit (:func:`hpcsys.core.fit.fit_mle`); after
the chain, the best sample is refined by :func:`~hpcsys.core.fit.fit_mle` and
that maximum is the point estimate (it feeds the likelihood-ratio test,
Berlfein+24 Eq. 19, so it is never a median). ``a_err``, ``b_err`` and ``cov``
are the posterior standard deviations and covariance of the samples (so
``a_err == a_std``); ``a_mean``/``b_mean`` are posterior means.

Diagnostics: acceptance fraction (mean over walkers, over all steps),
integrated autocorrelation time (max over parameters,
:func:`emcee.autocorr.integrated_time`, in steps), effective sample size
(min over parameters, kept samples / tau), ``converged`` when the kept chain
is longer than 50 tau, ``hit_pole`` when any proposal fell outside the domain
(it was rejected).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import emcee
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from hpcsys.config import MethodsSection
from hpcsys.core.fit import MLEResult, fit_mle
from hpcsys.core.likelihood import ParamLayout, param_layout
from hpcsys.core.models import MODELS
from hpcsys.methods._shared import FitBasis, MethodInputError, fit_basis, make_result
from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult

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
#: Stretch-move scale of Goodman & Weare (emcee's default).
STRETCH_A = 2.0
#: Walkers start within this fraction of the MLE errors around the MLE.
BALL_SCALE = 0.1
#: Pixels per chunk of the combined-model likelihood.
CHUNK = 1024


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
    """Zero-padded pixel chunks of ``delta`` and ``T`` for :func:`combined_logpost`."""
    K, npix = templates.shape
    chunk = int(min(chunk, npix))
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
    a, b, s = theta[:, :K], theta[:, K:2 * K], theta[:, -1]
    W = theta.shape[0]

    def body(carry, xs):
        chi, logj, fmin = carry
        t, d = xs
        f = 1.0 + b @ t
        ok = f > 0.0
        f_safe = jnp.where(ok, f, 1.0)
        r = (d[None, :] - a @ t) / f_safe
        return (chi + jnp.sum(r * r, axis=1), logj + jnp.sum(jnp.log(f_safe), axis=1),
                jnp.minimum(fmin, jnp.min(f, axis=1))), None

    zero = jnp.zeros(W, dtype=theta.dtype)
    (chi, logj, fmin), _ = lax.scan(body, (zero, zero, jnp.full(W, jnp.inf, theta.dtype)),
                                    (chunks.templates, chunks.delta))
    s_safe = jnp.where(s > 0.0, s, 1.0)
    lnl = -0.5 * chunks.n * (_LOG_2PI + 2.0 * jnp.log(s_safe)) - logj - 0.5 * chi / (s_safe * s_safe)
    return jnp.where((s > 0.0) & (fmin > 0.0), lnl, -jnp.inf)


# --------------------------------------------------------------------------- samplers


class ChainResult(NamedTuple):
    """Kept samples of an ensemble run.

    ``samples`` (S, W, P) and ``log_prob`` (S, W) after burn-in and thinning;
    ``acceptance`` (W,) over all steps; ``n_outside`` proposals outside the
    domain (all rejected); ``wall_time`` seconds of sampling.
    """

    samples: np.ndarray
    log_prob: np.ndarray
    acceptance: np.ndarray
    n_outside: int
    wall_time: float


def _child(seed: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """The i-th child of ``seed`` (like ``spawn``, without mutating ``seed``)."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i),
                                  pool_size=seed.pool_size)


def sample_emcee(logpost, data, p0: np.ndarray, n_steps: int, burn_in: int, thin: int,
                 seed: np.random.SeedSequence) -> ChainResult:
    """Reference backend: :class:`emcee.EnsembleSampler`, one batched JAX call per half step.

    Parameters
    ----------
    logpost : callable
        ``logpost(theta (W, P), data) -> (W,)``, jit-compiled.
    data : pytree
        Second argument of ``logpost``.
    p0 : ndarray, shape (W, P)
        Initial walkers, all inside the domain.
    n_steps, burn_in, thin : int
    seed : numpy.random.SeedSequence
        Seeds emcee's generator.

    Returns
    -------
    ChainResult
    """
    n_outside = 0

    def log_prob(coords: np.ndarray) -> np.ndarray:
        nonlocal n_outside
        out = np.asarray(logpost(jnp.asarray(coords), data))
        n_outside += int(np.count_nonzero(~np.isfinite(out)))
        return out

    W, P = p0.shape
    t0 = time.perf_counter()
    sampler = emcee.EnsembleSampler(W, P, log_prob, vectorize=True,
                                    moves=emcee.moves.StretchMove(a=STRETCH_A))
    sampler.random_state = np.random.RandomState(np.random.MT19937(seed)).get_state()
    sampler.run_mcmc(p0, n_steps, progress=False)
    samples = sampler.get_chain(discard=burn_in, thin=thin)
    lp = sampler.get_log_prob(discard=burn_in, thin=thin)
    return ChainResult(np.asarray(samples), np.asarray(lp), np.asarray(sampler.acceptance_fraction),
                       n_outside, time.perf_counter() - t0)


def _stretch_half(key: Array, x: Array, lp: Array, c: Array, logpost, data):
    """Stretch-move update of walkers ``x`` against the complementary set ``c`` (as emcee)."""
    kz, kj, ku = jax.random.split(key, 3)
    n, P = x.shape
    z = ((STRETCH_A - 1.0) * jax.random.uniform(kz, (n,), dtype=x.dtype) + 1.0) ** 2 / STRETCH_A
    j = jax.random.randint(kj, (n,), 0, c.shape[0])
    prop = c[j] - (c[j] - x) * z[:, None]
    lp_new = logpost(prop, data)
    outside = ~jnp.isfinite(lp_new)
    log_acc = (P - 1.0) * jnp.log(z) + lp_new - lp
    accept = (jnp.log(jax.random.uniform(ku, (n,), dtype=x.dtype)) < log_acc) & ~outside
    return (jnp.where(accept[:, None], prop, x), jnp.where(accept, lp_new, lp),
            accept.astype(jnp.int32), jnp.sum(outside, dtype=jnp.int32))


def _stretch_step(key: Array, pos: Array, lp: Array, logpost, data):
    """One ensemble step: random red/blue split, then each half updated against the other.

    The two half-updates run in a ``fori_loop`` so the program holds a single
    copy of ``logpost`` (``W`` must be even).
    """
    W = pos.shape[0]
    n = W // 2
    kp, kh = jax.random.split(key)
    perm = jax.random.permutation(kp, W)

    def half(i, carry):
        pos, lp, acc, out = carry
        active = lax.dynamic_slice(perm, (i * n,), (n,))
        other = lax.dynamic_slice(perm, ((1 - i) * n,), (n,))
        x, lx, a, o = _stretch_half(jax.random.fold_in(kh, i), pos[active], lp[active], pos[other],
                                    logpost, data)
        return pos.at[active].set(x), lp.at[active].set(lx), acc.at[active].add(a), out + o

    return lax.fori_loop(0, 2, half, (pos, lp, jnp.zeros(W, jnp.int32), jnp.zeros((), jnp.int32)))


@partial(jax.jit, static_argnames=("logpost", "n_steps", "burn_in", "thin"))
def _jax_chain(key: Array, p0: Array, data, logpost, n_steps: int, burn_in: int, thin: int):
    """The whole chain as one program: a scan over the burn-in, then one over kept blocks.

    Step ``i`` (0-based) is kept when ``i >= burn_in`` and ``(i - burn_in + 1) % thin == 0``,
    the same samples as ``emcee``'s ``get_chain(discard=burn_in, thin=thin)``. The kept
    samples are the outputs of the outer scan (written in place, once each) rather than a
    buffer carried through every step, which XLA copied at each step (0.5 ms per step at
    250 walkers x 51 parameters x 1200 kept samples). Step ``i`` uses the key
    ``fold_in(key, i)`` either way, so the chain is the same.
    """
    W = p0.shape[0]
    n_keep = (n_steps - burn_in) // thin
    lp0 = logpost(p0, data)

    def step(carry, i):
        pos, lp, acc, out = carry
        pos, lp, a, o = _stretch_step(jax.random.fold_in(key, i), pos, lp, logpost, data)
        return (pos, lp, acc + a, out + o), None

    carry = (p0, lp0, jnp.zeros(W, jnp.int32), jnp.zeros((), jnp.int32))
    carry, _ = lax.scan(step, carry, jnp.arange(burn_in))

    def block(carry, j):  # thin steps; the last one is kept
        carry, _ = lax.scan(step, carry, burn_in + j * thin + jnp.arange(thin))
        return carry, (carry[0], carry[1])

    carry, (buf, lbuf) = lax.scan(block, carry, jnp.arange(n_keep))
    # steps after the last kept one still count in the acceptance and outside tallies
    (_, _, acc, out), _ = lax.scan(step, carry, jnp.arange(burn_in + n_keep * thin, n_steps))
    return buf, lbuf, acc, out


def sample_jax(logpost, data, p0: np.ndarray, n_steps: int, burn_in: int, thin: int,
               seed: np.random.SeedSequence) -> ChainResult:
    """Device-resident backend: the stretch-move chain as one compiled :func:`jax.lax.scan`.

    Same arguments and result as :func:`sample_emcee`; ``seed`` gives the JAX key.
    """
    t0 = time.perf_counter()
    key = jax.random.wrap_key_data(jnp.asarray(seed.generate_state(2, dtype=np.uint32)),
                                   impl="threefry2x32")
    if p0.shape[0] % 2:
        raise MethodInputError(f"methods.mcmc_walkers: the jax backend needs an even number, got {p0.shape[0]}")
    samples, lps, acc, outside = _jax_chain(key, jnp.asarray(p0), data, logpost,
                                            int(n_steps), int(burn_in), int(thin))
    samples = np.asarray(samples)
    return ChainResult(samples, np.asarray(lps), np.asarray(acc) / n_steps, int(outside),
                       time.perf_counter() - t0)


_SAMPLERS = {"emcee": sample_emcee, "jax": sample_jax}


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


def _autocorr(samples: np.ndarray, thin: int) -> np.ndarray:
    """Integrated autocorrelation time per parameter in steps (emcee's estimator, quiet)."""
    log = logging.getLogger("emcee.autocorr")
    level = log.level
    log.setLevel(logging.ERROR)  # the short-chain warning is reported via ``converged``
    try:
        tau = emcee.autocorr.integrated_time(samples, quiet=True)
    finally:
        log.setLevel(level)
    return np.asarray(tau, dtype=float) * thin


class _MCMCSetup(NamedTuple):
    """Everything :func:`_run_mcmc` prepares before sampling."""

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
    rng = np.random.default_rng(_child(seed, 0))
    p0 = _initial_ball(mle0, logpost, pdata, W, rng)
    return _MCMCSetup(delta, T, lay, basis, logpost, pdata, d_j, T_j, mle0, p0)


def _mcmc_sample(setup: _MCMCSetup, settings: MethodsSection, seed: np.random.SeedSequence,
                 name: str) -> ChainResult:
    """Run the configured sampler from the initial ball."""
    chain = _SAMPLERS[settings.mcmc_backend](setup.logpost, setup.pdata, setup.p0,
                                             settings.mcmc_steps, settings.mcmc_burn_in,
                                             settings.mcmc_thin, _child(seed, 1))
    if not np.all(np.isfinite(chain.log_prob)):
        raise RuntimeError(f"{name}: a kept sample lies outside the domain (sampler error)")
    return chain


def _mcmc_refine(setup: _MCMCSetup, chain: ChainResult, settings: MethodsSection,
                 model: str) -> tuple[np.ndarray, MLEResult, str]:
    """Point estimate: the best sample (or the MLE start, if better) refined to the maximum."""
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
    return best, mle, f"fit_mle refinement failed ({mle.message}); point estimate = best sample"


def _mcmc_summarise(setup: _MCMCSetup, chain: ChainResult, theta_hat: np.ndarray,
                    mle: MLEResult, msg: str, settings: MethodsSection, model: str, name: str,
                    t0: float) -> MethodResult:
    """Back to the original basis: estimates, posterior moments, diagnostics, corrected map."""
    lay, basis, T, delta = setup.lay, setup.basis, setup.T, setup.delta
    K, npix = T.shape
    W = settings.mcmc_walkers
    samples = chain.samples
    flat = samples.reshape(-1, lay.size)
    a_hat = basis.coef_to_original(theta_hat[lay.a])
    a_s = basis.coef_to_original(flat[:, lay.a])
    if lay.b is not None:
        b_hat = basis.coef_to_original(theta_hat[lay.b])
        b_s = basis.coef_to_original(flat[:, lay.b])
        ab = np.concatenate([a_s, b_s], axis=1)
    else:
        b_hat = None
        b_s = None
        ab = a_s
    cov_ab = np.atleast_2d(np.cov(ab, rowvar=False))
    cov = np.full((2 * K, 2 * K), np.nan)
    m = ab.shape[1]
    cov[:m, :m] = cov_ab
    std = np.sqrt(np.diag(cov_ab))
    tau = _autocorr(samples, settings.mcmc_thin)
    n_kept_steps = samples.shape[0] * settings.mcmc_thin
    ess = samples.shape[0] * samples.shape[1] * settings.mcmc_thin / tau
    tau_max = float(np.max(tau))
    converged = bool(n_kept_steps > 50 * tau_max)
    has_b = MODELS[model][1]
    hit_pole = bool(has_b and (chain.n_outside > 0 or mle.hit_pole or setup.mle0.hit_pole))
    b_for_map = np.zeros(K) if b_hat is None else b_hat
    factor = 1.0 + b_for_map @ T
    corrected = (delta - a_hat @ T) / factor
    weights = 1.0 / factor if has_b else None
    diag = MethodDiagnostics(
        converged=converged,
        n_iterations=settings.mcmc_steps,
        acceptance_fraction=float(np.mean(chain.acceptance)),
        autocorr_time=tau_max,
        effective_samples=float(np.min(ess)),
        hit_pole=hit_pole,
        wall_time=time.perf_counter() - t0,
        message=(f"backend={settings.mcmc_backend} walkers={W} steps={settings.mcmc_steps} "
                 f"kept={samples.shape[0]}x{W}; {msg}; {chain.n_outside} proposals outside "
                 f"the domain rejected; sampling {chain.wall_time:.2f}s; "
                 f"{'chain > 50 tau' if converged else 'chain shorter than 50 tau'}"),
    )
    post = {"a_mean": a_s.mean(axis=0), "a_std": std[:K]}
    if b_s is not None:
        post.update(b_mean=b_s.mean(axis=0), b_std=std[K:])
    return make_result(
        name, model, K, npix, corrected, diag,
        a=a_hat, b=b_hat, a_err=std[:K], b_err=std[K:] if b_s is not None else None,
        cov=cov, sigma=float(theta_hat[lay.s]), weights=weights, **post,
    )


def _run_mcmc(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence,
              model: str, name: str) -> MethodResult:
    """Set up, sample, refine the point estimate, summarise (one MCMC method)."""
    t0 = time.perf_counter()
    setup = _mcmc_setup(data, settings, seed, model, name)
    chain = _mcmc_sample(setup, settings, seed, name)
    theta_hat, mle, msg = _mcmc_refine(setup, chain, settings, model)
    return _mcmc_summarise(setup, chain, theta_hat, mle, msg, settings, model, name, t0)


def run_mcmc_add(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence) -> MethodResult:
    """MCMC-add: ensemble sampling of ``(a, s)`` of the additive model (Berlfein+24 Eqs. 11, 17).

    Parameters
    ----------
    data : MapData
    settings : MethodsSection
        Uses ``pca``, ``mcmc_backend``, ``mcmc_walkers``, ``mcmc_steps``,
        ``mcmc_burn_in``, ``mcmc_thin``, ``mle_max_iter``, ``mle_tol``.
    seed : numpy.random.SeedSequence
        All randomness (initial ball, sampler).

    Returns
    -------
    MethodResult
        ``a`` = refined posterior maximum, ``a_err``/``cov`` posterior,
        ``corrected = delta - a.t``.
    """
    return _run_mcmc(data, settings, seed, "additive", "MCMC-add")


def run_mcmc_comb(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence) -> MethodResult:
    """MCMC-comb: ensemble sampling of ``(a, b, s)`` of the combined model (Eqs. 13, 17).

    See :func:`run_mcmc_add`. ``corrected = (delta - a.t)/(1 + b.t)`` and
    ``weights = 1/(1 + b.t)``.
    """
    return _run_mcmc(data, settings, seed, "combined", "MCMC-comb")
