"""The harmonic sandwich wired to the estimators: one setup per run, one provider per map.

:mod:`hpcsys.measure.sandwich` holds the covariance itself. This module holds
what the pipeline, the methods and ``hpcsys fit`` share around it:

* :class:`SandwichSetup`: the footprint's :class:`~hpcsys.measure.sandwich.HarmonicGeometry`
  and the spherical-harmonic transform of fixed templates (the OLS design and
  the design of the additive model), built once per run by :func:`sandwich_setup`;
* :func:`sandwich_lmax`: the exact band, ``min(methods.sandwich_lmax, 3 NSIDE - 1)``.
  Above it the residual spectra are taken as white at the level that
  reproduces their zero-lag covariance (module docstring of
  :mod:`hpcsys.measure.sandwich`). That is exact for white residuals and for
  designs whose pseudo-spectrum is flat above ``lmax`` (white templates), and
  misses the shape of the residual spectrum at ``l > lmax`` weighted by the
  designs' power there (a falling galaxy spectrum: errors slightly too small).
  The coverage test of ``tests/test_measure_sandwich.py`` runs the
  whole band at NSIDE 64; ``benchmarks/bench_sandwich.py --compare`` measures
  the tail's effect at paper size (docs/correlated_pixels.rst: at NSIDE 512
  the default 512 gives errors within 2 % of the whole band);
* :func:`mle_covariances`: the covariance provider that
  :func:`hpcsys.core.comparison.compare_models` calls for each fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hpcsys.measure.sandwich import (
    DesignTransform,
    HarmonicGeometry,
    harmonic_geometry,
    mle_covariance,
    transform_designs,
)

__all__ = ["SandwichSetup", "designs_for", "mle_covariances", "sandwich_lmax", "sandwich_setup"]


@dataclass(frozen=True)
class SandwichSetup:
    """Geometry and fixed-design transform of the sandwich covariances of a run.

    Attributes
    ----------
    geometry : HarmonicGeometry
    designs : DesignTransform or None
        :func:`~hpcsys.measure.sandwich.transform_designs` of the run's fixed
        templates (``None`` when templates are redrawn per realisation).
    """

    geometry: HarmonicGeometry
    designs: DesignTransform | None = None


def sandwich_lmax(nside: int, lmax: int | None) -> int:
    """``min(lmax, 3 NSIDE - 1)``; the whole band when ``lmax`` is None."""
    top = 3 * int(nside) - 1
    return top if lmax is None else min(int(lmax), top)


def sandwich_setup(pixels: np.ndarray, nside: int, lmax: int | None,
                   templates: np.ndarray | None = None) -> SandwichSetup:
    """Build a :class:`SandwichSetup` (``templates`` transformed when given)."""
    geo = harmonic_geometry(pixels, nside, sandwich_lmax(nside, lmax))
    designs = None if templates is None else transform_designs(templates, geo)
    return SandwichSetup(geo, designs)


def designs_for(setup: SandwichSetup, templates: np.ndarray) -> DesignTransform:
    """The transform of ``templates``: the stored one if it is of the same maps, else a new one."""
    d = setup.designs
    if d is not None and d.columns.shape == np.shape(templates) and (
            d.columns is templates or np.array_equal(d.columns, templates)):
        return d
    return transform_designs(templates, setup.geometry)


def mle_covariances(setup: SandwichSetup, delta: np.ndarray, templates: np.ndarray
                    ) -> Callable[[object], np.ndarray]:
    """Covariance provider for :func:`hpcsys.core.comparison.compare_models`.

    Parameters
    ----------
    setup : SandwichSetup
    delta : ndarray, shape (Npix,)
    templates : ndarray, shape (K, Npix)
        The maps the fits use.

    Returns
    -------
    callable
        ``fit -> (P, P)``: :func:`~hpcsys.measure.sandwich.mle_covariance` of
        an :class:`~hpcsys.core.fit.MLEResult` at its maximum.
    """
    delta = np.asarray(delta, dtype=float)
    templates = np.asarray(templates, dtype=float)
    designs = designs_for(setup, templates)

    def provider(fit: object) -> np.ndarray:
        return mle_covariance(np.asarray(fit.theta, dtype=float), delta, templates,
                              fit.model, fit.likelihood, setup.geometry, designs)

    return provider
