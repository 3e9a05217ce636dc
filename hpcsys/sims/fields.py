"""Random fields on the sphere with GLASS: the lognormal true field and Gaussian templates.

The true overdensity is a lognormal field ``delta = exp(G - sigma_G^2/2) - 1``
(shift 1, so ``delta >= -1``) whose Gaussian field ``G`` has the spectrum that
makes ``delta`` match the target C_l: the lognormal transform
``xi_G(theta) = ln(1 + xi_delta(theta))`` (docs/science/conventions.rst), computed by
:func:`glass.compute_gaussian_spectra` for the band-limited transform. That
function can return tiny negative values at l = 0, 1 when C_0 = C_1 = 0; they
are clipped at zero (see docs/sharp_bits.rst). Maps are synthesised by :func:`glass.generate`
at the pixel centres (``pixwin=False``): no HEALPix pixel window is applied,
so :func:`hp.pixwin` (which downloads a file) is never needed.

All randomness comes from the ``rng`` argument (a :class:`numpy.random.Generator`
drawn from :mod:`hpcsys.seeds`).
"""

from __future__ import annotations

import glass
import numpy as np

__all__ = ["draw_gaussian", "draw_lognormal", "lognormal_gaussian_cl"]


def lognormal_gaussian_cl(cl: np.ndarray) -> np.ndarray:
    """Gaussian-field spectrum of a lognormal field with target spectrum ``cl``.

    Parameters
    ----------
    cl : ndarray, shape (lmax + 1,)
        Target C_l of the lognormal overdensity.

    Returns
    -------
    ndarray, shape (lmax + 1,)
        C_l of the Gaussian field (``xi_G = ln(1 + xi)``), negative values clipped to 0.
    """
    gls = glass.compute_gaussian_spectra([glass.grf.Lognormal()], [np.asarray(cl, float)])
    return np.clip(np.asarray(gls[0], dtype=float), 0.0, None)


def draw_lognormal(gl: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Full-sky lognormal overdensity map from its Gaussian spectrum.

    Parameters
    ----------
    gl : ndarray
        Gaussian spectrum from :func:`lognormal_gaussian_cl`.
    nside : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (12 nside^2,)
        ``delta >= -1`` in RING order.
    """
    return next(iter(glass.generate([glass.grf.Lognormal()], [gl], nside, rng=rng)))


def draw_gaussian(cl: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Full-sky Gaussian random field with angular power spectrum ``cl`` (RING order)."""
    return next(iter(glass.generate([glass.grf.Normal()], [np.asarray(cl, float)], nside,
                                    rng=rng)))
