"""Exact derivatives of the pixel log-likelihood (Berlfein+24 Eqs. 17-18).

The log-likelihood is a sum over pixels of ``f(delta_p; u_p, v_p, s, g)``
with ``u_p = a.t_p`` and ``v_p = b.t_p`` linear in the parameters, so the
exact Hessian is ``J^T diag(f'') J``: weighted template Gram matrices
``T diag(f_uu) T^T``, ``T diag(f_uv) T^T``, ``T diag(f_vv) T^T`` plus
rank-one terms in ``s`` and ``g``. The per-pixel derivatives ``f'`` and
``f''`` come from :func:`jax.grad`/:func:`jax.hessian` of ``f``; pixels are
processed in cache-sized chunks when the map is large. Used by the Newton
iteration of :mod:`hpcsys.core.fit`.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import Array, lax

from hpcsys.core.likelihood import log_ndtr, param_layout, skewnormal_location
from hpcsys.core.models import MODELS

__all__ = ["loglike_derivatives", "region_derivatives"]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
#: Pixels per chunk when summing derivatives over large maps.
CHUNK = 1 << 14

# --------------------------------------------------------------------------- per-pixel terms


def _pixel_gaussian(q: Array, d: Array) -> Array:
    """Gaussian ``ln L`` of one pixel (Eq. 17) as a function of ``q = (u, v, s)``."""
    u, v, s = q[0], q[1], q[2]
    r = (d - u) / (1.0 + v)
    return -0.5 * _LOG_2PI - jnp.log(s) - jnp.log(1.0 + v) - 0.5 * (r / s) ** 2


def _pixel_skewnormal(q: Array, d: Array) -> Array:
    """Skew-normal ``ln L`` of one pixel (Eq. 18) as a function of ``q = (u, v, s, g)``."""
    u, v, s, g = q[0], q[1], q[2], q[3]
    r = (d - u) / (1.0 + v)
    z = (r - skewnormal_location(s, g)) / s
    return _LOG_2 - 0.5 * _LOG_2PI - jnp.log(s) - jnp.log(1.0 + v) - 0.5 * z * z + log_ndtr(g * z)


def _pixel_terms(q: Array, d: Array, likelihood: str) -> tuple[Array, Array, Array]:
    """Value, gradient (..., Q) and Hessian (..., Q, Q) of the per-pixel ``ln L``."""
    f = _pixel_gaussian if likelihood == "gaussian" else _pixel_skewnormal
    val = jax.vmap(f)(q, d)
    grad = jax.vmap(jax.grad(f))(q, d)
    hess = jax.vmap(jax.hessian(f))(q, d)
    return val, grad, hess


def _chunk_sums(
    theta: Array, delta: Array, templates: Array, weight: Array, model: str, likelihood: str
) -> tuple[Array, Array, Array]:
    """``lnL``, gradient and Hessian summed over the pixels of one chunk.

    Returns the value, the gradient in the extended layout ``(a, b, s[, g])``
    and the Hessian blocks needed by the model, assembled in the model layout.
    """
    K, _ = templates.shape
    has_a, has_b = MODELS[model]
    lay = param_layout(model, likelihood, K)
    a = theta[lay.a] if has_a else None
    b = theta[lay.b] if has_b else None
    s = theta[lay.s]
    zero = jnp.zeros_like(delta)
    u = a @ templates if has_a else zero
    v = b @ templates if has_b else zero
    cols = [u, v, jnp.broadcast_to(s, delta.shape)]
    if likelihood == "skewnormal":
        cols.append(jnp.broadcast_to(theta[lay.g], delta.shape))
    q = jnp.stack(cols, axis=-1)
    val, gq, hq = _pixel_terms(q, delta, likelihood)
    val = jnp.sum(weight * val)
    gq = gq * weight[:, None]
    hq = hq * weight[:, None, None]

    # local coordinates present in this model: index into q, and whether it is
    # a template direction (u, v: K parameters each) or a scalar (s, g: one).
    local = []
    if has_a:
        local.append(0)
    if has_b:
        local.append(1)
    local.append(2)
    if likelihood == "skewnormal":
        local.append(3)

    def is_tmpl(i: int) -> bool:
        return i in (0, 1)

    grad_parts = [templates @ gq[:, i] if is_tmpl(i) else jnp.sum(gq[:, i])[None] for i in local]
    grad = jnp.concatenate(grad_parts)

    # template-template blocks in one GEMM: stack T * f_ij for every needed pair
    tmpl = [i for i in local if is_tmpl(i)]
    pairs = [(i, j) for n, i in enumerate(tmpl) for j in tmpl[n:]]
    blocks: dict[tuple[int, int], Array] = {}
    if pairs:
        stacked = jnp.concatenate([templates * hq[:, i, j][None, :] for i, j in pairs], axis=0)
        gram = stacked @ templates.T  # (len(pairs) K, K)
        for n, (i, j) in enumerate(pairs):
            blocks[(i, j)] = gram[n * K : (n + 1) * K]
            blocks[(j, i)] = blocks[(i, j)].T
    rows = []
    for i in local:
        row = []
        for j in local:
            if is_tmpl(i) and is_tmpl(j):
                row.append(blocks[(i, j)])
            elif is_tmpl(i):
                row.append((templates @ hq[:, i, j])[:, None])
            elif is_tmpl(j):
                row.append((templates @ hq[:, i, j])[None, :])
            else:
                row.append(jnp.sum(hq[:, i, j]).reshape(1, 1))
        rows.append(jnp.concatenate(row, axis=1))
    hess = jnp.concatenate(rows, axis=0)
    return val, grad, hess


@partial(jax.jit, static_argnames=("model", "likelihood", "chunk"))
def loglike_derivatives(
    theta: Array,
    delta: Array,
    templates: Array,
    model: str,
    likelihood: str,
    chunk: int = CHUNK,
    weight: Array | None = None,
) -> tuple[Array, Array, Array]:
    """Exact ``lnL``, gradient and Hessian at one parameter vector (Berlfein+24 Eqs. 17-18).

    Parameters
    ----------
    theta : array, shape (P,)
        Parameter vector inside the domain (``s > 0``, ``1 + b.t_p > 0``);
        outside it the results are not finite.
    delta : array, shape (Npix,)
    templates : array, shape (K, Npix)
    model, likelihood : str
    chunk : int
        Pixels per chunk; maps larger than this are summed chunk by chunk
        (``lax.fori_loop`` over slices, then the remainder): bounded memory,
        cache-sized intermediates, the same result to rounding.
    weight : array, shape (Npix,), optional
        Per-pixel weights of the sum (default ones), e.g. 0/1 to leave out a
        region (:func:`hpcsys.measure.jackknife.mle_deletions`).

    Returns
    -------
    value : array, shape ()
    grad : array, shape (P,)
    hess : array, shape (P, P)
    """
    npix = delta.shape[0]
    n_full = npix // chunk
    w = jnp.ones_like(delta) if weight is None else jnp.asarray(weight, dtype=delta.dtype)
    if n_full <= 1:
        return _chunk_sums(theta, delta, templates, w, model, likelihood)

    def body(i, carry):
        start = i * chunk
        dc = lax.dynamic_slice_in_dim(delta, start, chunk)
        tc = lax.dynamic_slice_in_dim(templates, start, chunk, axis=1)
        wc = lax.dynamic_slice_in_dim(w, start, chunk)
        val, grad, hess = _chunk_sums(theta, dc, tc, wc, model, likelihood)
        return carry[0] + val, carry[1] + grad, carry[2] + hess

    P = theta.shape[0]
    init = (jnp.zeros((), delta.dtype), jnp.zeros(P, delta.dtype), jnp.zeros((P, P), delta.dtype))
    val, grad, hess = lax.fori_loop(0, n_full, body, init)
    tail = n_full * chunk
    if tail < npix:
        v2, g2, h2 = _chunk_sums(theta, delta[tail:], templates[:, tail:], w[tail:], model,
                                 likelihood)
        val, grad, hess = val + v2, grad + g2, hess + h2
    return val, grad, hess


@partial(jax.jit, static_argnames=("model", "likelihood"))
def region_derivatives(
    theta: Array,
    delta: Array,
    templates: Array,
    weight: Array,
    model: str,
    likelihood: str,
) -> tuple[Array, Array, Array]:
    """``lnL``, gradient and Hessian of each of R pixel regions, in one pass.

    The pixels are laid out region by region, each region padded to a common
    length with zero weight, so the per-region sums cost one pass over the map
    (used by the delete-one-region jackknife, :mod:`hpcsys.measure.jackknife`).

    Parameters
    ----------
    theta : array, shape (P,)
    delta : array, shape (R, n)
        Pixel values of each region (padding arbitrary but finite, e.g. 0).
    templates : array, shape (K, R, n)
    weight : array, shape (R, n)
        1 for a pixel of the region, 0 for padding.
    model, likelihood : str

    Returns
    -------
    value : array, shape (R,)
    grad : array, shape (R, P)
    hess : array, shape (R, P, P)
        Summing over the regions gives :func:`loglike_derivatives` of the
        whole map (to rounding).
    """
    def one(d, t, w):
        return _chunk_sums(theta, d, t, w, model, likelihood)

    return jax.vmap(one, in_axes=(0, 1, 0))(delta, templates, weight)
