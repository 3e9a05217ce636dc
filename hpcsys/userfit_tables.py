"""The per-fit and per-test tables of ``hpcsys fit`` and their assembly.

:class:`MLEFit` (one maximum-likelihood fit with its honest and
independent-pixel errors) and :class:`LRTTable` (Wilks LRT and Wald test of
every nested pair), built from :func:`hpcsys.core.comparison.compare_models`
by :func:`mle_fits` and :func:`lrt_table`. Part of :mod:`hpcsys.userfit`,
which re-exports the classes; NumPy only at import (no JAX).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hpcsys.core.comparison import ModelComparison

__all__ = ["LRTTable", "MLEFit", "lrt_table", "mle_fits"]


@dataclass(frozen=True)
class LRTTable:
    """Tests of the nested models, one row per (pair, likelihood): Wilks LRT (Eq. 19) and Wald.

    Attributes
    ----------
    null_model, alt_model, likelihood : tuple of str
        The nested pair and the likelihood of each row.
    dof : ndarray of int64
        Extra parameters of the alternative model.
    statistic : ndarray
        ``lambda = 2 (lnL_alt - lnL_null)`` of the float64 maxima.
    pvalue_indep : ndarray
        Wilks chi-square survival probability of ``lambda`` with ``dof``
        (assumes independent pixels).
    wald_dof : ndarray of int64
        Extra coefficients tested (``K`` or ``2K``).
    wald_statistic : ndarray
        ``W = theta_x^T C_x^-1 theta_x`` of the alternative's extra
        coefficients with their sandwich covariance.
    pvalue : ndarray
        The honest p-value: ``P(chi^2_{wald_dof} >= W)``.
    converged : ndarray of bool
        Both fits converged and neither ran into the pole ``1 + b.t_p = 0``.
    """

    null_model: tuple[str, ...]
    alt_model: tuple[str, ...]
    likelihood: tuple[str, ...]
    dof: np.ndarray
    statistic: np.ndarray
    pvalue_indep: np.ndarray
    wald_dof: np.ndarray
    wald_statistic: np.ndarray
    pvalue: np.ndarray
    converged: np.ndarray


@dataclass(frozen=True)
class MLEFit:
    """One maximum-likelihood fit with its honest and independent-pixel errors.

    The fields of :class:`hpcsys.core.fit.MLEResult` (``theta`` in the layout
    of :func:`~hpcsys.core.likelihood.param_layout`), except that ``a_err``,
    ``b_err`` and ``cov`` are the sandwich ones.

    Attributes
    ----------
    a_err, b_err : ndarray, shape (K,)
        Honest (harmonic sandwich) errors; ``nan`` where the model has no such term.
    cov : ndarray, shape (2K, 2K)
        Sandwich covariance of ``(a, b)``; ``nan`` blocks where absent.
    a_err_indep, b_err_indep : ndarray, shape (K,)
        Inverse-Hessian errors (independent pixels).
    cov_indep : ndarray, shape (P, P)
        Inverse of ``-d^2 lnL`` at the maximum, for all of ``theta``.
    """

    model: str
    likelihood: str
    closed: bool
    theta: np.ndarray
    a: np.ndarray
    b: np.ndarray
    s: float
    g: float
    loglike: float
    converged: bool
    n_iter: int
    hit_pole: bool
    status: int
    decrement: float
    a_err: np.ndarray
    b_err: np.ndarray
    cov: np.ndarray
    a_err_indep: np.ndarray
    b_err_indep: np.ndarray
    cov_indep: np.ndarray

    @property
    def message(self) -> str:
        """Why the Newton iteration stopped (as :attr:`hpcsys.core.fit.MLEResult.message`)."""
        from hpcsys.core.fit import MLEResult

        return MLEResult.message.fget(self)


def mle_fits(comparison: ModelComparison) -> tuple[MLEFit, ...]:
    """The fits of :func:`~hpcsys.core.comparison.compare_models` with their honest errors."""
    from hpcsys.core.models import FIT_MODELS

    out = []
    L = len(comparison.likelihoods)
    for f, model in enumerate(FIT_MODELS):
        for j, lik in enumerate(comparison.likelihoods):
            r = comparison.fits[f * L + j]
            g = comparison.mle
            out.append(MLEFit(
                model=model, likelihood=lik, closed=bool(r.closed),
                theta=np.asarray(r.theta, dtype=np.float64),
                a=np.asarray(r.a, dtype=np.float64), b=np.asarray(r.b, dtype=np.float64),
                s=float(r.s), g=float(r.g), loglike=float(r.loglike),
                converged=bool(r.converged), n_iter=int(r.n_iter), hit_pole=bool(r.hit_pole),
                status=int(r.status), decrement=float(r.decrement),
                a_err=g.a_err[f, j], b_err=g.b_err[f, j], cov=g.cov[f, j],
                a_err_indep=np.asarray(r.a_err, dtype=np.float64),
                b_err_indep=np.asarray(r.b_err, dtype=np.float64),
                cov_indep=np.asarray(r.cov, dtype=np.float64)))
    return tuple(out)


def lrt_table(comparison: ModelComparison) -> LRTTable:
    """The LRT and Wald matrices of :func:`~hpcsys.core.comparison.compare_models`, one row per test."""
    from hpcsys.core.models import LRT_PAIRS

    rows = []
    t = comparison.lrt
    for q, (null, alt) in enumerate(LRT_PAIRS):
        for j, lik in enumerate(comparison.likelihoods):
            f0, f1 = comparison.fit(null, lik), comparison.fit(alt, lik)
            ok = f0.converged and f1.converged and not (f0.hit_pole or f1.hit_pole)
            rows.append((null, alt, lik, int(t.dof[q]), float(t.statistic[q, j]),
                         float(t.pvalue[q, j]), int(t.wald_dof[q]),
                         float(t.wald_statistic[q, j]), float(t.wald_pvalue[q, j]), ok))
    cols = list(zip(*rows))
    return LRTTable(
        null_model=tuple(cols[0]),
        alt_model=tuple(cols[1]),
        likelihood=tuple(cols[2]),
        dof=np.asarray(cols[3], dtype=np.int64),
        statistic=np.asarray(cols[4], dtype=np.float64),
        pvalue_indep=np.asarray(cols[5], dtype=np.float64),
        wald_dof=np.asarray(cols[6], dtype=np.int64),
        wald_statistic=np.asarray(cols[7], dtype=np.float64),
        pvalue=np.asarray(cols[8], dtype=np.float64),
        converged=np.asarray(cols[9], dtype=bool),
    )
