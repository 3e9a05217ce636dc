"""Every model under every likelihood, and the matrix of likelihood-ratio tests.

:func:`compare_models` fits each model of :data:`hpcsys.core.models.FIT_MODELS`
by maximum likelihood (:func:`hpcsys.core.fit.fit_mle`, Berlfein+24 Eqs.
17-18) under each requested likelihood and computes the likelihood-ratio test
of every pair of :data:`hpcsys.core.models.LRT_PAIRS` (Berlfein+24 Eq. 19,
``dof`` the difference of :func:`hpcsys.core.likelihood.n_params`). The
pipeline (one mock realisation) and ``hpcsys fit`` (a user's maps) both call it.

Errors and tests come in two kinds (docs/correlated_pixels.rst):

* **honest** (the default names ``a_err``, ``b_err``, ``cov`` and the Wald
  test ``wald_statistic``, ``wald_pvalue``): from a covariance provider passed
  as ``covariance=`` (the harmonic sandwich of
  :mod:`hpcsys.measure.sandwich`, via :func:`hpcsys.measure.honest.mle_covariances`),
  which holds on a spatially correlated sky; ``nan`` when no provider is given;
* **independent pixels** (``a_err_indep``, ``b_err_indep`` and the Wilks LRT
  ``statistic``, ``pvalue``): the inverse Hessian of the pixel likelihood and
  Wilks' theorem, both exact only for independent pixels.

The Wald test of a pair is ``W = theta_x^T C_x^-1 theta_x`` of the extra
coefficients ``theta_x`` of the alternative model (``a``, ``b`` or both) at
the alternative's maximum, ``C_x`` their block of the honest covariance,
against ``chi^2`` with ``wald_dof = len(theta_x)`` degrees of freedom. All in
float64 NumPy, whatever JAX's precision setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from jax import Array
from scipy.special import gammaincc

from hpcsys.core.fit import MLEResult, fit_mle
from hpcsys.core.likelihood import n_params, param_layout
from hpcsys.core.models import FIT_MODELS, LRT_PAIRS, MODELS

#: ``covariance(fit) -> (P, P)`` honest covariance of ``fit.theta`` (layout
#: :func:`~hpcsys.core.likelihood.param_layout`).
CovarianceProvider = Callable[[MLEResult], np.ndarray]

__all__ = ["CovarianceProvider", "LRTMatrix", "MLEGrid", "ModelComparison", "compare_models",
           "extra_parameters", "wald_test"]


@dataclass(frozen=True)
class MLEGrid:
    """The maxima of every (model, likelihood) as arrays (F = len(FIT_MODELS), L likelihoods).

    Attributes
    ----------
    loglike : ndarray, shape (F, L)
        Maximum log-likelihood.
    converged, hit_pole : ndarray of bool, shape (F, L)
    a, b : ndarray, shape (F, L, K)
        Coefficients (zero where the model has no such term).
    a_err, b_err : ndarray, shape (F, L, K)
        Honest (sandwich) errors, ``sqrt(diag(cov))``; ``nan`` where the model
        has no such term or no covariance provider was given.
    s, g : ndarray, shape (F, L)
        Pixel scale and skew-normal shape.
    cov : ndarray, shape (F, L, 2K, 2K)
        Honest covariance of ``(a, b)``; ``nan`` blocks where absent.
    a_err_indep, b_err_indep : ndarray, shape (F, L, K)
        Inverse-Hessian errors, which assume independent pixels.
    """

    loglike: np.ndarray
    converged: np.ndarray
    hit_pole: np.ndarray
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    s: np.ndarray
    g: np.ndarray
    cov: np.ndarray
    a_err_indep: np.ndarray
    b_err_indep: np.ndarray


@dataclass(frozen=True)
class LRTMatrix:
    """Likelihood-ratio tests of every pair and likelihood (Q = len(LRT_PAIRS)).

    Attributes
    ----------
    statistic : ndarray, shape (Q, L)
        ``lambda = 2 (lnL_alt - lnL_null)`` (Berlfein+24 Eq. 19), float64.
    pvalue : ndarray, shape (Q, L)
        Wilks chi-square survival probability of ``lambda`` (assumes
        independent pixels).
    dof : ndarray of int, shape (Q,)
        Extra parameters of the alternative model (``s`` and ``g`` included).
    wald_statistic : ndarray, shape (Q, L)
        ``W = theta_x^T C_x^-1 theta_x`` of the extra coefficients at the
        alternative's maximum with the honest covariance (``nan`` without one).
    wald_pvalue : ndarray, shape (Q, L)
        ``P(chi^2_{wald_dof} >= W)``.
    wald_dof : ndarray of int, shape (Q,)
        Extra coefficients tested (``K`` or ``2K``).
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    dof: np.ndarray
    wald_statistic: np.ndarray
    wald_pvalue: np.ndarray
    wald_dof: np.ndarray


@dataclass(frozen=True)
class ModelComparison:
    """Result of :func:`compare_models`.

    Attributes
    ----------
    likelihoods : tuple of str
        The likelihood axis (L).
    fits : tuple of MLEResult, length F L
        One fit per (model, likelihood): models of ``FIT_MODELS`` outer.
    mle : MLEGrid
        The same fits as (F, L) arrays.
    lrt : LRTMatrix
    """

    likelihoods: tuple[str, ...]
    fits: tuple[MLEResult, ...]
    mle: MLEGrid
    lrt: LRTMatrix

    def fit(self, model: str, likelihood: str) -> MLEResult:
        """The fit of ``model`` under ``likelihood``."""
        f, j = FIT_MODELS.index(model), self.likelihoods.index(likelihood)
        return self.fits[f * len(self.likelihoods) + j]


def extra_parameters(null: str, alt: str, K: int) -> np.ndarray:
    """Indices into ``(a, b)`` (length 2K) of the coefficients ``alt`` adds to ``null``."""
    (na, nb), (aa, ab) = MODELS[null], MODELS[alt]
    idx = []
    if aa and not na:
        idx += range(K)
    if ab and not nb:
        idx += range(K, 2 * K)
    return np.asarray(idx, dtype=int)


def wald_test(theta: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    """Wald statistic ``theta^T cov^-1 theta`` and its chi-square p-value (``len(theta)`` dof).

    ``nan`` for a non-finite or singular covariance.
    """
    theta = np.asarray(theta, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if theta.size == 0 or not (np.all(np.isfinite(cov)) and np.all(np.isfinite(theta))):
        return float("nan"), float("nan")
    try:
        stat = float(theta @ np.linalg.solve(cov, theta))
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    return stat, float(gammaincc(0.5 * theta.size, 0.5 * max(stat, 0.0)))


def _ab_covariance(cov_theta: np.ndarray, model: str, likelihood: str, K: int) -> np.ndarray:
    """The ``(2K, 2K)`` covariance of ``(a, b)`` from a covariance of ``theta``."""
    lay = param_layout(model, likelihood, K)
    pos = np.full(2 * K, -1)
    if lay.a is not None:
        pos[:K] = np.arange(lay.size)[lay.a]
    if lay.b is not None:
        pos[K:] = np.arange(lay.size)[lay.b]
    out = np.full((2 * K, 2 * K), np.nan)
    ok = np.flatnonzero(pos >= 0)
    out[np.ix_(ok, ok)] = np.asarray(cov_theta, dtype=np.float64)[np.ix_(pos[ok], pos[ok])]
    return out


def compare_models(delta: Array, templates: Array, likelihoods: Sequence[str], *,
                   max_iter: int = 200, tol: float = 1e-9,
                   covariance: CovarianceProvider | None = None) -> ModelComparison:
    """Fit every model of ``FIT_MODELS`` under each likelihood and test every ``LRT_PAIRS``.

    Parameters
    ----------
    delta : array, shape (Npix,)
        Observed overdensity on the footprint.
    templates : array, shape (K, Npix)
    likelihoods : sequence of str
        Likelihoods to fit (:data:`hpcsys.core.models.LIKELIHOODS`).
    max_iter, tol : int, float
        Newton settings of :func:`hpcsys.core.fit.fit_mle`.
    covariance : callable, optional
        Honest covariance of each fit (:data:`CovarianceProvider`); without it
        the honest errors and the Wald tests are ``nan``.

    Returns
    -------
    ModelComparison
    """
    liks = tuple(likelihoods)
    K = np.shape(templates)[0]
    F, L, Q = len(FIT_MODELS), len(liks), len(LRT_PAIRS)
    loglike = np.full((F, L), np.nan)
    converged = np.zeros((F, L), dtype=bool)
    hit_pole = np.zeros((F, L), dtype=bool)
    a, b = np.zeros((F, L, K)), np.zeros((F, L, K))
    a_ind, b_ind = np.full((F, L, K), np.nan), np.full((F, L, K), np.nan)
    cov = np.full((F, L, 2 * K, 2 * K), np.nan)
    s, g = np.full((F, L), np.nan), np.full((F, L), np.nan)
    fits = []
    for f, model in enumerate(FIT_MODELS):
        for j, lik in enumerate(liks):
            fit = fit_mle(delta, templates, model, lik, max_iter=max_iter, tol=tol)
            fits.append(fit)
            loglike[f, j] = fit.loglike
            converged[f, j] = fit.converged
            hit_pole[f, j] = fit.hit_pole
            a[f, j], b[f, j] = fit.a, fit.b
            a_ind[f, j], b_ind[f, j] = fit.a_err, fit.b_err
            s[f, j], g[f, j] = fit.s, fit.g
            if covariance is not None and model != "null":
                cov[f, j] = _ab_covariance(covariance(fit), model, lik, K)
    err = np.sqrt(np.diagonal(cov, axis1=2, axis2=3))
    statistic, pvalue = np.full((Q, L), np.nan), np.full((Q, L), np.nan)
    w_stat, w_p = np.full((Q, L), np.nan), np.full((Q, L), np.nan)
    dofs, w_dofs = np.zeros(Q, dtype=int), np.zeros(Q, dtype=int)
    for q, (null, alt) in enumerate(LRT_PAIRS):
        f0, f1 = FIT_MODELS.index(null), FIT_MODELS.index(alt)
        extra = extra_parameters(null, alt, K)
        w_dofs[q] = extra.size
        for j, lik in enumerate(liks):
            dof = n_params(alt, lik, K) - n_params(null, lik, K)
            dofs[q] = dof
            stat = 2.0 * (np.float64(loglike[f1, j]) - np.float64(loglike[f0, j]))
            statistic[q, j] = stat
            pvalue[q, j] = gammaincc(0.5 * dof, 0.5 * max(stat, 0.0))
            theta_ab = np.concatenate([a[f1, j], b[f1, j]])
            w_stat[q, j], w_p[q, j] = wald_test(theta_ab[extra],
                                                cov[f1, j][np.ix_(extra, extra)])
    grid = MLEGrid(loglike=loglike, converged=converged, hit_pole=hit_pole, a=a, b=b,
                   a_err=err[:, :, :K], b_err=err[:, :, K:], s=s, g=g, cov=cov,
                   a_err_indep=a_ind, b_err_indep=b_ind)
    lrt = LRTMatrix(statistic=statistic, pvalue=pvalue, dof=dofs, wald_statistic=w_stat,
                    wald_pvalue=w_p, wald_dof=w_dofs)
    return ModelComparison(likelihoods=liks, fits=tuple(fits), mle=grid, lrt=lrt)
