"""Systematic template maps: correlated Gaussian random fields (docs/science/conventions.rst).

Template ``i`` is built from ``K`` independent Gaussian random fields ``u_k``,
each with the unit-variance spectrum of the family ``templates.families[k mod F]``
(:func:`hpcsys.sims.spectra.template_cl` with ``templates.ell_scale``: a
common normalisation, so every ``u_k`` has pixel variance 1). The fields are
mixed with the Cholesky factor ``L`` of the requested correlation matrix ``R``,

    t_i = sum_k L_ik u_k,    so that  E[t_i t_j] = (L L^T)_ij = R_ij

at zero separation, and each template is then standardised on the footprint
(mean 0, standard deviation 1). Template ``i`` thus carries the spectrum of
family ``i`` plus the families of the templates before it, weighted by
``L_ik^2``. The zero-lag correlation is fixed, while the correlation at
separation theta, ``xi_ij(theta) = sum_k L_ik L_jk xi_k(theta)``, differs
between families: this is why the PCA rotation of Berlfein+24 App. A
decorrelates the templates only at zero separation.

``R`` is ``templates.correlation_matrix`` when given, else ones on the
diagonal and ``templates.correlation`` elsewhere.
"""

from __future__ import annotations

import numpy as np

from hpcsys.config import ConfigError, TemplatesSection
from hpcsys.sims.fields import draw_gaussian
from hpcsys.sims.spectra import template_cl

__all__ = [
    "correlation_matrix",
    "draw_templates",
    "standardise",
    "template_families",
    "template_names",
]


def correlation_matrix(section: TemplatesSection) -> np.ndarray:
    """The K x K template correlation matrix requested by the configuration.

    Raises
    ------
    ConfigError
        If it is not symmetric positive definite (naming the key).
    """
    K = section.n_templates
    if K < 1:
        raise ConfigError(f"templates.n_templates: must be >= 1, got {K}")
    if section.correlation_matrix is not None:
        R = np.asarray(section.correlation_matrix, dtype=float)
        key = "templates.correlation_matrix"
    else:
        R = np.full((K, K), float(section.correlation))
        np.fill_diagonal(R, 1.0)
        key = "templates.correlation"
    if R.shape != (K, K) or not np.allclose(R, R.T) or np.linalg.eigvalsh(R).min() <= 0:
        raise ConfigError(f"{key}: the {K} x {K} correlation matrix is not positive definite")
    return R


def template_families(section: TemplatesSection) -> tuple[str, ...]:
    """Spectral family of each independent field ``u_k`` (families cycled over K)."""
    fam = section.families
    return tuple(fam[k % len(fam)] for k in range(section.n_templates))


def template_names(section: TemplatesSection) -> tuple[str, ...]:
    """Names ``t00_exp, t01_gauss, ...`` of the K templates."""
    return tuple(f"t{k:02d}_{f}" for k, f in enumerate(template_families(section)))


def standardise(maps: np.ndarray) -> np.ndarray:
    """Subtract each row's mean and divide by its standard deviation (on the footprint)."""
    maps = maps - maps.mean(axis=-1, keepdims=True)
    return maps / maps.std(axis=-1, keepdims=True)


def draw_templates(
    section: TemplatesSection,
    nside: int,
    pixels: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw K correlated, standardised template maps on the footprint.

    Parameters
    ----------
    section : TemplatesSection
        Number of templates, families and correlation.
    nside : int
    pixels : ndarray of int, shape (Npix,)
        Footprint pixels (RING).
    rng : numpy.random.Generator
        The ``templates`` stream of :mod:`hpcsys.seeds`.

    Returns
    -------
    ndarray, shape (K, Npix)
        Templates with mean 0 and standard deviation 1 on the footprint.
    """
    L = np.linalg.cholesky(correlation_matrix(section))
    lmax = 3 * nside - 1
    fams = template_families(section)
    spectra = {f: template_cl(f, lmax, section.ell_scale) for f in set(fams)}
    u = np.empty((len(fams), pixels.shape[0]))
    for k, f in enumerate(fams):
        u[k] = draw_gaussian(spectra[f], nside, rng)[pixels]
    return standardise(L @ u)
