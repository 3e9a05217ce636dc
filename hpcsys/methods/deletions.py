"""Delete-one-region jackknife of every method's coefficients.

The spatial jackknife of :mod:`hpcsys.measure.jackknife` applied to the six
methods of Berlfein+24 Section 3, each in the cheapest exact or near-exact
way (what each deletion means is stated per method):

* ``OLS``: exact rank-K downdates of the Gram matrix.
* ``ElasticNet``: the penalised regression refitted on each complement at the
  penalty and ``l1_ratio`` chosen by cross-validation on the whole map, warm
  started at the whole-map coefficients (the selection of the penalty is not
  repeated: the jackknife covers the coefficients' sampling noise at that
  penalty, not the penalty's own).
* ``MCMC-add`` / ``MCMC-comb``: warm-started Newton deletions of the
  Gaussian-likelihood maximum of the method's model (Berlfein+24 Eq. 17), the
  posterior's mode under its flat prior, shifted to the method's point
  estimate. The posterior mean differs from the mode by O(1/N_pix) and moves
  with it under a deletion, so the spread of the deletions, which is all the
  covariance uses, is that of the mode.
* ``ISD-1`` / ``ISD-3``: the whole method rerun on each complement (its
  template selection included). Each rerun rebuilds ISD's harmonic
  binned-mean errors on a new footprint (tens of CPU s per region at paper
  size), so the mock pipeline does it only with ``methods.jackknife_isd``.

Used by the mock pipeline and ``hpcsys fit`` for ``cov_jackknife`` and by the
docs' coverage figure.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpcsys.config import REMEASURED_METHODS, Config, MethodsSection
from hpcsys.core.likelihood import param_layout
from hpcsys.core.models import FIT_MODELS, MODELS
from hpcsys.measure.jackknife import (
    JackknifeRegions,
    jackknife_covariance,
    mle_deletions,
    ols_deletions,
    refit_deletions,
)
from hpcsys.methods._shared import fit_basis
from hpcsys.methods.base import MapData, MethodResult

__all__ = [
    "JackknifeErrors",
    "method_deletions",
    "method_jackknife_covariance",
    "task_jackknife",
    "with_jackknife_cov",
]

_MCMC_MODEL = {"MCMC-add": "additive", "MCMC-comb": "combined"}


@dataclass(frozen=True)
class JackknifeErrors:
    """Delete-one-region jackknife of one task (:mod:`hpcsys.measure.jackknife`).

    Shapes as in :class:`hpcsys.pipeline.RealisationResult` (M methods, F fit
    models, L likelihoods, K templates); ``nan`` where not computed (the
    jackknife off, ``methods.jackknife_regions = 0``; ISD without
    ``methods.jackknife_isd``; unconverged fits).

    Attributes
    ----------
    n_regions : int
        Regions R (0: not computed).
    method_cov : ndarray, shape (M, 2K, 2K)
        Jackknife covariance of each method's ``(a, b)`` (:func:`method_deletions`).
    mle_a_err, mle_b_err : ndarray, shape (F, L, K)
        Jackknife errors of every MLE fit's coefficients (``nan`` where the
        model lacks the term).
    """

    n_regions: int
    method_cov: np.ndarray
    mle_a_err: np.ndarray
    mle_b_err: np.ndarray


def _restrict(data: MapData, keep: np.ndarray) -> MapData:
    return MapData(delta=data.delta[keep], templates=data.templates[:, keep],
                   pixels=data.pixels[keep], nside=data.nside, names=data.names)


def _elasticnet_deletions(result: MethodResult, data: MapData, settings: MethodsSection,
                          regions: JackknifeRegions) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    diag = result.diagnostics
    if not (np.isfinite(diag.penalty) and np.isfinite(diag.l1_ratio)):
        raise ValueError("ElasticNet result carries no penalty/l1_ratio to refit at")
    basis = fit_basis(data, settings.pca)
    X = basis.templates.T
    coef0 = np.linalg.solve(basis.V, result.a) if basis.rotated else result.a

    def refit(keep: np.ndarray) -> np.ndarray:
        model = ElasticNet(alpha=diag.penalty, l1_ratio=diag.l1_ratio, fit_intercept=True,
                           precompute=True, max_iter=10000, warm_start=True)
        model.coef_ = coef0.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[keep], data.delta[keep])
        return basis.coef_to_original(model.coef_)

    return refit_deletions(refit, regions)


def method_deletions(result: MethodResult, data: MapData, settings: MethodsSection,
                     regions: JackknifeRegions, *, mle_theta: np.ndarray | None = None
                     ) -> np.ndarray:
    """``(a, b)`` of one method with each region deleted.

    Parameters
    ----------
    result : MethodResult
        The method's whole-map result.
    data : MapData
        The map and templates it was run on.
    settings : MethodsSection
    regions : JackknifeRegions
    mle_theta : ndarray, optional
        For MCMC methods: the Gaussian-likelihood maximum of the method's model
        (e.g. from the model comparison); fitted here when not given.

    Returns
    -------
    ndarray, shape (R, 2K)
        ``(a, b)`` of each deletion (zeros for a term the method lacks).
    """
    K = data.templates.shape[0]
    delta = np.asarray(data.delta, dtype=float)
    T = np.asarray(data.templates, dtype=float)
    R = regions.n_regions
    out = np.zeros((R, 2 * K))
    name = result.name
    if name == "OLS":
        out[:, :K] = ols_deletions(delta, T, regions)
    elif name == "ElasticNet":
        out[:, :K] = _elasticnet_deletions(result, data, settings, regions)
    elif name in _MCMC_MODEL:
        from hpcsys.core.fit import fit_mle
        from hpcsys.core.likelihood import param_layout

        model = _MCMC_MODEL[name]
        lay = param_layout(model, "gaussian", K)
        theta = (np.asarray(fit_mle(delta, T, model, "gaussian").theta) if mle_theta is None
                 else np.asarray(mle_theta, dtype=float))
        dels = mle_deletions(theta, delta, T, model, "gaussian", regions) - theta
        out[:, :K] = result.a + dels[:, lay.a]
        if lay.b is not None:
            out[:, K:] = result.b + dels[:, lay.b]
    elif name in ("ISD-1", "ISD-3"):
        from hpcsys.methods.registry import run_method

        def rerun(keep: np.ndarray) -> np.ndarray:
            res = run_method(name, _restrict(data, keep), settings,
                             np.random.SeedSequence(0))
            return np.concatenate([res.a, res.b])

        out[:] = refit_deletions(rerun, regions)
    else:
        raise ValueError(f"no jackknife for method {name!r}")
    return out


def method_jackknife_covariance(result: MethodResult, data: MapData, settings: MethodsSection,
                                regions: JackknifeRegions, *,
                                mle_theta: np.ndarray | None = None) -> np.ndarray:
    """Jackknife covariance of ``(a, b)``, shape (2K, 2K) (:func:`method_deletions`)."""
    return jackknife_covariance(method_deletions(result, data, settings, regions,
                                                 mle_theta=mle_theta))


def task_jackknife(delta: np.ndarray, templates: np.ndarray, pixels: np.ndarray, config: Config,
                   regions: JackknifeRegions | None, methods: Sequence[MethodResult],
                   comparison: Any, names: tuple[str, ...]) -> JackknifeErrors:
    """Jackknife covariances of every method and errors of every MLE fit of one task.

    Parameters
    ----------
    delta, templates, pixels
        The task's observed map, templates and footprint pixels.
    config : Config
    regions : JackknifeRegions or None
        The run's regions (None: the jackknife is off, all ``nan``).
    methods : sequence of MethodResult
        The task's method results, in ``config.methods.names`` order.
    comparison : hpcsys.core.comparison.ModelComparison
        The task's MLE fits (their maxima start the Newton deletions).
    names : tuple of str
        Template names.
    """
    K, M = templates.shape[0], len(methods)
    F, L = len(FIT_MODELS), len(config.methods.likelihoods)
    a_err, b_err = np.full((F, L, K), np.nan), np.full((F, L, K), np.nan)
    method_cov = np.full((M, 2 * K, 2 * K), np.nan)
    if regions is None:
        return JackknifeErrors(0, method_cov, a_err, b_err)
    for f, model in enumerate(FIT_MODELS):
        has_a, has_b = MODELS[model]
        if not (has_a or has_b):
            continue
        for li, lik in enumerate(config.methods.likelihoods):
            fit = comparison.fit(model, lik)
            if not bool(fit.converged):
                continue
            theta = np.asarray(fit.theta, dtype=float)
            var = np.diag(jackknife_covariance(mle_deletions(theta, delta, templates, model, lik,
                                                             regions)))
            lay = param_layout(model, lik, K)
            if has_a:
                a_err[f, li] = np.sqrt(var[lay.a])
            if has_b:
                b_err[f, li] = np.sqrt(var[lay.b])
    data = MapData(delta=delta, templates=templates, pixels=pixels, nside=config.sky.nside,
                   names=names)
    for m, res in enumerate(methods):
        if res.name in REMEASURED_METHODS and not config.methods.jackknife_isd:
            continue  # nan: an ISD deletion reruns the method on a new footprint (costly)
        theta = None
        if res.name in _MCMC_MODEL and "gaussian" in config.methods.likelihoods:
            theta = np.asarray(comparison.fit(_MCMC_MODEL[res.name], "gaussian").theta)
        method_cov[m] = method_jackknife_covariance(res, data, config.methods, regions,
                                                    mle_theta=theta)
    return JackknifeErrors(regions.n_regions, method_cov, a_err, b_err)


def with_jackknife_cov(res: MethodResult, cov_jk: np.ndarray) -> MethodResult:
    """A method with no covariance of its own (ElasticNet) reports its jackknife one.

    Its ``cov`` and ``a_err`` become the jackknife's, so Eq. 21 debiases it
    (Berlfein+24 Eq. 21); ``b_err`` stays ``nan`` for an additive method.
    """
    if np.all(np.isnan(res.cov)) and np.all(np.isfinite(cov_jk)):
        K = res.a.shape[0]
        return dataclasses.replace(res, cov=cov_jk, a_err=np.sqrt(np.diag(cov_jk)[:K]))
    return res
