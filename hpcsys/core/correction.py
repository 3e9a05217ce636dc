"""Noise debiasing and the two-point-function correction (Berlfein+24 Eqs. 15-16, 21).

With templates independent of the true field and of zero mean, the combined
contamination of Eq. 13 changes the angular correlation function as

``w_obs(theta) = w_true(theta) (1 + b^T Xi(theta) b) + a^T Xi(theta) a``

where ``Xi_ij(theta)`` is the (cross-)correlation function of templates ``i``
and ``j`` at separation ``theta`` (Berlfein+24 Eqs. 15-16 for the additive and
multiplicative parts). :func:`correct_w` inverts it with the full matrix
``Xi``; :func:`correct_w_diag` keeps only the autocorrelations
``xi_i = Xi_ii``, as the paper's equations are written, so the size of the
cross terms can be read off as the difference. The PCA rotation of
Appendix A (:mod:`hpcsys.core.pca`) decorrelates templates only at zero
separation, so the cross terms do not vanish in general.

The estimated coefficients are noisy; their squares are biased high by their
variance, which Eq. 21 removes. :func:`debias` is Eq. 21 as printed, per
coefficient and truncated at zero; the truncation biases the correction
(``E[max(a^2 - var, 0)] > 0`` where ``a = 0``, so a map with nothing to
correct is over-corrected) and the diagonal ignores the covariance between
coefficients. :func:`correct_w_unbiased` subtracts the expected noise of the
whole quadratic form, ``tr(Xi Sigma)``, with the full covariance ``Sigma``
and no truncation: ``E[a^T Xi a - tr(Xi Sigma)] = a_true^T Xi a_true``
exactly for an unbiased estimator with covariance ``Sigma``.

Pure JAX; every function broadcasts over leading axes and works under ``jit``
and ``vmap``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

__all__ = [
    "contaminate_w",
    "correct_w",
    "correct_w_diag",
    "correct_w_unbiased",
    "debias",
    "quadratic_form",
]


def debias(coef: Array, var: Array) -> Array:
    """Noise-debiased coefficients, Berlfein+24 Eq. 21.

    ``a~_i^2 = max(a_i^2 - Var(a_i), 0)``, returned with the sign of ``a_i``
    so that the cross terms of :func:`correct_w` keep their sign.

    Parameters
    ----------
    coef : array, shape (..., K)
        Estimated coefficients ``a`` (or ``b``).
    var : array, shape (..., K)
        Their variances (diagonal of the estimator covariance).

    Returns
    -------
    array, shape (..., K)
        ``sign(a) sqrt(max(a^2 - Var(a), 0))``.
    """
    return jnp.sign(coef) * jnp.sqrt(jnp.maximum(coef * coef - var, 0.0))


def quadratic_form(coef: Array, xi: Array) -> Array:
    """``c^T Xi(theta) c`` in every separation bin.

    Parameters
    ----------
    coef : array, shape (..., K)
    xi : array, shape (..., B, K, K)
        Template (cross-)correlation functions in ``B`` bins.

    Returns
    -------
    array, shape (..., B)
    """
    return jnp.einsum("...k,...bkl,...l->...b", coef, xi, coef)


def contaminate_w(w_true: Array, a: Array, b: Array, xi: Array) -> Array:
    """Forward model of the correlation function, Berlfein+24 Eqs. 15-16 (combined).

    ``w_obs = w_true (1 + b^T Xi b) + a^T Xi a``.

    Parameters
    ----------
    w_true : array, shape (..., B)
    a, b : array, shape (..., K)
    xi : array, shape (B, K, K) or (..., B, K, K)

    Returns
    -------
    array, shape (..., B)
    """
    return w_true * (1.0 + quadratic_form(b, xi)) + quadratic_form(a, xi)


def correct_w(w_obs: Array, a: Array, b: Array, xi: Array) -> Array:
    """Corrected correlation function with cross terms, Berlfein+24 Eqs. 15-16.

    ``w_corr = (w_obs - a^T Xi a) / (1 + b^T Xi b)``: the exact inverse of
    :func:`contaminate_w`. Pass debiased coefficients (:func:`debias`).

    Parameters
    ----------
    w_obs : array, shape (..., B)
    a, b : array, shape (..., K)
    xi : array, shape (B, K, K) or (..., B, K, K)
        Template auto- and cross-correlation functions.

    Returns
    -------
    array, shape (..., B)
    """
    return (w_obs - quadratic_form(a, xi)) / (1.0 + quadratic_form(b, xi))


def correct_w_unbiased(w_obs: Array, a: Array, b: Array, cov_a: Array, cov_b: Array,
                       xi: Array) -> Array:
    """Corrected correlation function with noise-debiased quadratic forms (Eqs. 15-16, 21).

    ``w_corr = (w_obs - [a^T Xi a - tr(Xi C_a)]) / (1 + [b^T Xi b - tr(Xi C_b)])``:
    each quadratic form minus its expected noise, with the full covariance of
    the coefficients. Unbiased for the additive part (exactly, for unbiased
    coefficients with covariance ``C_a``); the multiplicative denominator to
    first order. Pass ``xi`` with only its diagonal (zeros elsewhere) for the
    no-cross-terms variant.

    Parameters
    ----------
    w_obs : array, shape (..., B)
    a, b : array, shape (..., K)
        Estimated coefficients (not debiased).
    cov_a, cov_b : array, shape (..., K, K)
        Their covariances (zeros: no debiasing).
    xi : array, shape (B, K, K) or (..., B, K, K)

    Returns
    -------
    array, shape (..., B)
    """
    noise_a = jnp.einsum("...bkl,...lk->...b", xi, cov_a)
    noise_b = jnp.einsum("...bkl,...lk->...b", xi, cov_b)
    add = quadratic_form(a, xi) - noise_a
    mult = quadratic_form(b, xi) - noise_b
    return (w_obs - add) / (1.0 + mult)


def correct_w_diag(w_obs: Array, a: Array, b: Array, xi_auto: Array) -> Array:
    """Corrected correlation function from autocorrelations only (Eqs. 15-16 as printed).

    ``w_corr = (w_obs - sum_i a_i^2 xi_i) / (1 + sum_i b_i^2 xi_i)``.

    Parameters
    ----------
    w_obs : array, shape (..., B)
    a, b : array, shape (..., K)
    xi_auto : array, shape (B, K) or (..., B, K)
        Template autocorrelation functions ``xi_i(theta)``.

    Returns
    -------
    array, shape (..., B)
    """
    add = jnp.sum((a * a)[..., None, :] * xi_auto, axis=-1)
    mult = jnp.sum((b * b)[..., None, :] * xi_auto, axis=-1)
    return (w_obs - add) / (1.0 + mult)
