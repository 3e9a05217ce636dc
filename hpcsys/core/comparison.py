"""Every model under every likelihood, and the matrix of likelihood-ratio tests.

:func:`compare_models` fits each model of :data:`hpcsys.core.models.FIT_MODELS`
by maximum likelihood (:func:`hpcsys.core.fit.fit_mle`, Berlfein+24 Eqs.
17-18) under each requested likelihood and computes the likelihood-ratio test
of every pair of :data:`hpcsys.core.models.LRT_PAIRS` (Berlfein+24 Eq. 19,
``dof`` the difference of :func:`hpcsys.core.likelihood.n_params`). The
pipeline (one mock realisation) and ``hpcsys fit`` (a user's maps) both call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jax import Array

from hpcsys.core.fit import MLEResult, fit_mle
from hpcsys.core.likelihood import n_params
from hpcsys.core.models import FIT_MODELS, LRT_PAIRS
from hpcsys.core.stats import likelihood_ratio_test

__all__ = ["LRTMatrix", "MLEGrid", "ModelComparison", "compare_models"]


@dataclass(frozen=True)
class MLEGrid:
    """The maxima of every (model, likelihood) as arrays (F = len(FIT_MODELS), L likelihoods).

    Attributes
    ----------
    loglike : ndarray, shape (F, L)
        Maximum log-likelihood.
    converged, hit_pole : ndarray of bool, shape (F, L)
    a, b, a_err, b_err : ndarray, shape (F, L, K)
        Coefficients and errors (zero / ``nan`` where the model has no such term).
    s, g : ndarray, shape (F, L)
        Pixel scale and skew-normal shape.
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


@dataclass(frozen=True)
class LRTMatrix:
    """Likelihood-ratio tests of every pair and likelihood (Q = len(LRT_PAIRS)).

    Attributes
    ----------
    statistic : ndarray, shape (Q, L)
        ``lambda = 2 (lnL_alt - lnL_null)`` (Berlfein+24 Eq. 19).
    pvalue : ndarray, shape (Q, L)
        Wilks chi-square survival probability of ``lambda``.
    dof : ndarray of int, shape (Q,)
        Extra parameters of the alternative model.
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    dof: np.ndarray


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


def compare_models(delta: Array, templates: Array, likelihoods: Sequence[str], *,
                   max_iter: int = 200, tol: float = 1e-9) -> ModelComparison:
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
    a_err, b_err = np.full((F, L, K), np.nan), np.full((F, L, K), np.nan)
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
            a_err[f, j], b_err[f, j] = fit.a_err, fit.b_err
            s[f, j], g[f, j] = fit.s, fit.g
    statistic, pvalue = np.full((Q, L), np.nan), np.full((Q, L), np.nan)
    dofs = np.zeros(Q, dtype=int)
    for q, (null, alt) in enumerate(LRT_PAIRS):
        f0, f1 = FIT_MODELS.index(null), FIT_MODELS.index(alt)
        for j, lik in enumerate(liks):
            dof = n_params(alt, lik, K) - n_params(null, lik, K)
            test = likelihood_ratio_test(loglike[f0, j], loglike[f1, j], dof)
            statistic[q, j] = float(test.statistic)
            pvalue[q, j] = float(test.pvalue)
            dofs[q] = dof
    grid = MLEGrid(loglike=loglike, converged=converged, hit_pole=hit_pole, a=a, b=b,
                   a_err=a_err, b_err=b_err, s=s, g=g)
    return ModelComparison(likelihoods=liks, fits=tuple(fits), mle=grid,
                           lrt=LRTMatrix(statistic=statistic, pvalue=pvalue, dof=dofs))
