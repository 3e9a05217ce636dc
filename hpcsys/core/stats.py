"""Statistics over realisations: LRT, empirical p-values, covariances, amplitude fits.

* :func:`likelihood_ratio_test` — Berlfein+24 Eq. 19, ``lambda = 2 (lnL_alt -
  lnL_null)`` against Wilks' ``chi^2`` with ``dof`` extra parameters.
* :func:`empirical_pvalue` — the same test calibrated on ``lambda`` from
  null-scenario mocks (docs/correlated_pixels.rst: spatially correlated pixels break
  Wilks' theorem).
* :func:`sample_covariance`, :func:`hartlap_inverse` — mock-to-mock covariance
  of ``w(theta)`` (Eq. 24 style) and its Hartlap-corrected inverse.
* :func:`amplitude_fit` — generalised least-squares amplitude ``w = A w_ref``
  (Eqs. 25-26).
* :func:`binomial_fraction` — rejection fractions with binomial errors (Table 2).

Pure JAX; every function broadcasts over leading axes and works under ``jit``
and ``vmap``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaincc

__all__ = [
    "AmplitudeFit",
    "BinomialFraction",
    "LRTResult",
    "amplitude_fit",
    "binomial_fraction",
    "empirical_pvalue",
    "hartlap_inverse",
    "likelihood_ratio_test",
    "sample_covariance",
]


class LRTResult(NamedTuple):
    """Likelihood-ratio test of nested models (Berlfein+24 Eq. 19)."""

    statistic: Array  #: ``lambda = 2 (lnL_alt - lnL_null)``
    dof: Array  #: extra free parameters of the alternative model
    pvalue: Array  #: ``P(chi^2_dof >= lambda)``


class AmplitudeFit(NamedTuple):
    """GLS amplitude of ``w = A w_ref`` and its error (Berlfein+24 Eqs. 25-26)."""

    A: Array
    sigma_A: Array


class BinomialFraction(NamedTuple):
    """Fraction ``k/n`` and its binomial standard error ``sqrt(f (1 - f) / n)``."""

    fraction: Array
    error: Array


def likelihood_ratio_test(lnl_null: Array, lnl_alt: Array, dof: int | Array) -> LRTResult:
    """Wilks likelihood-ratio test, Berlfein+24 Eq. 19.

    Parameters
    ----------
    lnl_null, lnl_alt : array
        Maximum log-likelihoods of the nested (null) and the larger
        (alternative) model; maxima, never posterior medians.
    dof : int or array
        Number of extra parameters of the alternative model
        (``n_params(alt) - n_params(null)``).

    Returns
    -------
    LRTResult
        ``statistic = 2 (lnl_alt - lnl_null)`` as computed (a negative value
        flags a fit that missed its maximum) and ``pvalue`` =
        ``Q(dof/2, max(statistic, 0)/2)``, the ``chi^2_dof`` survival function.
    """
    lnl_null = jnp.asarray(lnl_null)
    lnl_alt = jnp.asarray(lnl_alt)
    stat = 2.0 * (lnl_alt - lnl_null)
    dof = jnp.asarray(dof, dtype=stat.dtype)
    pvalue = gammaincc(0.5 * dof, 0.5 * jnp.maximum(stat, 0.0))
    return LRTResult(stat, jnp.broadcast_to(dof, stat.shape), pvalue)


def empirical_pvalue(statistic: Array, null_statistics: Array) -> Array:
    """p-value of ``statistic`` against an empirical (mock-calibrated) null distribution.

    ``p = (1 + #{lambda_null >= lambda}) / (1 + M)`` over the ``M`` finite
    null statistics (Davison & Hinkley 1997, Eq. 4.11: never exactly zero,
    exact size for exchangeable draws).

    Parameters
    ----------
    statistic : array, shape (...)
    null_statistics : array, shape (M,)
        Statistics from null-scenario realisations; non-finite entries are ignored.

    Returns
    -------
    array, shape (...)
    """
    statistic = jnp.asarray(statistic)
    null = jnp.asarray(null_statistics)
    valid = jnp.isfinite(null)
    m = jnp.sum(valid)
    exceed = jnp.sum(valid & (null >= statistic[..., None]), axis=-1)
    return (1.0 + exceed) / (1.0 + m)


def sample_covariance(samples: Array) -> Array:
    """Unbiased sample covariance over realisations (the mock covariance, Eq. 24 style).

    Parameters
    ----------
    samples : array, shape (..., N, B)
        ``N`` realisations of a ``B``-vector (e.g. ``w_true(theta)``).

    Returns
    -------
    array, shape (..., B, B)
        ``sum (x - mean)(x - mean)^T / (N - 1)``.
    """
    n = samples.shape[-2]
    x = samples - jnp.mean(samples, axis=-2, keepdims=True)
    return jnp.einsum("...ni,...nj->...ij", x, x) / (n - 1)


def hartlap_inverse(cov: Array, n_realisations: int) -> Array:
    """Hartlap-corrected inverse covariance (Hartlap, Simon & Schneider 2007).

    ``C^-1_unbiased = (N - B - 2)/(N - 1) C^-1`` for a covariance estimated
    from ``N`` realisations of a ``B``-vector.

    Parameters
    ----------
    cov : array, shape (..., B, B)
    n_realisations : int

    Returns
    -------
    array, shape (..., B, B)

    Raises
    ------
    ValueError
        If ``n_realisations <= B + 2`` (the estimate is not invertible or the
        correction factor is not positive).
    """
    nbin = cov.shape[-1]
    if isinstance(n_realisations, int) and n_realisations <= nbin + 2:
        raise ValueError(
            f"n_realisations: need more than B + 2 = {nbin + 2} realisations for a "
            f"Hartlap-corrected inverse of a {nbin}-bin covariance, got {n_realisations}")
    factor = (n_realisations - nbin - 2.0) / (n_realisations - 1.0)
    return factor * jnp.linalg.inv(cov)


def amplitude_fit(w: Array, w_ref: Array, cov_inv: Array) -> AmplitudeFit:
    """Generalised least-squares amplitude ``w = A w_ref``, Berlfein+24 Eqs. 25-26.

    ``A = w_ref^T C^-1 w / (w_ref^T C^-1 w_ref)``,
    ``sigma_A = (w_ref^T C^-1 w_ref)^(-1/2)``.

    Parameters
    ----------
    w : array, shape (..., B)
        Measured correlation functions (any number of realisations).
    w_ref : array, shape (B,)
        Reference (the mean true ``w``).
    cov_inv : array, shape (B, B)
        (Hartlap-corrected) inverse covariance.

    Returns
    -------
    AmplitudeFit
        ``A`` of shape ``(...)`` and ``sigma_A`` broadcast to the same shape.
    """
    proj = cov_inv @ w_ref
    norm = w_ref @ proj
    A = (w @ proj) / norm
    return AmplitudeFit(A, jnp.broadcast_to(norm**-0.5, A.shape))


def binomial_fraction(k: Array, n: Array) -> BinomialFraction:
    """Fraction of successes and its binomial error (Table 2 rejection rates).

    Parameters
    ----------
    k, n : array
        Successes and trials (``n > 0``).

    Returns
    -------
    BinomialFraction
        ``k/n`` and ``sqrt(f (1 - f)/n)`` (zero for ``f`` of 0 or 1: quote
        the number of trials alongside).
    """
    k = jnp.asarray(k)
    n = jnp.asarray(n)
    f = k / n
    return BinomialFraction(f, jnp.sqrt(f * (1.0 - f) / n))
