"""Per-pixel scores of the pixel likelihoods, factored into designs and residual fields.

With ``u_p = a.t_p``, ``v_p = b.t_p`` and the residual ``r_p = (delta_p - u_p)/(1 + v_p)``
the log-likelihood of one pixel (Berlfein+24 Eqs. 17-18) is

    l_p = h(r_p; s, g) - ln(1 + v_p),

with ``h`` the residual's log-density: Gaussian ``-ln s - r^2/(2 s^2)`` (plus a
constant), or the skew-normal ``ln(2/s) + ln phi(z) + ln Phi(g z)``,
``z = (r - xi)/s`` with the zero-mean location ``xi = -s d sqrt(2/pi)``. Its
derivatives factor as

    dl_p/da_k = t_k(p)/(1 + v_p) * (-h_r),
    dl_p/db_k = t_k(p)/(1 + v_p) * (-1 - r_p h_r),
    dl_p/ds   = h_s,            dl_p/dg = h_g,

a known design column times a field that depends on the residual alone. Those
fields are what the sandwich covariance of :mod:`hpcsys.measure.sandwich` needs
the spectra of (stationary when the residual is).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from hpcsys.core.likelihood import log_ndtr, param_layout, skewnormal_location
from hpcsys.core.models import MODELS

__all__ = ["ScoreFields", "score_fields"]

_LOG_2 = math.log(2.0)


class ScoreFields(NamedTuple):
    """Residual fields of the per-pixel score and the design modulation.

    Attributes
    ----------
    fields : array, shape (F, Npix)
        One row per parameter group present in the model, in the order
        ``a`` (``-h_r``), ``b`` (``-1 - r h_r``), ``s`` (``h_s``), ``g`` (``h_g``).
    field_of_param : array of int, shape (P,)
        Row of ``fields`` that multiplies each parameter's design.
    modulation : array, shape (Npix,)
        ``1/(1 + v_p)``: the design of ``a_k`` and ``b_k`` is ``t_k`` times this;
        the design of ``s`` and ``g`` is one.
    """

    fields: Array
    field_of_param: tuple[int, ...]
    modulation: Array


def _residual_logdensity(r: Array, s: Array, g: Array, likelihood: str) -> Array:
    """``h(r; s, g)`` of one pixel without its constant."""
    if likelihood == "gaussian":
        return -jnp.log(s) - 0.5 * (r / s) ** 2
    z = (r - skewnormal_location(s, g)) / s
    return _LOG_2 - jnp.log(s) - 0.5 * z * z + log_ndtr(g * z)


def score_fields(theta: Array, delta: Array, templates: Array, model: str,
                 likelihood: str) -> ScoreFields:
    """Factor the per-pixel score at ``theta`` (module docstring).

    Parameters
    ----------
    theta : array, shape (P,)
        Parameters (layout :func:`~hpcsys.core.likelihood.param_layout`), inside
        the domain ``s > 0``, ``1 + b.t_p > 0``.
    delta : array, shape (Npix,)
    templates : array, shape (K, Npix)
    model, likelihood : str

    Returns
    -------
    ScoreFields
        The score of parameter ``k`` in pixel ``p`` is
        ``design_k(p) * fields[field_of_param[k], p]``.
    """
    K = templates.shape[0]
    has_a, has_b = MODELS[model]
    lay = param_layout(model, likelihood, K)
    field_of: list[int] = []
    n_rows = 0
    for present, size in ((has_a, K), (has_b, K), (True, 1), (lay.g is not None, 1)):
        if present:
            field_of += [n_rows] * size
            n_rows += 1
    rows, modulation = _score_rows(theta, delta, templates, model, likelihood)
    return ScoreFields(rows, tuple(field_of), modulation)


@partial(jax.jit, static_argnames=("model", "likelihood"))
def _score_rows(theta: Array, delta: Array, templates: Array, model: str,
                likelihood: str) -> tuple[Array, Array]:
    """The rows of :class:`ScoreFields` and the modulation, compiled once per model."""
    K = templates.shape[0]
    has_a, has_b = MODELS[model]
    lay = param_layout(model, likelihood, K)
    u = theta[lay.a] @ templates if has_a else jnp.zeros_like(delta)
    v = theta[lay.b] @ templates if has_b else jnp.zeros_like(delta)
    s = theta[lay.s]
    g = theta[lay.g] if lay.g is not None else jnp.zeros((), delta.dtype)
    r = (delta - u) / (1.0 + v)

    def h(rr: Array, ss: Array, gg: Array) -> Array:
        return _residual_logdensity(rr, ss, gg, likelihood)

    grads = jax.vmap(jax.grad(h, argnums=(0, 1, 2)), in_axes=(0, None, None))(r, s, g)
    h_r, h_s, h_g = grads
    rows: list[Array] = []
    if has_a:
        rows.append(-h_r)
    if has_b:
        rows.append(-1.0 - r * h_r)
    rows.append(h_s)
    if lay.g is not None:
        rows.append(h_g)
    return jnp.stack(rows), 1.0 / (1.0 + v)
