"""PCA rotation of correlated templates (Berlfein+24 Appendix A).

Correlated templates make the fitted coefficients correlated and the
noise-debiasing of Eq. 21 (which uses only the diagonal variances) biased.
Appendix A therefore fits on rotated templates: with the zero-lag template
covariance ``C = T T^T / N = V D V^T`` (eigen-decomposition, ``V``
orthogonal), the rotated templates ``T' = V^T T`` are uncorrelated at zero
separation, ``T' T'^T / N = D``.

A model fitted on ``T'`` has coefficients ``a'`` with ``a'.T' = (V a').T``,
so the coefficients in the original basis are ``a = V a'`` and their
covariance ``V Cov(a') V^T``. The same holds for ``b``.

Pure JAX; every function works under ``jit`` and ``vmap``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

__all__ = ["PCARotation", "cov_to_original", "pca_rotation", "rotate_templates", "to_original"]


class PCARotation(NamedTuple):
    """Eigen-decomposition ``C = V D V^T`` of the zero-lag template covariance.

    Attributes
    ----------
    V : array, shape (K, K)
        Orthogonal matrix whose columns are the eigenvectors of ``C``,
        ordered by decreasing eigenvalue, each with its largest-magnitude
        entry positive (a deterministic sign convention).
    D : array, shape (K,)
        Eigenvalues (variances of the rotated templates), decreasing.
    """

    V: Array
    D: Array


def pca_rotation(templates: Array) -> PCARotation:
    """Rotation that decorrelates the templates, Berlfein+24 App. A.

    Parameters
    ----------
    templates : array, shape (K, Npix)

    Returns
    -------
    PCARotation
        ``V``, ``D`` with ``T T^T / Npix = V diag(D) V^T``.
    """
    npix = templates.shape[-1]
    cov = templates @ templates.T / npix
    D, V = jnp.linalg.eigh(cov)
    D, V = D[::-1], V[:, ::-1]
    # sign convention: largest-|entry| of each eigenvector positive
    idx = jnp.argmax(jnp.abs(V), axis=0)
    sign = jnp.sign(jnp.take_along_axis(V, idx[None, :], axis=0))[0]
    sign = jnp.where(sign == 0, 1.0, sign)
    return PCARotation(V=V * sign[None, :], D=D)


def rotate_templates(templates: Array, rot: PCARotation) -> Array:
    """Rotated templates ``T' = V^T T`` (shape (K, Npix))."""
    return rot.V.T @ templates


def to_original(coef_rot: Array, rot: PCARotation) -> Array:
    """Coefficients in the original template basis: ``a = V a'``.

    Parameters
    ----------
    coef_rot : array, shape (..., K)
        Coefficients fitted on the rotated templates.
    rot : PCARotation

    Returns
    -------
    array, shape (..., K)
        Because ``a'.(V^T T) = (V a').T``.
    """
    return coef_rot @ rot.V.T


def cov_to_original(cov_rot: Array, rot: PCARotation) -> Array:
    """Covariance of coefficients in the original basis: ``V Cov(a') V^T``.

    Parameters
    ----------
    cov_rot : array, shape (..., K, K)
    rot : PCARotation

    Returns
    -------
    array, shape (..., K, K)
    """
    return rot.V @ cov_rot @ rot.V.T
