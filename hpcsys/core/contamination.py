"""Contamination forward models and their inverse (Berlfein+24 Eqs. 11-13).

Templates are stored as a ``(K, Npix)`` array ``T`` over the footprint pixels;
coefficients ``a`` and ``b`` are ``(..., K)`` arrays, so every function here
broadcasts over leading batch axes (walkers, realisations) and evaluates the
template sums as matrix products.

Pure JAX: no NumPy inside traced code, no I/O, no global state.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

__all__ = ["contaminate", "decontaminate", "template_sum"]


def template_sum(coef: Array, templates: Array) -> Array:
    """``sum_i c_i t_i`` for every pixel: ``coef @ templates``.

    Parameters
    ----------
    coef : array, shape (..., K)
    templates : array, shape (K, Npix)

    Returns
    -------
    array, shape (..., Npix)
    """
    return jnp.matmul(coef, templates)


def contaminate(delta: Array, templates: Array, a: Array, b: Array) -> Array:
    """Observed overdensity of the combined model, Berlfein+24 Eq. 13.

    ``delta_hat = delta (1 + b.t) + a.t``; ``b = 0`` gives the additive model
    (Eq. 11) and ``a = 0`` the multiplicative one (Eq. 12).

    Parameters
    ----------
    delta : array, shape (..., Npix)
        True overdensity on the footprint.
    templates : array, shape (K, Npix)
    a, b : array, shape (..., K)

    Returns
    -------
    array, shape (..., Npix)
    """
    return delta * (1.0 + template_sum(b, templates)) + template_sum(a, templates)


def decontaminate(delta_hat: Array, templates: Array, a: Array, b: Array) -> Array:
    """Inverse of :func:`contaminate`: the residual ``r = (delta_hat - a.t)/(1 + b.t)``.

    This is the estimate of the true field that enters the likelihood
    (Berlfein+24 Eqs. 17-18). Pixels with ``1 + b.t = 0`` give ``inf``/``nan``.
    """
    return (delta_hat - template_sum(a, templates)) / (1.0 + template_sum(b, templates))
