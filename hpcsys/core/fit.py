"""Maximum-likelihood fits of the contamination models (Berlfein+24 Eqs. 17-19).

:func:`fit_mle` finds the *true* maximum of the pixel likelihood of
:mod:`hpcsys.core.likelihood` for one model (``null``, ``additive``,
``multiplicative``, ``combined``) and one likelihood (``gaussian``,
``skewnormal``). The maxima feed the likelihood-ratio test (Berlfein+24
Eq. 19), so the fit is converged to a Newton decrement ``< tol`` rather than
stopped at a loose tolerance.

Method
------
* Gaussian ``null`` and ``additive``: closed form. ``a`` is the least-squares
  solution ``(T T^T)^{-1} T delta``, ``s^2`` the mean squared residual.
* Everything else: damped Newton on ``lnL`` with exact derivatives. The
  log-likelihood is a sum over pixels of ``f(delta_p; u_p, v_p, s, g)`` with
  ``u_p = a.t_p`` and ``v_p = b.t_p`` linear in the parameters, so the exact
  Hessian is ``J^T diag(f'') J``: three weighted template Gram matrices
  ``T diag(f_uu) T^T``, ``T diag(f_uv) T^T``, ``T diag(f_vv) T^T`` plus
  rank-one terms in ``s`` and ``g``. The per-pixel derivatives ``f'`` and
  ``f''`` come from :func:`jax.grad`/:func:`jax.hessian` of ``f``; pixels
  are processed in cache-sized chunks when the map is large.
* Each Newton direction is followed by a backtracking (Armijo) line search
  that never leaves the domain ``s > 0``, ``1 + b.t_p > 0`` on every pixel:
  a trial point outside it has ``lnL = -inf`` and is refused, and the fit
  records ``hit_pole``. Where ``-H`` is not positive definite the step falls
  back to a gradient step preconditioned by ``|H|`` (saddle-free Newton:
  the eigenvalues of ``-H`` replaced by their magnitudes).
* Start: the additive least-squares solution (``a`` where the model has it),
  ``b = 0``, ``s`` = residual standard deviation. For the skew-normal the
  start of ``g`` (and the matching ``s``) comes from the method of moments on
  the residual's sample skewness, **not** ``g = 0``: with the zero-mean
  location of Eq. 18 the score of ``g`` vanishes identically at ``g = 0``
  (and so do its mixed second derivatives), so ``g = 0`` is a stationary
  point that Newton would never leave.
* Converged: ``lambda^2/2 < tol`` with the Newton decrement
  ``lambda^2 = grad^T (-H)^{-1} grad`` (an estimate of ``lnL_max - lnL``).

The whole iteration is one ``lax.while_loop`` compiled once per
(model, likelihood, K, Npix); :func:`fit_mle` wraps it into a
:class:`MLEResult`. Run with float64 enabled (``jax_enable_x64``); in float32
the default tolerance cannot be reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from hpcsys.core.contamination import MODELS
from hpcsys.core.likelihood import log_ndtr, loglike, param_layout, skewnormal_location

__all__ = ["MLEResult", "fit_mle", "fit_mle_many", "loglike_derivatives"]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
#: Pixels per chunk when summing derivatives over large maps.
_CHUNK = 1 << 14
#: Maximum halvings of a line search.
_MAX_HALVINGS = 60
_ARMIJO = 1e-4

# status codes of the Newton loop
_RUNNING, _CONVERGED, _MAX_ITER, _LINESEARCH, _NONFINITE = 0, 1, 2, 3, 4
_MESSAGES = {
    _RUNNING: "running",
    _CONVERGED: "converged: Newton decrement below tolerance",
    _MAX_ITER: "stopped: maximum number of iterations reached",
    _LINESEARCH: "stopped: line search found no increase of lnL",
    _NONFINITE: "stopped: non-finite log-likelihood or derivatives",
}


@dataclass(frozen=True)
class MLEResult:
    """Maximum-likelihood fit of one contamination model.

    Attributes
    ----------
    model, likelihood : str
        The model and likelihood fitted.
    theta : ndarray, shape (P,)
        Parameter vector at the maximum (layout :func:`~hpcsys.core.likelihood.param_layout`).
    a, b : ndarray, shape (K,)
        Additive and multiplicative coefficients; zero where the model has no such term.
    s, g : float
        Pixel scale and skew-normal shape (``g = 0`` for the Gaussian likelihood).
    cov : ndarray, shape (P, P)
        Inverse of the negative Hessian of ``lnL`` at the maximum.
    a_err, b_err : ndarray, shape (K,)
        ``sqrt(diag(cov))`` of ``a`` and ``b``; ``nan`` where the model has no such term.
    loglike : float
        ``lnL`` at the maximum (the input of Berlfein+24 Eq. 19).
    converged : bool
        Newton decrement ``lambda^2/2 < tol`` at the returned point.
    n_iter : int
        Newton iterations taken (0 for a closed-form fit).
    hit_pole : bool
        A trial step was refused because ``1 + b.t_p <= 0`` on some pixel.
    message : str
        Why the iteration stopped.
    """

    model: str
    likelihood: str
    theta: np.ndarray
    a: np.ndarray
    b: np.ndarray
    s: float
    g: float
    cov: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    loglike: float
    converged: bool
    n_iter: int
    hit_pole: bool
    message: str

    @property
    def s_err(self) -> float:
        """Standard error of ``s``."""
        i = param_layout(self.model, self.likelihood, self.a.shape[0]).s
        return float(np.sqrt(self.cov[i, i]))

    @property
    def g_err(self) -> float:
        """Standard error of ``g`` (``nan`` for the Gaussian likelihood)."""
        lay = param_layout(self.model, self.likelihood, self.a.shape[0])
        return float("nan") if lay.g is None else float(np.sqrt(self.cov[lay.g, lay.g]))


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
    chunk: int = _CHUNK,
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

    Returns
    -------
    value : array, shape ()
    grad : array, shape (P,)
    hess : array, shape (P, P)
    """
    npix = delta.shape[0]
    n_full = npix // chunk
    if n_full <= 1:
        return _chunk_sums(theta, delta, templates, jnp.ones_like(delta), model, likelihood)
    ones = jnp.ones(chunk, dtype=delta.dtype)

    def body(i, carry):
        start = i * chunk
        dc = lax.dynamic_slice_in_dim(delta, start, chunk)
        tc = lax.dynamic_slice_in_dim(templates, start, chunk, axis=1)
        val, grad, hess = _chunk_sums(theta, dc, tc, ones, model, likelihood)
        return carry[0] + val, carry[1] + grad, carry[2] + hess

    P = theta.shape[0]
    init = (jnp.zeros((), delta.dtype), jnp.zeros(P, delta.dtype), jnp.zeros((P, P), delta.dtype))
    val, grad, hess = lax.fori_loop(0, n_full, body, init)
    tail = n_full * chunk
    if tail < npix:
        v2, g2, h2 = _chunk_sums(theta, delta[tail:], templates[:, tail:],
                                 jnp.ones(npix - tail, dtype=delta.dtype), model, likelihood)
        val, grad, hess = val + v2, grad + g2, hess + h2
    return val, grad, hess


# --------------------------------------------------------------------------- start and closed form


def _least_squares(delta: Array, templates: Array) -> Array:
    """Additive least-squares coefficients ``(T T^T)^{-1} T delta``."""
    gram = templates @ templates.T
    return jnp.linalg.solve(gram, templates @ delta)


def _moments_start(resid: Array) -> tuple[Array, Array]:
    """Skew-normal ``(s, g)`` from the residual's variance and skewness (method of moments)."""
    r = resid - jnp.mean(resid)
    m2 = jnp.mean(r * r)
    m3 = jnp.mean(r * r * r)
    skew = jnp.clip(m3 / m2**1.5, -0.9, 0.9)
    c = jnp.cbrt(2.0 * skew / (4.0 - math.pi))
    mu = c / jnp.sqrt(1.0 + c * c)  # = d sqrt(2/pi)
    dd = jnp.clip(mu / _SQRT_2_OVER_PI, -0.95, 0.95)
    # never start at g = 0: the score of g vanishes identically there
    dd = jnp.where(jnp.abs(dd) < 0.05, jnp.where(dd < 0, -0.05, 0.05), dd)
    g = dd / jnp.sqrt(1.0 - dd * dd)
    s = jnp.sqrt(m2 / (1.0 - 2.0 * dd * dd / math.pi))
    return s, g


@partial(jax.jit, static_argnames=("model", "likelihood"))
def _start(delta: Array, templates: Array, model: str, likelihood: str) -> Array:
    """Starting point; the maximum itself for the Gaussian null and additive models."""
    K = templates.shape[0]
    has_a, _ = MODELS[model]
    lay = param_layout(model, likelihood, K)
    theta = jnp.zeros(lay.size, dtype=delta.dtype)
    resid = delta
    if has_a:
        a = _least_squares(delta, templates)
        theta = theta.at[lay.a].set(a)
        resid = delta - a @ templates
    if likelihood == "gaussian":
        s = jnp.sqrt(jnp.mean(resid * resid))
        theta = theta.at[lay.s].set(s)
    else:
        s, g = _moments_start(resid)
        theta = theta.at[lay.s].set(s).at[lay.g].set(g)
    return theta


# --------------------------------------------------------------------------- Newton iteration


def _direction(grad: Array, hess: Array) -> tuple[Array, Array, Array]:
    """Ascent direction: Newton where ``-H`` is positive definite, else saddle-free Newton.

    Where ``-H`` has non-positive eigenvalues (e.g. the skew-normal ``g``
    direction near ``g = 0``, where ``lnL`` is locally convex) the step uses
    ``|H|`` (eigenvalues replaced by their absolute values, floored at
    ``1e-10`` of the largest): a gradient step preconditioned by the
    curvature's magnitude, which always ascends.

    Returns the direction, the Newton decrement ``lambda^2 = grad^T (-H)^-1
    grad`` (``inf`` where ``-H`` is not positive definite) and whether the
    plain Newton step was used.
    """
    neg = -0.5 * (hess + hess.T)
    lam, vec = jnp.linalg.eigh(neg)
    pd = jnp.all(lam > 0.0) & jnp.all(jnp.isfinite(lam))
    floor = 1e-10 * jnp.max(jnp.abs(lam))
    lam_abs = jnp.maximum(jnp.abs(lam), floor)
    proj = vec.T @ grad
    step = vec @ (proj / lam_abs)
    dec = jnp.where(pd, proj @ (proj / lam_abs), jnp.inf)
    return step, dec, pd


def _value(theta: Array, delta: Array, templates: Array, model: str, likelihood: str) -> tuple[Array, Array]:
    """``lnL`` (``-inf`` outside the domain) and whether the pole was the reason."""
    lnl = loglike(theta, delta, templates, model, likelihood)
    K = templates.shape[0]
    lay = param_layout(model, likelihood, K)
    if lay.b is None:
        pole = jnp.asarray(False)
    else:
        pole = jnp.min(1.0 + theta[lay.b] @ templates) <= 0.0
    return lnl, pole


@partial(jax.jit, static_argnames=("model", "likelihood", "chunk"))
def _newton(
    theta0: Array,
    delta: Array,
    templates: Array,
    max_iter: Array,
    tol: Array,
    model: str,
    likelihood: str,
    chunk: int = _CHUNK,
):
    """Damped Newton ascent of ``lnL`` from ``theta0``; see the module docstring."""
    derivs = partial(loglike_derivatives, delta=delta, templates=templates, model=model,
                     likelihood=likelihood, chunk=chunk)
    value = partial(_value, delta=delta, templates=templates, model=model, likelihood=likelihood)

    val0, g0, h0 = derivs(theta0)
    status0 = jnp.where(jnp.isfinite(val0) & jnp.all(jnp.isfinite(g0)) & jnp.all(jnp.isfinite(h0)),
                        _RUNNING, _NONFINITE)
    step0, dec0, _ = _direction(g0, h0)
    status0 = jnp.where((status0 == _RUNNING) & (0.5 * dec0 < tol), _CONVERGED, status0)
    init = (theta0, val0, g0, h0, step0, dec0, jnp.asarray(0), status0, jnp.asarray(False))

    def cond(state):
        return state[7] == _RUNNING

    def body(state):
        theta, val, grad, _, step, _, it, status, pole = state
        slope = grad @ step

        def ls_cond(ls):
            _, n, ok, _ = ls
            return (~ok) & (n < _MAX_HALVINGS)

        def ls_body(ls):
            t, n, _, pole_ls = ls
            trial = theta + t * step
            v, p = value(trial)
            ok = jnp.isfinite(v) & (v >= val + _ARMIJO * t * slope)
            return (jnp.where(ok, t, 0.5 * t), n + 1, ok, pole_ls | p)

        t, _, ok, pole_ls = lax.while_loop(
            ls_cond, ls_body, (jnp.asarray(1.0, theta.dtype), jnp.asarray(0), jnp.asarray(False),
                               jnp.asarray(False)))
        new_theta = jnp.where(ok, theta + t * step, theta)
        nval, ngrad, nhess = derivs(new_theta)
        finite = jnp.isfinite(nval) & jnp.all(jnp.isfinite(ngrad)) & jnp.all(jnp.isfinite(nhess))
        nstep, ndec, _ = _direction(ngrad, nhess)
        it = it + 1
        status = jnp.where(
            ~ok, _LINESEARCH,
            jnp.where(~finite, _NONFINITE,
                      jnp.where(0.5 * ndec < tol, _CONVERGED,
                                jnp.where(it >= max_iter, _MAX_ITER, _RUNNING))))
        return (new_theta, nval, ngrad, nhess, nstep, ndec, it, status, pole | pole_ls)

    theta, val, grad, hess, _, dec, it, status, pole = lax.while_loop(cond, body, init)
    return theta, val, grad, hess, dec, it, status, pole


# --------------------------------------------------------------------------- public entry


def _check_inputs(delta: Array, templates: Array, batched: bool = False) -> tuple[Array, Array]:
    delta = jnp.asarray(delta)
    templates = jnp.asarray(templates)
    want = 2 if batched else 1
    if delta.ndim != want:
        shape = "(R, Npix)" if batched else "(Npix,)"
        raise ValueError(f"delta: expected shape {shape}, got {delta.shape}")
    npix = delta.shape[-1]
    if templates.ndim != 2 or templates.shape[1] != npix:
        raise ValueError(f"templates: expected shape (K, {npix}), got {templates.shape}")
    if templates.shape[0] >= npix:
        raise ValueError(f"templates: need fewer templates than pixels, got shape {templates.shape}")
    if not bool(jnp.all(jnp.isfinite(delta))):
        raise ValueError("delta: contains non-finite values")
    if not bool(jnp.all(jnp.isfinite(templates))):
        raise ValueError("templates: contains non-finite values")
    dtype = jnp.result_type(delta.dtype, templates.dtype, float)
    return delta.astype(dtype), templates.astype(dtype)


def _check_theta0(theta0, delta, templates, model, likelihood, size) -> Array:
    theta0 = jnp.asarray(theta0, dtype=delta.dtype)
    want = (*delta.shape[:-1], size)
    if theta0.shape != want:
        raise ValueError(f"theta0: expected shape {want} for {model}/{likelihood} "
                         f"with K={templates.shape[0]}, got {theta0.shape}")
    lnl = jax.vmap(loglike, in_axes=(0, 0, None, None, None))(
        theta0.reshape(-1, size), delta.reshape(-1, delta.shape[-1]), templates, model, likelihood)
    if not bool(jnp.all(jnp.isfinite(lnl))):
        raise ValueError("theta0: outside the domain (s <= 0 or 1 + b.t_p <= 0 on a pixel)")
    return theta0


def _result(model: str, likelihood: str, K: int, closed: bool, theta, val, hess, dec, it, status,
            pole) -> MLEResult:
    """Package the arrays of one Newton run as an :class:`MLEResult`."""
    lay = param_layout(model, likelihood, K)
    status = int(status)
    if status == _RUNNING:  # max_iter == 0 and not converged at the start
        status = _MAX_ITER
    message = _MESSAGES[status] + f" (lambda^2/2 = {0.5 * float(dec):.3g})"
    if closed:
        message = "closed form (least squares); " + message
    theta = np.asarray(theta)
    hess = np.asarray(hess)
    try:
        cov = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        cov = np.full_like(hess, np.nan)
    diag = np.diag(cov)
    err = np.sqrt(np.where(diag > 0, diag, np.nan))
    zeros = np.zeros(K, dtype=theta.dtype)
    nans = np.full(K, np.nan, dtype=theta.dtype)
    return MLEResult(
        model=model,
        likelihood=likelihood,
        theta=theta,
        a=theta[lay.a].copy() if lay.a is not None else zeros,
        b=theta[lay.b].copy() if lay.b is not None else zeros.copy(),
        s=float(theta[lay.s]),
        g=float(theta[lay.g]) if lay.g is not None else 0.0,
        cov=cov,
        a_err=err[lay.a].copy() if lay.a is not None else nans,
        b_err=err[lay.b].copy() if lay.b is not None else nans.copy(),
        loglike=float(val),
        converged=status == _CONVERGED,
        n_iter=int(it),
        hit_pole=bool(pole),
        message=message,
    )


def fit_mle(
    delta: Array,
    templates: Array,
    model: str,
    likelihood: str,
    *,
    theta0: Array | None = None,
    max_iter: int = 200,
    tol: float = 1e-9,
    chunk: int = _CHUNK,
) -> MLEResult:
    """Maximum-likelihood fit of one contamination model (Berlfein+24 Eqs. 11-13, 17-18).

    Parameters
    ----------
    delta : array, shape (Npix,)
        Observed overdensity on the footprint.
    templates : array, shape (K, Npix)
        Templates on the same pixels (possibly PCA-rotated, :mod:`hpcsys.core.pca`).
    model : {"null", "additive", "multiplicative", "combined"}
    likelihood : {"gaussian", "skewnormal"}
    theta0 : array, shape (P,), optional
        Starting point inside the domain; default: see the module docstring.
    max_iter : int
        Maximum Newton iterations (config ``methods.mle_max_iter``).
    tol : float
        Stop when half the Newton decrement, ``lambda^2/2``, is below ``tol``.
    chunk : int
        Pixels per chunk for the derivative sums.

    Returns
    -------
    MLEResult

    Raises
    ------
    ValueError
        Unknown model or likelihood, inconsistent shapes, non-finite input,
        or a ``theta0`` of the wrong size or outside the domain.
    """
    delta, templates = _check_inputs(delta, templates)
    K = templates.shape[0]
    lay = param_layout(model, likelihood, K)  # validates the names
    if max_iter < 0:
        raise ValueError(f"max_iter: must be >= 0, got {max_iter}")
    closed = likelihood == "gaussian" and model in ("null", "additive")
    if theta0 is None:
        theta0 = _start(delta, templates, model, likelihood)
    else:
        theta0 = _check_theta0(theta0, delta, templates, model, likelihood, lay.size)
        closed = False
    if closed:
        # the start is the maximum: only the derivatives there are needed
        out = _at_point(theta0, delta, templates, jnp.asarray(tol, delta.dtype), model=model,
                        likelihood=likelihood, chunk=chunk)
    else:
        out = _newton(theta0, delta, templates, jnp.asarray(max_iter),
                      jnp.asarray(tol, delta.dtype), model=model, likelihood=likelihood,
                      chunk=chunk)
    theta, val, _, hess, dec, it, status, pole = out
    return _result(model, likelihood, K, closed, theta, val, hess, dec, it, status, pole)


@partial(jax.jit, static_argnames=("model", "likelihood", "chunk"))
def _at_point(theta, delta, templates, tol, model, likelihood, chunk):
    """The outputs of :func:`_newton` without iterating (closed-form maxima)."""
    val, grad, hess = loglike_derivatives(theta, delta, templates, model, likelihood, chunk)
    _, dec, _ = _direction(grad, hess)
    status = jnp.where(0.5 * dec < tol, _CONVERGED, _MAX_ITER)
    return theta, val, grad, hess, dec, jnp.asarray(0), status, jnp.asarray(False)


@partial(jax.jit, static_argnames=("model", "likelihood", "chunk"))
def _newton_many(theta0, deltas, templates, max_iter, tol, model, likelihood, chunk):
    def one(th, d):
        return _newton(th, d, templates, max_iter, tol, model=model, likelihood=likelihood,
                       chunk=chunk)

    return jax.vmap(one)(theta0, deltas)


def fit_mle_many(
    deltas: Array,
    templates: Array,
    model: str,
    likelihood: str,
    *,
    theta0: Array | None = None,
    max_iter: int = 200,
    tol: float = 1e-9,
    chunk: int = _CHUNK,
) -> tuple[MLEResult, ...]:
    """:func:`fit_mle` for many maps on the same templates, as one vectorised computation.

    All maps are iterated together (``vmap`` of the Newton loop, compiled once
    per shape); each result is identical to what :func:`fit_mle` returns for
    that map, to rounding.

    Parameters
    ----------
    deltas : array, shape (R, Npix)
        ``R`` observed maps (realisations, mocks).
    templates : array, shape (K, Npix)
    model, likelihood, max_iter, tol, chunk
        As for :func:`fit_mle`.
    theta0 : array, shape (R, P), optional

    Returns
    -------
    tuple of MLEResult, length R
    """
    deltas, templates = _check_inputs(deltas, templates, batched=True)
    K = templates.shape[0]
    lay = param_layout(model, likelihood, K)
    if max_iter < 0:
        raise ValueError(f"max_iter: must be >= 0, got {max_iter}")
    closed = likelihood == "gaussian" and model in ("null", "additive")
    if theta0 is None:
        theta0 = jax.vmap(_start, in_axes=(0, None, None, None))(deltas, templates, model, likelihood)
    else:
        theta0 = _check_theta0(theta0, deltas, templates, model, likelihood, lay.size)
        closed = False
    tol_ = jnp.asarray(tol, deltas.dtype)
    if closed:
        outs = jax.vmap(partial(_at_point, model=model, likelihood=likelihood, chunk=chunk),
                        in_axes=(0, 0, None, None))(theta0, deltas, templates, tol_)
    else:
        outs = _newton_many(theta0, deltas, templates, jnp.asarray(max_iter), tol_, model=model,
                            likelihood=likelihood, chunk=chunk)
    theta, val, _, hess, dec, it, status, pole = (np.asarray(o) for o in outs)
    return tuple(
        _result(model, likelihood, K, closed, theta[r], val[r], hess[r], dec[r], it[r], status[r],
                pole[r])
        for r in range(deltas.shape[0])
    )
