"""Honest covariances of pixel M-estimators on a spatially correlated sky.

The pixel likelihoods of Berlfein+24 (Eqs. 17-18) and least squares treat the
footprint pixels as independent. The true overdensity is correlated on the
scales where the templates carry power, so the inverse Hessian underestimates
the scatter of every fitted coefficient (see the *correlated pixels* page of
the docs). This module gives the covariance that holds on a correlated sky
from the one map at hand: the sandwich (Huber) covariance

    Cov(theta_hat) = H^-1 J H^-1,

with ``H`` the Hessian of the objective (for a likelihood ``-d^2 lnL``) and
``J = Cov(sum_p psi_p)`` the covariance of the summed per-pixel score.

Structure used
--------------
For every estimator here the score of parameter ``k`` in pixel ``p`` factors
into a known *design* column and one of a few *residual fields*,
``psi_k(p) = D_k(p) F_{f(k)}(p)``: for least squares ``D_k = t_k`` and
``F = r`` (the residual); for the pixel likelihoods with ``u = a.t``,
``v = b.t`` and residual ``r = (delta - u)/(1 + v)`` (Berlfein+24 Eqs. 17-18)
the design of ``a_k`` and ``b_k`` is ``t_k/(1 + v)`` and the fields are
functions of ``r`` alone (:func:`hpcsys.core.scores.score_fields`).
With the fields stationary, ``Cov(F_f(p), F_g(q)) = C^{fg}(theta_pq)``, so

    J_km = sum_{p,q} D_k(p) D_m(q) C^{f(k) f(m)}(theta_pq).

Harmonic evaluation
-------------------
``J`` is never formed in pixel space. With ``U_lm = map2alm(D_k)`` (healpy,
``iter=0``: exactly ``Omega_pix sum_p D_k(p) Y*_lm(p)``) and the addition
theorem,

    sum_{p,q} u_p v_q C(theta_pq) = sum_l (2l + 1) C_l Chat_l^{uv} / Omega_pix^2,

where ``Chat_l^{uv} = sum_m U_lm V*_lm / (2l + 1)`` is the pseudo
cross-spectrum of the masked design columns. This identity is exact for a
spectrum band-limited at ``lmax`` (tested against the direct pixel sum to
1e-10). Above ``lmax`` the field spectrum is treated as *white*: a constant
``C_w`` fixed so that the fields' zero-lag pixel covariance is reproduced,
which contributes ``(C_w/Omega_pix) sum_p u_p v_p`` (the independent-pixel
term). So

    J = (C_w/Omega_pix) D^T D + sum_{l <= lmax} (2l + 1) (C_l - C_w) Chat_l / Omega_pix^2.

For pure white noise (``C_l = sigma^2 Omega_pix``) the second term vanishes
and the sandwich reduces to the independent-pixel covariance.

Residual spectra
----------------
``C_l^{fg}`` of the residual fields come from the same map: the pseudo-C_l
of the mean-subtracted fields on the footprint divided by the sky fraction
(:func:`pseudo_spectra`). Shot noise and the pixel window need no separate
treatment: the fields are the pixel values themselves, so their spectrum
already contains both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import healpy as hp
import numpy as np

from hpcsys.measure.ringsht import ring_alms, ring_transform

__all__ = [
    "DesignTransform",
    "HarmonicGeometry",
    "ResidualSpectra",
    "harmonic_geometry",
    "mle_covariance",
    "ols_covariance",
    "pseudo_spectra",
    "quadratic_forms",
    "sandwich",
    "score_covariance",
    "transform_designs",
]


@dataclass(frozen=True)
class HarmonicGeometry:
    """Footprint and harmonic band of a sandwich computation.

    Attributes
    ----------
    pixels : ndarray of int, shape (Npix,)
        HEALPix RING indices of the footprint pixels.
    nside : int
        HEALPix NSIDE.
    lmax : int
        Multipoles up to ``lmax`` are treated exactly; above it the residual
        spectrum is taken as white (module docstring).
    """

    pixels: np.ndarray
    nside: int
    lmax: int

    @property
    def n_pixels_full(self) -> int:
        """Pixels of the full sphere, ``12 NSIDE^2``."""
        return 12 * self.nside * self.nside

    @property
    def omega(self) -> float:
        """Pixel solid angle (sr)."""
        return 4.0 * np.pi / self.n_pixels_full

    @property
    def fsky(self) -> float:
        """Footprint sky fraction."""
        return self.pixels.size / self.n_pixels_full

    def ell(self) -> np.ndarray:
        """Multipole of each healpy alm index up to ``lmax``."""
        return hp.Alm.getlm(self.lmax)[0]

    def m_weight(self) -> np.ndarray:
        """1 for ``m = 0``, 2 for ``m > 0``: healpy stores ``m >= 0`` only."""
        m = hp.Alm.getlm(self.lmax)[1]
        return np.where(m == 0, 1.0, 2.0)


def harmonic_geometry(pixels: np.ndarray, nside: int, lmax: int | None = None) -> HarmonicGeometry:
    """Build a :class:`HarmonicGeometry`.

    Parameters
    ----------
    pixels : ndarray of int
        Footprint pixels (RING).
    nside : int
        HEALPix NSIDE.
    lmax : int, optional
        Exact band; default ``3 NSIDE - 1`` (all of it).
    """
    pixels = np.asarray(pixels, dtype=np.int64)
    if pixels.ndim != 1 or pixels.size == 0:
        raise ValueError("pixels: need a non-empty 1-D array of footprint pixels")
    top = 3 * int(nside) - 1
    lmax = top if lmax is None else int(lmax)
    if not 1 <= lmax <= top:
        raise ValueError(f"lmax: must be in [1, 3 NSIDE - 1 = {top}], got {lmax}")
    return HarmonicGeometry(pixels, int(nside), lmax)


def _alms(maps: np.ndarray, geo: HarmonicGeometry) -> np.ndarray:
    """``map2alm`` (``iter=0``) of footprint maps ``(M, Npix)`` -> ``(M, n_alm)``.

    On the footprint's rings only (:mod:`hpcsys.measure.ringsht`, equal to
    healpy's to rounding) where its Legendre table fits, else healpy.
    """
    maps = np.atleast_2d(np.asarray(maps, dtype=float))
    rt = ring_transform(geo.pixels, geo.nside, geo.lmax)
    if rt is not None:
        return ring_alms(maps, rt)
    full = np.zeros(geo.n_pixels_full)
    out = []
    for row in maps:
        full[geo.pixels] = row
        out.append(hp.map2alm(full, lmax=geo.lmax, iter=0))
    return np.asarray(out)


@dataclass(frozen=True)
class DesignTransform:
    """Design columns with their spherical-harmonic coefficients.

    Fixed designs (the templates of least squares and of the additive model)
    are transformed once per run and reused for every realisation.

    Attributes
    ----------
    columns : ndarray, shape (P, Npix)
        Design columns on the footprint.
    alms : ndarray of complex, shape (P, n_alm)
        Their ``map2alm`` (``iter=0``) up to ``lmax``.
    """

    columns: np.ndarray
    alms: np.ndarray


def transform_designs(columns: np.ndarray, geo: HarmonicGeometry) -> DesignTransform:
    """Transform design columns ``(P, Npix)`` once (see :class:`DesignTransform`)."""
    columns = np.atleast_2d(np.asarray(columns, dtype=float))
    if columns.shape[1] != geo.pixels.size:
        raise ValueError(f"design columns have {columns.shape[1]} pixels, the footprint "
                         f"{geo.pixels.size}")
    return DesignTransform(columns, _alms(columns, geo))


def _cross_power(x: np.ndarray, y: np.ndarray, geo: HarmonicGeometry) -> np.ndarray:
    """``sum_m x_lm y*_lm`` per multipole for rows of alms: ``(X, Y, lmax + 1)``."""
    w = geo.m_weight()
    prod = np.real(x[:, None, :] * np.conj(y[None, :, :])) * w
    ell = geo.ell()
    out = np.zeros((x.shape[0], y.shape[0], geo.lmax + 1))
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = np.bincount(ell, weights=prod[i, j], minlength=geo.lmax + 1)
    return out


@dataclass(frozen=True)
class ResidualSpectra:
    """Auto- and cross-spectra of the residual fields of one fit.

    Attributes
    ----------
    cl : ndarray, shape (F, F, lmax + 1)
        Pseudo-C_l divided by the sky fraction, ``l <= lmax``.
    white : ndarray, shape (F, F)
        ``C_w``: the constant spectrum above ``lmax`` that reproduces the
        fields' zero-lag covariance on the footprint.
    zero_lag : ndarray, shape (F, F)
        ``c0``: the footprint mean of ``F_f F_g`` (means removed).
    """

    cl: np.ndarray
    white: np.ndarray
    zero_lag: np.ndarray | None = None


def _legendre_table(x: np.ndarray, lmax: int) -> np.ndarray:
    """``P_l(x)`` for ``l = 0 .. lmax`` by the three-term recurrence: ``(lmax + 1, len(x))``."""
    table = np.empty((lmax + 1, x.size))
    table[0] = 1.0
    if lmax >= 1:
        table[1] = x
    for ell in range(1, lmax):
        table[ell + 1] = ((2 * ell + 1) * x * table[ell] - ell * table[ell - 1]) / (ell + 1)
    return table


@dataclass(frozen=True)
class _Quadrature:
    legendre: np.ndarray  # (lmax + 1, n)
    weights: np.ndarray  # (n,)
    mask_xi: np.ndarray  # (n,) pair-weight correlation of the footprint indicator
    mask_alm: np.ndarray  # (1, n_alm) alms of the footprint indicator (the unit design)


_QUADRATURES: dict[tuple[int, int, bytes], _Quadrature] = {}  # key: nside, lmax, SHA-256 of the pixels


def _quadrature(geo: HarmonicGeometry) -> _Quadrature:
    """Gauss-Legendre nodes, Legendre table and the footprint's own correlation (cached)."""
    from scipy.special import roots_legendre

    key = (geo.nside, geo.lmax, hashlib.sha256(geo.pixels.tobytes()).digest())
    hit = _QUADRATURES.get(key)
    if hit is not None:
        return hit
    x, w = roots_legendre(2 * (geo.lmax + 1))
    table = _legendre_table(x, geo.lmax)
    mask_alm = _alms(np.ones((1, geo.pixels.size)), geo)
    ell = np.arange(geo.lmax + 1)
    mask_cl = _cross_power(mask_alm, mask_alm, geo)[0, 0] / (2 * ell + 1)
    mask_xi = ((2 * ell + 1) / (4.0 * np.pi) * mask_cl) @ table
    quad = _Quadrature(table, w, mask_xi, mask_alm)
    if len(_QUADRATURES) > 8:
        _QUADRATURES.clear()
    _QUADRATURES[key] = quad
    return quad


#: Separations whose footprint pair weight is below this fraction of the zero-lag
#: weight carry (almost) no pairs: their correlation is set to zero.
_MIN_PAIR_FRACTION = 1e-3


def _cut_sky_correct(pseudo_cl: np.ndarray, geo: HarmonicGeometry) -> np.ndarray:
    """Undo the footprint's mode coupling in real space.

    The pseudo-spectrum of a masked field is the Legendre transform of its
    correlation function times the footprint's pair-weight function
    ``xi_mask(theta)``. Dividing the pseudo correlation function by
    ``xi_mask`` (where the footprint has pairs) and transforming back gives the
    spectrum whose correlation function equals the pair-count estimate at
    every separation present in the footprint; separations without pairs
    never enter :func:`quadratic_forms`, whose designs vanish off the footprint.
    """
    quad = _quadrature(geo)
    ell = np.arange(geo.lmax + 1)
    xi_pseudo = np.tensordot(pseudo_cl * (2 * ell + 1) / (4.0 * np.pi), quad.legendre,
                             axes=([-1], [0]))
    ok = quad.mask_xi > _MIN_PAIR_FRACTION * quad.mask_xi.max()
    xi = np.where(ok, xi_pseudo / np.where(ok, quad.mask_xi, 1.0), 0.0)
    return 2.0 * np.pi * np.tensordot(xi * quad.weights, quad.legendre, axes=([-1], [1]))


def pseudo_spectra(fields: np.ndarray, geo: HarmonicGeometry, *,
                   cut_sky: str = "correlation") -> ResidualSpectra:
    """Spectra of residual fields measured on the footprint.

    Parameters
    ----------
    fields : ndarray, shape (F, Npix)
        Residual fields on the footprint; their footprint means are removed.
    geo : HarmonicGeometry
    cut_sky : {"correlation", "fsky"}
        How the footprint's mode coupling is undone: ``"correlation"`` divides
        the pseudo correlation function by the footprint's pair-weight function
        (:func:`_cut_sky_correct`, the real-space correction of PolSpice-type
        estimators); ``"fsky"`` divides the pseudo-C_l by the sky fraction
        (adequate on large, compact footprints; biased low at the large
        scales of narrow strips).

    Returns
    -------
    ResidualSpectra
        ``cl`` the corrected spectra and ``white`` the level
        ``C_w = 4 pi (c0 - sum_{l<=lmax} (2l+1) C_l / 4 pi) / (N_full - (lmax+1)^2)``
        with ``c0`` the zero-lag covariance (mean of ``F_f F_g`` over the
        footprint); zero when the band already holds every pixel mode.
    """
    if cut_sky not in ("correlation", "fsky"):
        raise ValueError(f"cut_sky: must be 'correlation' or 'fsky', got {cut_sky!r}")
    fields = np.atleast_2d(np.asarray(fields, dtype=float))
    fields = fields - fields.mean(axis=1, keepdims=True)
    alm = _alms(fields, geo)
    ell = np.arange(geo.lmax + 1)
    pseudo = _cross_power(alm, alm, geo) / (2 * ell + 1)
    cl = pseudo / geo.fsky if cut_sky == "fsky" else _cut_sky_correct(pseudo, geo)
    c0 = fields @ fields.T / fields.shape[1]
    in_band = np.tensordot(cl, 2 * ell + 1, axes=([2], [0])) / (4.0 * np.pi)
    rest = geo.n_pixels_full - (geo.lmax + 1) ** 2
    white = (c0 - in_band) * 4.0 * np.pi / rest if rest > 0 else np.zeros_like(c0)
    return ResidualSpectra(cl, white, c0)


def quadratic_forms(
    designs: DesignTransform,
    field_index: Sequence[int],
    spectra: ResidualSpectra,
    geo: HarmonicGeometry,
    local: Sequence[bool] | None = None,
    column_index: Sequence[int] | None = None,
) -> np.ndarray:
    """``J_km = sum_{p,q} D_k(p) D_m(q) C^{f(k) f(m)}(theta_pq)`` in harmonic space.

    Parameters
    ----------
    designs : DesignTransform
        ``P`` design columns and their alms.
    field_index : sequence of int, length P
        Which residual field multiplies each design column.
    spectra : ResidualSpectra
        Spectra of the ``F`` residual fields.
    geo : HarmonicGeometry
    local : sequence of bool, length P, optional
        Parameters whose own block uses the zero-lag covariance only,
        ``J_km = c0^{fg} sum_p D_k(p) D_m(p)`` (independent pixels). Used for
        the scale parameters ``s`` and ``g``, whose design is the footprint
        itself: their score is the footprint mean of a field that the fit
        sets to zero, so the field's measured correlation integrates to zero
        over the footprint (the integral constraint) and cannot give the
        correlated part of their variance.
    column_index : sequence of int, length P, optional
        Row of ``designs`` that is each parameter's design (default: row
        ``k`` for parameter ``k``). Parameters sharing a design (``a_k`` and
        ``b_k`` of the combined model, ``s`` and ``g``) then share one
        transform instead of carrying copies of it.

    Returns
    -------
    ndarray, shape (P, P)
        Symmetric ``J`` (module docstring for the formula).
    """
    idx = np.asarray(field_index, dtype=int)
    P = idx.shape[0] if column_index is not None else designs.columns.shape[0]
    col = np.arange(P) if column_index is None else np.asarray(column_index, dtype=int)
    if idx.shape != (P,) or col.shape != (P,):
        raise ValueError(f"field_index, column_index: need {P} entries each, got "
                         f"{idx.shape} and {col.shape}")
    ell = geo.ell()
    w_m = geo.m_weight()
    J = np.empty((P, P))
    omega2 = geo.omega**2
    groups = {f: np.flatnonzero(idx == f) for f in np.unique(idx)}
    re, im = np.ascontiguousarray(designs.alms.real), np.ascontiguousarray(designs.alms.imag)
    gram = designs.columns @ designs.columns.T  # of the distinct designs, once
    keys = list(groups)
    for i, f in enumerate(keys):
        rows = groups[f]
        d_rows = np.unique(col[rows])
        for g in keys[i:]:  # J^{gf} = (J^{fg})^T: the spectra are symmetric in (f, g)
            cols = groups[g]
            d_cols = np.unique(col[cols])
            weight = (spectra.cl[f, g] - spectra.white[f, g])[ell] * w_m / omega2
            # Re(U diag(w) V^H) with real arithmetic, over the distinct designs
            low = (re[d_rows] * weight) @ re[d_cols].T + (im[d_rows] * weight) @ im[d_cols].T
            block = low + (spectra.white[f, g] / geo.omega) * gram[np.ix_(d_rows, d_cols)]
            block = block[np.ix_(np.searchsorted(d_rows, col[rows]),
                                 np.searchsorted(d_cols, col[cols]))]
            J[np.ix_(rows, cols)] = block
            J[np.ix_(cols, rows)] = block.T
    if local is not None:
        loc = np.flatnonzero(np.asarray(local, dtype=bool))
        for i in loc:
            for j in loc:
                J[i, j] = spectra.zero_lag[idx[i], idx[j]] * gram[col[i], col[j]]
    return 0.5 * (J + J.T)


def score_covariance(
    designs: DesignTransform,
    field_index: Sequence[int],
    fields: np.ndarray,
    geo: HarmonicGeometry,
    local: Sequence[bool] | None = None,
    column_index: Sequence[int] | None = None,
) -> np.ndarray:
    """Covariance ``J`` of the summed score, with the field spectra from the map itself.

    :func:`pseudo_spectra` of ``fields`` followed by :func:`quadratic_forms`.
    """
    return quadratic_forms(designs, field_index, pseudo_spectra(fields, geo), geo, local,
                           column_index)


def sandwich(hessian: np.ndarray, meat: np.ndarray) -> np.ndarray:
    """``H^-1 J H^-1`` (symmetrised).

    Parameters
    ----------
    hessian : ndarray, shape (P, P)
        Hessian of the objective, positive definite at its minimum (for a
        likelihood: ``-d^2 lnL``).
    meat : ndarray, shape (P, P)
        ``J``, the covariance of the summed score.
    """
    h_inv = np.linalg.inv(np.asarray(hessian, dtype=float))
    cov = h_inv @ np.asarray(meat, dtype=float) @ h_inv
    return 0.5 * (cov + cov.T)


def ols_covariance(
    delta: np.ndarray,
    templates: np.ndarray,
    geo: HarmonicGeometry,
    designs: DesignTransform | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients and their sandwich covariance.

    Parameters
    ----------
    delta : ndarray, shape (Npix,)
        Overdensity on the footprint.
    templates : ndarray, shape (K, Npix)
    geo : HarmonicGeometry
    designs : DesignTransform, optional
        :func:`transform_designs` of ``templates``, computed once per run and reused.

    Returns
    -------
    coef : ndarray, shape (K,)
        ``(T T^T)^-1 T delta``.
    cov : ndarray, shape (K, K)
        ``(T T^T)^-1 J (T T^T)^-1`` with ``J`` from the residual's own spectrum.
    """
    templates = np.asarray(templates, dtype=float)
    delta = np.asarray(delta, dtype=float)
    gram = templates @ templates.T
    coef = np.linalg.solve(gram, templates @ delta)
    resid = delta - coef @ templates
    designs = transform_designs(templates, geo) if designs is None else designs
    meat = score_covariance(designs, np.zeros(templates.shape[0], dtype=int), resid[None], geo)
    return coef, sandwich(gram, meat)


def mle_covariance(
    theta: np.ndarray,
    delta: np.ndarray,
    templates: np.ndarray,
    model: str,
    likelihood: str,
    geo: HarmonicGeometry,
    designs: DesignTransform | None = None,
) -> np.ndarray:
    """Sandwich covariance of a maximum-likelihood fit (Berlfein+24 Eqs. 17-18).

    Parameters
    ----------
    theta : ndarray, shape (P,)
        The maximum (:func:`hpcsys.core.fit.fit_mle`).
    delta, templates : ndarray
        The map and templates the fit used.
    model, likelihood : str
    geo : HarmonicGeometry
    designs : DesignTransform, optional
        :func:`transform_designs` of ``templates`` (reused when the model has no
        ``b``, whose designs are then the templates themselves).

    Returns
    -------
    ndarray, shape (P, P)
        ``H^-1 J H^-1`` with ``H = -d^2 lnL`` and ``J`` from the spectra of the
        score fields of :func:`hpcsys.core.scores.score_fields`.
    """
    import jax.numpy as jnp

    from hpcsys.core.derivatives import loglike_derivatives
    from hpcsys.core.likelihood import param_layout
    from hpcsys.core.models import MODELS
    from hpcsys.core.scores import score_fields

    templates = np.asarray(templates, dtype=float)
    K = templates.shape[0]
    th, d, t = jnp.asarray(theta, dtype=float), jnp.asarray(delta, dtype=float), jnp.asarray(templates)
    _, _, hess = loglike_derivatives(th, d, t, model, likelihood)
    sf = score_fields(th, d, t, model, likelihood)
    fields = np.asarray(sf.fields)
    has_a, has_b = MODELS[model]
    lay = param_layout(model, likelihood, K)
    n_scalar = lay.size - K * (int(has_a) + int(has_b))
    ones = np.ones((1, delta.shape[0]))
    if has_b or designs is None:
        tmpl = transform_designs(templates * np.asarray(sf.modulation)[None, :], geo)
    else:
        tmpl = designs
    unit = DesignTransform(ones, _quadrature(geo).mask_alm)  # the footprint, cached
    # the K template designs (shared by a and b) and the footprint (shared by s and g)
    distinct = DesignTransform(np.concatenate([tmpl.columns, ones]),
                               np.concatenate([tmpl.alms, unit.alms]))
    column = np.concatenate([np.arange(K)] * (int(has_a) + int(has_b))
                            + [np.full(n_scalar, K)])
    local = [False] * (lay.size - n_scalar) + [True] * n_scalar
    meat = score_covariance(distinct, sf.field_of_param, fields, geo, local, column)
    return sandwich(-np.asarray(hess), meat)
