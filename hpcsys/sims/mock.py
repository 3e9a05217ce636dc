"""One mock observation: true field, contamination and galaxy counts (Berlfein+24 Eqs. 11-13; docs/science/conventions.rst).

Given the full-sky lognormal overdensity ``delta`` of a realisation:

1. the *true* overdensity on the footprint is taken relative to the
   footprint's own mean density, ``delta_true = (1 + delta)/<1 + delta> - 1``
   (what a noise-free, clean survey would measure; mean exactly 0);
2. contamination, Berlfein+24 Eq. 13 (Eqs. 11-12 as special cases),
   ``delta_hat = delta_true (1 + b.t) + a.t`` via
   :func:`hpcsys.core.contamination.contaminate`;
3. galaxy counts ``N_p ~ Poisson(nbar_pix max(1 + delta_hat_p, 0))`` with
   ``nbar_pix = sky.number_density x pixel area (arcmin^2)``, and the observed
   overdensity ``delta_obs = N_p/<N> - 1`` on the footprint. With
   ``sky.shot_noise`` off the expectation replaces the draw:
   ``delta_obs = max(1 + delta_hat, 0)/<max(1 + delta_hat, 0)> - 1``.

Because templates have zero footprint mean, ``a = b = 0`` with shot noise off
gives ``delta_obs = delta_true``, and the additive model with shot noise off
gives ``delta_obs = delta_hat`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np

from hpcsys.config import ConfigError
from hpcsys.core.contamination import contaminate

__all__ = ["Mock", "mean_count_per_pixel", "observe", "true_overdensity"]


@dataclass(frozen=True)
class Mock:
    """A mock observation on the footprint pixels.

    Attributes
    ----------
    delta_true : ndarray, shape (Npix,)
        True overdensity (footprint mean 0).
    delta_hat : ndarray, shape (Npix,)
        Contaminated overdensity before counting (Berlfein+24 Eq. 13).
    delta_obs : ndarray, shape (Npix,)
        Observed overdensity from the galaxy counts.
    counts : ndarray of int64, shape (Npix,)
        Galaxy counts per pixel (empty when shot noise is off).
    n_clipped : int
        Pixels where ``1 + delta_hat < 0`` was clipped to zero density.
    """

    delta_true: np.ndarray
    delta_hat: np.ndarray
    delta_obs: np.ndarray
    counts: np.ndarray
    n_clipped: int


def mean_count_per_pixel(number_density: float, nside: int) -> float:
    """Mean galaxies per pixel: density (per arcmin^2) times the pixel area."""
    if not number_density > 0:
        raise ConfigError(f"sky.number_density: must be > 0, got {number_density}")
    return float(number_density) * hp.nside2pixarea(nside, degrees=True) * 3600.0


def true_overdensity(delta_pixels: np.ndarray) -> np.ndarray:
    """``(1 + delta)/<1 + delta> - 1`` over the footprint pixels (mean exactly 0)."""
    one_plus = 1.0 + np.asarray(delta_pixels, dtype=float)
    return one_plus / one_plus.mean() - 1.0


def observe(
    delta_true: np.ndarray,
    templates: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    nbar_pixel: float,
    shot_noise: bool,
    rng: np.random.Generator,
) -> Mock:
    """Contaminate a true field and count galaxies (see the module docstring).

    Parameters
    ----------
    delta_true : ndarray, shape (Npix,)
    templates : ndarray, shape (K, Npix)
    a, b : ndarray, shape (K,)
    nbar_pixel : float
        Mean galaxies per pixel (:func:`mean_count_per_pixel`).
    shot_noise : bool
        Draw Poisson counts; else use the expected density.
    rng : numpy.random.Generator
        The ``counts`` stream of the realisation.
    """
    if not nbar_pixel > 0:
        raise ConfigError(f"sky.number_density: mean count per pixel must be > 0, got {nbar_pixel}")
    delta_hat = np.asarray(contaminate(delta_true, templates, a, b), dtype=float)
    density = 1.0 + delta_hat
    n_clipped = int(np.count_nonzero(density < 0))
    density = np.maximum(density, 0.0)
    if shot_noise:
        counts = rng.poisson(nbar_pixel * density).astype(np.int64)
        mean = counts.mean()
        if mean == 0:
            raise ConfigError("sky.number_density: no galaxies were drawn on the footprint")
        delta_obs = counts / mean - 1.0
    else:
        counts = np.empty(0, dtype=np.int64)
        delta_obs = density / density.mean() - 1.0
    return Mock(delta_true=np.asarray(delta_true, dtype=float), delta_hat=delta_hat,
                delta_obs=delta_obs, counts=counts, n_clipped=n_clipped)
