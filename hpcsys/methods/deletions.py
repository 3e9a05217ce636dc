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

import warnings

import numpy as np

from hpcsys.config import MethodsSection
from hpcsys.measure.jackknife import (
    JackknifeRegions,
    jackknife_covariance,
    mle_deletions,
    ols_deletions,
    refit_deletions,
)
from hpcsys.methods._shared import fit_basis
from hpcsys.methods.base import MapData, MethodResult

__all__ = ["method_deletions", "method_jackknife_covariance"]

_MCMC_MODEL = {"MCMC-add": "additive", "MCMC-comb": "combined"}


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
