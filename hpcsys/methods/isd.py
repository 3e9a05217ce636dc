"""Iterative systematics decontamination (ISD-1, ISD-3): multiplicative pixel weights.

ISD (as used by DES Y1/Y3, Elvin-Poole+18, Rodriguez-Monroy+22; Berlfein+24
Section 3) treats the systematics as a modulation of the galaxy density,
``1 + delta_obs ∝ (1 + delta) F(t)``, and estimates ``F`` one template at a time.

One iteration, on the current weighted map ``y_p = (1 + delta_p) w_p``:

1. For every template ``t_i``, sort the pixels into ``methods.isd_n_bins``
   equal-count bins of ``t_i`` and compute in each bin the mean ``m_j`` of
   ``y / <y>``. Their covariance (``methods.isd_errors = "harmonic"``, the
   default) is a quadratic form of the map's own spectrum:
   ``Cov(m_j, m_k) = sum_{p in j, q in k} C(theta_pq) / (n_j n_k)``, with
   ``C`` the correlation function of the residual ``y/<y> - 1`` after a
   least-squares fit of all templates, measured on the footprint
   (:func:`bin_mean_covariance`, :mod:`hpcsys.measure.sandwich`). Neighbouring
   pixels of a bin are correlated on a clustered sky, so this is several times
   the independent-pixel error ``std(y)/(sqrt(n) <y>)``
   (``isd_errors = "independent"``, the errors of the DES implementation),
   which made about a quarter of null KiDS-like mocks select a template at 3
   sigma (docs/methods.rst gives the measured rates).
2. Fit a polynomial ``f_i(t)`` of order ``m`` (1 for ISD-1, 3 for ISD-3) to
   the bin means against the bin-mean template value by generalised least
   squares with that covariance (on the bin contrasts, :func:`binned_trend`),
   and a constant; ``Delta chi^2_i = chi^2_const - chi^2_poly``.
3. **Significance.** ``Delta chi^2_i`` has ``m`` degrees of freedom under the
   no-trend hypothesis, so orders are compared on the same footing by the
   equivalent two-sided Gaussian significance
   ``S_i = Phi^{-1}(1 - p_i/2)`` with ``p_i = P(chi^2_m > Delta chi^2_i)``.
   For ``m = 1`` this is exactly ``S_i = sqrt(Delta chi^2_i)``, i.e. the test
   ``Delta chi^2 > threshold^2`` of ``methods.isd_threshold``. A consequence:
   ISD-3 spends dof on curvature, so a *purely linear* trend must reach
   ``Delta chi^2 ≈ 14.2`` (not 9) to pass a 3-sigma threshold; ISD-3 leaves
   slightly larger linear residuals than ISD-1 and catches non-linear ones
   ISD-1 cannot see.
4. If the most significant template has ``S_i > methods.isd_threshold``, divide
   the weights by its fitted relation ``f_i(t_p)`` (evaluated within the range
   of the bin centres for ``m > 1``, so a cubic is never extrapolated) and
   iterate; otherwise stop. A template may be selected again later.

Outputs: ``weights = prod_j 1/f_j`` normalised to mean 1 and
``corrected = (1 + delta) w / <(1 + delta) w> - 1``. The modulation
coefficients are defined as the **linear coefficients of ln F at t = 0**:
``c_i = sum_{j selects i} f_j'(0)/f_j(0)``, so that ``F(t) ≈ exp(c.t)`` to
first order in each template. Their errors propagate the polynomial-fit
covariances (delta method), with the successive 1-D fits treated as
independent (diagonal in the fitting basis); a template never selected has
``c_i = 0`` with the slope error of its last, sub-threshold fit. Because ISD
stops once every trend is below the threshold, each ``c_i`` can be off by up to
about ``threshold`` of its errors: ISD is a decontamination, not an unbiased
estimator.

**In the parameterisation of Berlfein+24.** ISD's model
``1 + delta_obs = (1 + delta)(1 + c.t)`` is the combined model (Eq. 13) with
``a = b = c``: the trend of the *mean* density with ``t`` (all that ISD's binned
means can see) is the additive term, and ISD assumes the same modulation
multiplies the fluctuations. The result therefore reports ``model =
"combined"`` with ``a = b = c`` and fully correlated errors. A pure Eq. 12
contamination ``delta (1 + b.t)`` leaves the mean density unchanged, so ISD
cannot detect it (``c ≈ 0`` while ``b_true != 0``), and in the additive
scenario it attributes the trend to ``b`` as well: the recovery table of a run
shows both, as a limitation of the method, not of the fit.

With ``methods.pca`` the templates are PCA-rotated first (Berlfein+24 App. A)
and ``b`` is mapped back to the original basis.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri_exp
from scipy.stats import chi2

from hpcsys.config import MethodsSection
from hpcsys.methods._shared import MethodInputError, embed_cov, fit_basis, make_result
from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult

__all__ = [
    "BinDesigns",
    "TrendFit",
    "bin_designs",
    "bin_mean_covariance",
    "binned_trend",
    "isd_significance",
    "run_isd1",
    "run_isd3",
]


class TrendFit(NamedTuple):
    """Weighted polynomial fit of binned ``<y>/<y>_all`` against one template.

    ``coef`` are coefficients in the scaled variable ``u = t / scale`` (lowest
    order first), ``cov`` their covariance, ``dchi2`` the improvement over a
    constant, ``significance`` the equivalent Gaussian sigma, ``u_range`` the
    range of the bin centres in ``u``.
    """

    coef: np.ndarray
    cov: np.ndarray
    dchi2: float
    significance: float
    scale: float
    u_range: tuple[float, float]


def isd_significance(dchi2: float, dof: int) -> float:
    """Two-sided Gaussian-equivalent significance of ``Delta chi^2`` with ``dof`` dof.

    ``S = Phi^{-1}(1 - p/2)``, ``p = P(chi^2_dof > dchi2)``, computed from
    ``log p`` so that it stays finite for very large ``dchi2`` (where
    ``log p`` underflows, the leading asymptotic term of the upper incomplete
    gamma function is used). For ``dof = 1`` it equals ``sqrt(dchi2)``.
    """
    if not dchi2 > 0:
        return 0.0
    logp = float(chi2.logsf(dchi2, dof))
    if not math.isfinite(logp):
        a, z = 0.5 * dof, 0.5 * dchi2
        logp = (a - 1.0) * math.log(z) - z - math.lgamma(a) + math.log1p((a - 1.0) / z)
    return float(-ndtri_exp(logp - math.log(2.0)))


def _bin_index(t: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-count bins of ``t``: bin number of each pixel."""
    order = np.argsort(t, kind="stable")
    idx = np.empty(t.size, dtype=np.int64)
    for k, chunk in enumerate(np.array_split(order, n_bins)):
        idx[chunk] = k
    return idx


def binned_trend(y: np.ndarray, t: np.ndarray, bins: np.ndarray, n_bins: int, order: int,
                 cov: np.ndarray | None = None) -> TrendFit:
    """Fit the binned relation of ``y/<y>`` against template ``t`` (steps 1-3 above).

    Parameters
    ----------
    y : ndarray, shape (Npix,)
        Current weighted map ``(1 + delta) w``.
    t : ndarray, shape (Npix,)
        One template.
    bins : ndarray of int, shape (Npix,)
        Equal-count bin of each pixel.
    n_bins : int
    order : int
        Polynomial order ``m``.
    cov : ndarray, shape (n_bins, n_bins), optional
        Covariance of the bin means of ``y/<y>`` (:func:`bin_mean_covariance`):
        generalised least squares on the bin contrasts. Default: independent
        pixels, ``std(y)/(sqrt(n) <y>)`` per bin, weighted least squares.

    Returns
    -------
    TrendFit
    """
    ymean = float(np.mean(y))
    n = np.bincount(bins, minlength=n_bins).astype(float)
    s1 = np.bincount(bins, weights=y, minlength=n_bins)
    st = np.bincount(bins, weights=t, minlength=n_bins)
    mean = s1 / n
    m = mean / ymean
    scale = float(np.std(t)) or 1.0
    u = st / n / scale
    if cov is not None:
        return _gls_trend(m, u, n, cov, order, scale, float(np.var(y)) / (y.size * ymean**2))
    s2 = np.bincount(bins, weights=y * y, minlength=n_bins)
    var = np.maximum(s2 / n - mean * mean, 0.0) * n / np.maximum(n - 1.0, 1.0)
    err = np.sqrt(var / n) / abs(ymean)
    err = np.where(err > 0, err, np.max(err) if np.any(err > 0) else 1.0)
    wsq = 1.0 / err
    A = np.vander(u, order + 1, increasing=True) * wsq[:, None]
    rhs = m * wsq
    coef, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    chi2_poly = float(np.sum((A @ coef - rhs) ** 2))
    c0 = float(np.sum(m * wsq**2) / np.sum(wsq**2))
    chi2_const = float(np.sum(((m - c0) * wsq) ** 2))
    cov_coef = np.linalg.inv(A.T @ A)
    dchi2 = max(chi2_const - chi2_poly, 0.0)
    return TrendFit(coef, cov_coef, dchi2, isd_significance(dchi2, order), scale,
                    (float(u.min()), float(u.max())))


def _gls_trend(m: np.ndarray, u: np.ndarray, n: np.ndarray, cov: np.ndarray, order: int,
               scale: float, var_mean: float) -> TrendFit:
    """GLS fit of ``m = c0 + sum_k c_k u^k`` with the bin-mean covariance ``cov``.

    The overall level is not constrained by ``cov`` (the residual spectrum is
    measured with the footprint mean removed, so the variance of the footprint
    mean is not in it: the integral constraint). The trend is therefore fitted
    to the ``n_bins - 1`` contrasts ``Q^T m`` orthogonal to the constant, where
    ``Q^T cov Q`` is well defined; ``Delta chi^2`` is the GLS improvement of the
    polynomial over a constant. ``c0`` is the pixel-weighted mean level minus
    the fitted trend, its variance from ``var_mean`` (the independent-pixel
    variance of the footprint mean, the one number the map cannot give).
    """
    from scipy.linalg import null_space

    nb = m.size
    Q = null_space(np.ones((1, nb)))  # (nb, nb - 1), orthonormal contrasts
    U = np.vander(u, order + 1, increasing=True)[:, 1:]  # the non-constant powers
    S = Q.T @ cov @ Q
    vals, vecs = np.linalg.eigh(0.5 * (S + S.T))
    vals = np.maximum(vals, 1e-12 * max(float(vals.max()), 1e-300))
    S_inv = (vecs / vals) @ vecs.T
    B = Q.T @ U
    F = B.T @ S_inv @ B
    F_inv = np.linalg.inv(F)
    G = F_inv @ B.T @ S_inv @ Q.T  # slopes = G m
    slopes = G @ m
    dchi2 = max(float(slopes @ F @ slopes), 0.0)
    w = n / n.sum()
    M = np.vstack([w - (w @ U) @ G, G])  # all coefficients, linear in m
    coef = M @ m
    cov_full = cov + var_mean * np.ones((nb, nb))  # the level's variance, independent pixels
    cov_coef = M @ cov_full @ M.T
    return TrendFit(coef, 0.5 * (cov_coef + cov_coef.T), dchi2, isd_significance(dchi2, order),
                    scale, (float(u.min()), float(u.max())))


class BinDesigns(NamedTuple):
    """Bin indicators ``1_j / n_j`` of every template, transformed once per run of ISD."""

    geometry: object
    designs: tuple


_DESIGN_CACHE: dict[bytes, BinDesigns] = {}  # ISD-1 and ISD-3 share the bins of a map


def bin_designs(bins: list[np.ndarray], n_bins: int, pixels: np.ndarray, nside: int,
                lmax: int | None = None) -> BinDesigns:
    """Harmonic transforms of the bin-mean designs of each template (cached per bins and footprint).

    ``lmax`` (default ``3 NSIDE - 1``): the band treated exactly, white above it
    (:func:`hpcsys.measure.sandwich.harmonic_geometry`).
    """
    import hashlib

    from hpcsys.measure.sandwich import harmonic_geometry, transform_designs

    h = hashlib.sha256(np.asarray(pixels, dtype=np.int64).tobytes())
    h.update(np.asarray([nside, n_bins, -1 if lmax is None else lmax], dtype=np.int64).tobytes())
    for b in bins:
        h.update(np.asarray(b, dtype=np.int64).tobytes())
    key = h.digest()
    hit = _DESIGN_CACHE.get(key)
    if hit is not None:
        return hit
    geo = harmonic_geometry(pixels, nside, lmax)
    out = []
    for b in bins:
        ind = (b[None, :] == np.arange(n_bins)[:, None]).astype(float)
        out.append(transform_designs(ind / ind.sum(axis=1, keepdims=True), geo))
    res = BinDesigns(geo, tuple(out))
    _DESIGN_CACHE.clear()
    _DESIGN_CACHE[key] = res
    return res


def bin_mean_covariance(y: np.ndarray, templates: np.ndarray, designs: BinDesigns) -> list[np.ndarray]:
    """Covariance of the bin means of ``y/<y>`` for every template, from the map's own spectrum.

    The residual field is ``y/<y> - 1`` minus its least-squares projection on
    all templates (so the trends being tested do not inflate their own
    errors); its auto-spectrum on the footprint
    (:func:`hpcsys.measure.sandwich.pseudo_spectra`) gives, for the designs
    ``1_j / n_j``, ``Cov(m_j, m_k) = sum_{p in j, q in k} C(theta_pq) / (n_j n_k)``
    (:func:`hpcsys.measure.sandwich.quadratic_forms`). One transform of the
    residual per call.
    """
    from hpcsys.measure.sandwich import pseudo_spectra, quadratic_forms

    r = y / np.mean(y) - 1.0
    coef, *_ = np.linalg.lstsq(templates.T, r, rcond=None)
    spectra = pseudo_spectra((r - coef @ templates)[None], designs.geometry)
    zeros = np.zeros(designs.designs[0].columns.shape[0], dtype=int)
    return [quadratic_forms(d, zeros, spectra, designs.geometry) for d in designs.designs]


def _relation(fit: TrendFit, t: np.ndarray, order: int) -> np.ndarray:
    """The fitted relation ``f(t_p)`` at every pixel (clipped to the bin range for m > 1)."""
    u = t / fit.scale
    if order > 1:
        u = np.clip(u, *fit.u_range)
    return np.polynomial.polynomial.polyval(u, fit.coef)


def _log_slope(fit: TrendFit) -> tuple[float, float]:
    """``f'(0)/f(0)`` of a fitted relation (per unit template) and its delta-method variance."""
    c0, c1 = float(fit.coef[0]), float(fit.coef[1])
    grad = np.array([-c1 / c0**2, 1.0 / c0])
    return c1 / (c0 * fit.scale), float(grad @ fit.cov[:2, :2] @ grad) / fit.scale**2


def _trend_fits(y: np.ndarray, Tf: np.ndarray, bins: list[np.ndarray], n_bins: int, order: int,
                designs: BinDesigns | None) -> list[TrendFit]:
    """One :func:`binned_trend` per template, with harmonic bin covariances when ``designs``."""
    covs = bin_mean_covariance(y, Tf, designs) if designs is not None else [None] * len(bins)
    return [binned_trend(y, Tf[i], bins[i], n_bins, order, covs[i]) for i in range(len(bins))]


def _run_isd(data: MapData, settings: MethodsSection, order: int, name: str) -> MethodResult:
    t0 = time.perf_counter()
    delta = np.asarray(data.delta, dtype=float)
    K, npix = np.asarray(data.templates).shape
    basis = fit_basis(data, settings.pca)
    Tf = basis.templates
    n_bins = settings.isd_n_bins
    if n_bins < order + 2:
        raise MethodInputError(
            f"methods.isd_n_bins: ISD of order {order} needs at least {order + 2} bins, got {n_bins}"
        )
    if npix < 2 * n_bins:
        raise MethodInputError(
            f"methods.isd_n_bins: {n_bins} bins need at least {2 * n_bins} pixels, got {npix}")
    bins = [_bin_index(Tf[i], n_bins) for i in range(K)]
    harmonic = settings.isd_errors == "harmonic"
    top = 3 * int(data.nside) - 1  # the band is capped there, as methods.sandwich_lmax
    lmax = top if settings.isd_lmax is None else min(int(settings.isd_lmax), top)
    designs = bin_designs(bins, n_bins, data.pixels, data.nside, lmax) if harmonic else None
    y0 = 1.0 + delta
    w = np.ones(npix)
    b = np.zeros(K)
    b_var = np.zeros(K)
    steps: list[str] = []  # one entry per selection (and the reason of a stop), for the message
    n_corrections = 0  # weight corrections applied
    converged = False
    hit_pole = False
    selected = np.zeros(K, dtype=bool)
    fits: list[TrendFit] = []
    for _ in range(settings.isd_max_iter):
        y = y0 * w
        fits = _trend_fits(y, Tf, bins, n_bins, order, designs)
        sig = np.array([f.significance for f in fits])
        best = int(np.argmax(sig))
        if sig[best] <= settings.isd_threshold:
            converged = True
            break
        fit = fits[best]
        rel = _relation(fit, Tf[best], order)
        if np.min(rel) <= 0.0:
            hit_pole = True
            steps.append(f"t{best}: relation <= 0 on some pixels; stopped")
            break
        w = w / rel
        slope, var = _log_slope(fit)
        selected[best] = True
        b[best] += slope
        b_var[best] += var
        n_corrections += 1
        steps.append(f"t{best}:{sig[best]:.1f}sigma")
    else:
        # loop exhausted: converged only if the last correction left nothing significant
        y = y0 * w
        fits = _trend_fits(y, Tf, bins, n_bins, order, designs)
        converged = bool(max(f.significance for f in fits) <= settings.isd_threshold)
    # never-selected templates: b = 0 with the slope error of their last (sub-threshold) fit
    for i in np.flatnonzero(~selected):
        b_var[i] = _log_slope(fits[i])[1]
    w = w / np.mean(w)
    yw = y0 * w
    corrected = yw / np.mean(yw) - 1.0
    b_orig = basis.coef_to_original(b)
    cov_b = basis.cov_to_original(np.diag(b_var))
    diag = MethodDiagnostics(
        converged=converged,
        n_iterations=n_corrections,
        hit_pole=hit_pole,
        wall_time=time.perf_counter() - t0,
        message=("selected " + ", ".join(steps)) if steps else "no significant template",
    )
    err = np.sqrt(np.diag(cov_b))
    # ISD's (1 + delta)(1 + c.t) is Eq. 13 with a = b = c (module docstring).
    return make_result(
        name, "combined", K, npix, corrected, diag,
        a=b_orig, a_err=err, b=b_orig.copy(), b_err=err.copy(),
        cov=embed_cov(K, cov_a=cov_b, cov_b=cov_b, cov_ab=cov_b), weights=w,
    )


def run_isd1(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence) -> MethodResult:
    """ISD with linear 1-D relations (``ISD-1``); deterministic, ``seed`` unused.

    Parameters
    ----------
    data : MapData
    settings : MethodsSection
        Uses ``pca``, ``isd_threshold``, ``isd_max_iter``, ``isd_n_bins``, ``isd_errors``,
        ``isd_lmax``.
    seed : numpy.random.SeedSequence

    Returns
    -------
    MethodResult
        Weights, corrected map and ``b`` as defined in the module docstring.

    Raises
    ------
    MethodInputError
        ``methods.isd_n_bins`` too small for the order, or too large for the pixels;
        ``methods.isd_lmax`` above ``3 NSIDE - 1``.
    """
    del seed
    return _run_isd(data, settings, 1, "ISD-1")


def run_isd3(data: MapData, settings: MethodsSection, seed: np.random.SeedSequence) -> MethodResult:
    """ISD with cubic 1-D relations (``ISD-3``); deterministic, ``seed`` unused.

    See :func:`run_isd1`.
    """
    del seed
    return _run_isd(data, settings, 3, "ISD-3")
