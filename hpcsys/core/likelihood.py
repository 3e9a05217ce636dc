"""Pixel likelihoods of contaminated overdensity maps (Berlfein+24 Eqs. 17-18).

Parameter vectors
-----------------
A model (``null``, ``additive``, ``multiplicative``, ``combined``) and a
likelihood (``gaussian``, ``skewnormal``) fix the layout of the flat parameter
vector ``theta``::

    theta = [a_1..a_K  (if the model is additive or combined),
             b_1..b_K  (if the model is multiplicative or combined),
             s,                     (pixel scale, > 0)
             g  (skew-normal only)] (shape parameter)

:func:`param_layout` returns the slices; :func:`unpack` turns ``theta`` of shape
``(..., P)`` into ``(a, b, s, g)`` with zeros for absent terms.

Likelihoods
-----------
With ``r_p = (delta_hat_p - a.t_p)/(1 + b.t_p)`` (the Jacobian of that map is
``1/|1 + b.t_p|``):

* Gaussian (Eq. 17): ``lnL = -N/2 ln(2 pi s^2) - sum ln|1 + b.t_p| - sum r_p^2/(2 s^2)``.
* Skew-normal (Eq. 18): ``r_p`` has density ``(2/s) phi(z) Phi(g z)`` with
  ``z = (r - xi)/s``. The location is fixed by requiring ``E[r] = 0`` (the true
  overdensity has zero mean): ``xi = -s d sqrt(2/pi)``, ``d = g/sqrt(1+g^2)``.
  ``s`` is the skew-normal scale, not the standard deviation.

Both are evaluated for many parameter vectors at once as matrix products
(``theta`` of shape ``(W, P)`` gives ``W`` values) and jit-compile with the
model and likelihood as static arguments. Parameter vectors outside the
model's domain (``s <= 0`` or ``1 + b.t_p <= 0`` on any pixel: the pole of the
Jacobian term) get ``-inf``, so samplers and optimisers cannot cross the pole.

Pure JAX: no NumPy inside traced code, no I/O, no global state.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import log_ndtr

from hpcsys.core.contamination import MODELS, template_sum

__all__ = [
    "LIKELIHOODS",
    "ParamLayout",
    "loglike",
    "min_jacobian_factor",
    "n_params",
    "pack",
    "param_layout",
    "skewnormal_location",
    "unpack",
]

LIKELIHOODS: tuple[str, ...] = ("gaussian", "skewnormal")
_LOG_2PI = math.log(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class ParamLayout(NamedTuple):
    """Slices of ``theta`` for one (model, likelihood, K); ``None`` where absent."""

    a: slice | None
    b: slice | None
    s: int
    g: int | None
    size: int


def _check(model: str, likelihood: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose from {', '.join(LIKELIHOODS)}")


def param_layout(model: str, likelihood: str, K: int) -> ParamLayout:
    """Where a, b, s and g sit in the flat parameter vector."""
    _check(model, likelihood)
    has_a, has_b = MODELS[model]
    i = 0
    sa = sb = None
    if has_a:
        sa, i = slice(i, i + K), i + K
    if has_b:
        sb, i = slice(i, i + K), i + K
    s, i = i, i + 1
    g = None
    if likelihood == "skewnormal":
        g, i = i, i + 1
    return ParamLayout(sa, sb, s, g, i)


def n_params(model: str, likelihood: str, K: int) -> int:
    """Number of free parameters of a model: the degrees of freedom for Eq. 19."""
    return param_layout(model, likelihood, K).size


def unpack(theta: Array, model: str, likelihood: str, K: int) -> tuple[Array, Array, Array, Array]:
    """Split ``theta (..., P)`` into ``a (..., K), b (..., K), s (...), g (...)``.

    Absent terms are zeros (``g = 0`` makes the skew-normal Gaussian).
    """
    lay = param_layout(model, likelihood, K)
    batch = theta.shape[:-1]
    zeros = jnp.zeros((*batch, K), dtype=theta.dtype)
    a = theta[..., lay.a] if lay.a is not None else zeros
    b = theta[..., lay.b] if lay.b is not None else zeros
    s = theta[..., lay.s]
    g = theta[..., lay.g] if lay.g is not None else jnp.zeros(batch, dtype=theta.dtype)
    return a, b, s, g


def pack(model: str, likelihood: str, a: Array, b: Array, s: Array, g: Array | None = None) -> Array:
    """Inverse of :func:`unpack`: build ``theta`` from its parts (absent parts ignored)."""
    has_a, has_b = MODELS[model]
    s = jnp.asarray(s)
    parts = []
    if has_a:
        parts.append(jnp.asarray(a))
    if has_b:
        parts.append(jnp.asarray(b))
    parts.append(s[..., None])
    if likelihood == "skewnormal":
        parts.append(jnp.broadcast_to(jnp.asarray(0.0 if g is None else g), s.shape)[..., None])
    dtype = jnp.result_type(*parts)
    return jnp.concatenate([jnp.broadcast_to(p, (*s.shape, p.shape[-1])).astype(dtype) for p in parts], axis=-1)


def skewnormal_location(s: Array, g: Array) -> Array:
    """Location ``xi`` that gives the skew-normal zero mean: ``-s d sqrt(2/pi)``."""
    return -s * g / jnp.sqrt(1.0 + g * g) * _SQRT_2_OVER_PI


def min_jacobian_factor(b: Array, templates: Array) -> Array:
    """``min_p (1 + b.t_p)``: positive inside the domain of the multiplicative models."""
    return jnp.min(1.0 + template_sum(b, templates), axis=-1)


@partial(jax.jit, static_argnames=("model", "likelihood"))
def loglike(theta: Array, delta_hat: Array, templates: Array, model: str, likelihood: str) -> Array:
    """Log-likelihood of an observed overdensity map, Berlfein+24 Eqs. 17-18.

    Parameters
    ----------
    theta : array, shape (..., P)
        Parameter vectors (layout: :func:`param_layout`); leading axes are
        evaluated together (e.g. all walkers of an ensemble).
    delta_hat : array, shape (Npix,)
        Observed overdensity on the footprint.
    templates : array, shape (K, Npix)
    model : {"null", "additive", "multiplicative", "combined"}
    likelihood : {"gaussian", "skewnormal"}

    Returns
    -------
    array, shape (...)
        ``lnL``; ``-inf`` outside the domain (``s <= 0`` or ``1 + b.t_p <= 0``).
    """
    K, npix = templates.shape
    a, b, s, g = unpack(theta, model, likelihood, K)
    has_a, has_b = MODELS[model]
    resid = delta_hat
    if has_a:
        resid = resid - template_sum(a, templates)
    n = jnp.asarray(npix, dtype=theta.dtype)
    if has_b:
        factor = 1.0 + template_sum(b, templates)
        ok = jnp.all(factor > 0.0, axis=-1) & (s > 0.0)
        safe = jnp.where(factor > 0.0, factor, 1.0)
        resid = resid / safe
        logjac = jnp.sum(jnp.log(safe), axis=-1)
    else:
        ok = s > 0.0
        logjac = jnp.zeros_like(s)
    s_safe = jnp.where(s > 0.0, s, 1.0)
    if likelihood == "gaussian":
        chi2 = jnp.sum(resid * resid, axis=-1) / (s_safe * s_safe)
        lnl = -0.5 * n * (_LOG_2PI + 2.0 * jnp.log(s_safe)) - 0.5 * chi2 - logjac
    else:
        xi = skewnormal_location(s_safe, g)
        z = (resid - xi[..., None]) / s_safe[..., None]
        per_pix = -0.5 * z * z + log_ndtr(g[..., None] * z)
        lnl = n * (math.log(2.0) - 0.5 * _LOG_2PI - jnp.log(s_safe)) + jnp.sum(per_pix, axis=-1) - logjac
    return jnp.where(ok, lnl, -jnp.inf)
