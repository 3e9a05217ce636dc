"""Linear-regression methods for additive contamination: OLS and ElasticNet.

Both fit the additive model of Berlfein+24 Eq. 11, ``delta_obs = delta + a.t``,
by regressing the observed overdensity on the templates, and correct the map as
``delta_corr = delta_obs - a.t``.

* **OLS**: ordinary least squares without intercept (``delta_obs`` and the
  templates have zero mean on the footprint), solved by
  :func:`numpy.linalg.lstsq`. The covariance (``cov``, ``a_err``) is the
  harmonic sandwich ``(T T^T)^-1 J (T T^T)^-1`` with ``J`` from the
  residual's own spectrum (:mod:`hpcsys.measure.sandwich`), which holds on a
  spatially correlated sky. The textbook ``s^2 (T T^T)^{-1}`` with
  ``s^2 = |r|^2 / (N - K)`` treats pixels as independent and understates the
  scatter when the true field is correlated on template scales
  (docs/correlated_pixels.rst); it is kept as ``cov_indep``, ``a_err_indep``.
* **ElasticNet**: :class:`sklearn.linear_model.ElasticNetCV` (l1 + l2 penalty)
  with the penalty strength and ``l1_ratio`` chosen by cross-validation whose
  folds are **groups of sky patches** (:class:`sklearn.model_selection.GroupKFold`
  over HEALPix pixels of ``methods.elasticnet_patch_nside``), so that
  neighbouring, correlated pixels never sit on both sides of a split. The
  penalised estimator has no standard error: ``a_err`` and ``cov`` are ``nan``.
  Coordinate descent works on the K x K Gram matrix of the (fold-centred)
  templates, ``X^T X`` and ``X^T y``, computed once per fold and once for the
  final fit at the chosen penalty, with warm starts along each fold's
  regularisation path (``methods.elasticnet_precompute``, default on): an
  iteration then costs O(K^2) instead of O(N K). scikit-learn's ``"auto"``
  uses the Gram matrix on the folds but refits the chosen penalty on the full
  ``N x K`` design from a cold start, whose iteration count grows with the
  contamination (up to 10 000 iterations, ~60 s at paper size). Both solve
  the same convex problem to the same duality-gap tolerance, so they agree
  within the solver tolerance (``tests/test_methods_regression.py``).

With ``methods.pca`` the regression runs on the rotated templates and the
coefficients (and the OLS covariance) are mapped back (Berlfein+24 App. A).
OLS is rotation-equivariant, so this changes nothing but rounding; the
ElasticNet penalty is not, so there it changes the estimator.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import healpy as hp
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNetCV
from sklearn.model_selection import GroupKFold

from hpcsys.config import MethodsSection
from hpcsys.measure.honest import designs_for, sandwich_setup
from hpcsys.measure.sandwich import sandwich, score_covariance
from hpcsys.methods._shared import MethodInputError, embed_cov, fit_basis, make_result
from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult

__all__ = ["run_elasticnet", "run_ols", "sky_patches"]


def run_ols(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence) -> MethodResult:
    """Ordinary least squares of ``delta_obs`` on the templates (additive model, Eq. 11).

    Parameters
    ----------
    data : MapData
    settings : MethodsSection
        Uses ``pca`` and ``sandwich_lmax`` (when ``data.sandwich`` is None).
    seed : numpy.random.SeedSequence
        Unused (OLS is deterministic); accepted for the common interface.

    Returns
    -------
    MethodResult
        ``a = (T T^T)^{-1} T delta``, ``cov_aa`` the harmonic sandwich
        ``(T T^T)^-1 J (T T^T)^-1`` (``a_err`` its diagonal), ``cov_indep``
        the independent-pixel ``s^2 (T T^T)^{-1}``, ``sigma = s``,
        ``corrected = delta - a.t``.
    """
    del seed
    t0 = time.perf_counter()
    delta = np.asarray(data.delta, dtype=float)
    T = np.asarray(data.templates, dtype=float)
    K, npix = T.shape
    basis = fit_basis(data, settings.pca)
    Tf = basis.templates
    coef, _, rank, _ = np.linalg.lstsq(Tf.T, delta, rcond=None)
    if rank < K:
        raise MethodInputError(f"MapData.templates: the {K} templates are linearly dependent (rank {rank})")
    resid = delta - coef @ Tf
    s2 = float(resid @ resid) / (npix - K)
    cov_f = s2 * np.linalg.inv(Tf @ Tf.T)
    a = basis.coef_to_original(coef)
    cov_ind = basis.cov_to_original(cov_f)
    cov_ind = 0.5 * (cov_ind + cov_ind.T)
    # the sandwich in the original basis (it is rotation-equivariant)
    setup = data.sandwich or sandwich_setup(data.pixels, data.nside, settings.sandwich_lmax)
    corrected = delta - a @ T
    meat = score_covariance(designs_for(setup, T), np.zeros(K, dtype=int), corrected[None],
                            setup.geometry)
    cov_a = sandwich(T @ T.T, meat)
    diag = MethodDiagnostics(converged=True, n_iterations=1, wall_time=time.perf_counter() - t0,
                             message="closed-form least squares")
    res = make_result(
        "OLS", "additive", K, npix, corrected, diag,
        a=a, a_err=np.sqrt(np.diag(cov_a)), cov=embed_cov(K, cov_a=cov_a), sigma=np.sqrt(s2),
    )
    return dataclasses.replace(res, a_err_indep=np.sqrt(np.diag(cov_ind)),
                               cov_indep=embed_cov(K, cov_a=cov_ind))


def sky_patches(pixels: np.ndarray, nside: int, patch_nside: int) -> np.ndarray:
    """The coarse HEALPix pixel (RING, ``patch_nside``) containing each pixel centre.

    Parameters
    ----------
    pixels : ndarray of int
        RING pixel indices at ``nside``.
    nside, patch_nside : int

    Returns
    -------
    ndarray of int
        Patch index of each pixel: the cross-validation group.
    """
    theta, phi = hp.pix2ang(int(nside), np.asarray(pixels, dtype=np.int64))
    return hp.ang2pix(int(patch_nside), theta, phi)


def run_elasticnet(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence) -> MethodResult:
    """Elastic-net regression with sky-patch-grouped cross-validation (additive model).

    Parameters
    ----------
    data : MapData
    settings : MethodsSection
        Uses ``pca``, ``elasticnet_folds``, ``elasticnet_l1_ratio``,
        ``elasticnet_patch_nside``.
    seed : numpy.random.SeedSequence
        Seeds the shuffling of patches into folds.

    Returns
    -------
    MethodResult
        ``a`` = penalised coefficients, ``a_err``/``cov`` ``nan`` (no standard
        error for a penalised, CV-tuned estimator), ``sigma`` = residual RMS,
        ``corrected = delta - a.t``; the chosen penalty is in the message.

    Raises
    ------
    MethodInputError
        When the footprint covers fewer sky patches than folds.
    """
    t0 = time.perf_counter()
    delta = np.asarray(data.delta, dtype=float)
    T = np.asarray(data.templates, dtype=float)
    K, npix = T.shape
    groups = sky_patches(data.pixels, data.nside, settings.elasticnet_patch_nside)
    n_groups = np.unique(groups).size
    if n_groups < settings.elasticnet_folds:
        raise MethodInputError(
            f"methods.elasticnet_patch_nside: the footprint covers {n_groups} patches at "
            f"NSIDE {settings.elasticnet_patch_nside}, fewer than methods.elasticnet_folds "
            f"= {settings.elasticnet_folds}; raise the patch NSIDE or lower the folds"
        )
    state = int(seed.generate_state(1, dtype=np.uint32)[0])
    basis = fit_basis(data, settings.pca)
    X = basis.templates.T
    splitter = GroupKFold(n_splits=settings.elasticnet_folds, shuffle=True, random_state=state)
    folds = list(splitter.split(X, delta, groups))
    model = ElasticNetCV(
        l1_ratio=list(settings.elasticnet_l1_ratio),
        cv=folds,
        fit_intercept=True,
        max_iter=10000,
        random_state=state,
        precompute=True if settings.elasticnet_precompute else "auto",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, delta)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    a = basis.coef_to_original(model.coef_)
    corrected = delta - a @ T
    resid = corrected - model.intercept_
    diag = MethodDiagnostics(
        converged=converged,
        n_iterations=int(model.n_iter_),
        wall_time=time.perf_counter() - t0,
        penalty=float(model.alpha_),
        l1_ratio=float(model.l1_ratio_),
        message=(
            f"alpha={model.alpha_:.4g} l1_ratio={model.l1_ratio_:.3g} "
            f"folds={settings.elasticnet_folds} patches={n_groups}"
        ),
    )
    return make_result(
        "ElasticNet", "additive", K, npix, corrected, diag,
        a=a, sigma=float(np.sqrt(np.mean(resid * resid))),
    )
