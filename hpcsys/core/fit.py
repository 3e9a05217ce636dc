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
* Everything else: damped Newton on ``lnL`` with the exact derivatives of
  :func:`hpcsys.core.derivatives.loglike_derivatives` (per-pixel
  :func:`jax.grad`/:func:`jax.hessian`, template Gram matrices, chunked sums).
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
:class:`MLEResult`, a JAX pytree, so many maps are fitted as one vectorised
computation with ``jax.vmap(partial(fit_mle, templates=T, model=m,
likelihood=l))(deltas)`` (the input checks that need concrete values are
skipped under a transformation). The derivatives are in
:mod:`hpcsys.core.derivatives`. Run with float64 enabled
(``jax_enable_x64``); in float32 the default tolerance cannot be reached.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from hpcsys.core.derivatives import CHUNK, loglike_derivatives
from hpcsys.core.likelihood import loglike, param_layout
from hpcsys.core.models import MODELS

__all__ = ["MLEResult", "fit_mle", "loglike_derivatives"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
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
    """Maximum-likelihood fit of one contamination model (a JAX pytree).

    ``model``, ``likelihood`` and ``closed`` are static (pytree metadata);
    every other field is an array leaf, so ``jax.vmap`` of :func:`fit_mle`
    returns one :class:`MLEResult` whose fields carry a leading batch axis.
    An unbatched eager fit holds NumPy arrays and Python scalars.

    Attributes
    ----------
    model, likelihood : str
        The model and likelihood fitted.
    closed : bool
        The maximum is in closed form (Gaussian ``null`` and ``additive``).
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
    status : int
        Why the iteration stopped (code of :attr:`message`).
    decrement : float
        Half the Newton decrement, ``lambda^2/2``, at the returned point.
    """

    model: str
    likelihood: str
    closed: bool
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
    status: int
    decrement: float

    @property
    def s_err(self) -> float:
        """Standard error of ``s``."""
        i = param_layout(self.model, self.likelihood, np.shape(self.a)[-1]).s
        return _scalar(np.sqrt(np.asarray(self.cov)[..., i, i]))

    @property
    def g_err(self) -> float:
        """Standard error of ``g`` (``nan`` for the Gaussian likelihood)."""
        lay = param_layout(self.model, self.likelihood, np.shape(self.a)[-1])
        cov = np.asarray(self.cov)
        if lay.g is None:
            return _scalar(np.full(cov.shape[:-2], np.nan))
        return _scalar(np.sqrt(cov[..., lay.g, lay.g]))

    @property
    def message(self) -> str:
        """Why the iteration stopped, with ``lambda^2/2`` (an array of str when batched)."""
        prefix = "closed form (least squares); " if self.closed else ""
        status, dec = np.asarray(self.status), np.asarray(self.decrement)
        msgs = [f"{prefix}{_MESSAGES[int(s)]} (lambda^2/2 = {float(d):.3g})"
                for s, d in zip(status.ravel(), dec.ravel())]
        return msgs[0] if status.ndim == 0 else np.array(msgs).reshape(status.shape)


_STATIC = ("model", "likelihood", "closed")
_LEAVES = tuple(f.name for f in dataclasses.fields(MLEResult) if f.name not in _STATIC)
jax.tree_util.register_pytree_node(
    MLEResult,
    lambda r: (tuple(getattr(r, n) for n in _LEAVES), tuple(getattr(r, n) for n in _STATIC)),
    lambda aux, leaves: MLEResult(**dict(zip(_STATIC, aux)), **dict(zip(_LEAVES, leaves))),
)


def _scalar(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


class _NewtonState(NamedTuple):
    """Loop state of the Newton iteration (and its result)."""

    theta: Array
    value: Array
    grad: Array
    hess: Array
    step: Array
    decrement: Array
    n_iter: Array
    status: Array
    hit_pole: Array


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


def _finite(val: Array, grad: Array, hess: Array) -> Array:
    return jnp.isfinite(val) & jnp.all(jnp.isfinite(grad)) & jnp.all(jnp.isfinite(hess))


@partial(jax.jit, static_argnames=("model", "likelihood", "chunk"))
def _newton(
    theta0: Array,
    delta: Array,
    templates: Array,
    max_iter: Array,
    tol: Array,
    model: str,
    likelihood: str,
    chunk: int = CHUNK,
) -> _NewtonState:
    """Damped Newton ascent of ``lnL`` from ``theta0``; see the module docstring."""
    derivs = partial(loglike_derivatives, delta=delta, templates=templates, model=model,
                     likelihood=likelihood, chunk=chunk)
    value = partial(_value, delta=delta, templates=templates, model=model, likelihood=likelihood)

    val0, g0, h0 = derivs(theta0)
    status0 = jnp.where(_finite(val0, g0, h0), _RUNNING, _NONFINITE)
    step0, dec0, _ = _direction(g0, h0)
    status0 = jnp.where((status0 == _RUNNING) & (0.5 * dec0 < tol), _CONVERGED, status0)
    init = _NewtonState(theta0, val0, g0, h0, step0, dec0, jnp.asarray(0), status0,
                        jnp.asarray(False))

    def cond(state: _NewtonState) -> Array:
        return state.status == _RUNNING

    def body(state: _NewtonState) -> _NewtonState:
        theta, val, grad, step = state.theta, state.value, state.grad, state.step
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
        finite = _finite(nval, ngrad, nhess)
        nstep, ndec, _ = _direction(ngrad, nhess)
        it = state.n_iter + 1
        status = jnp.where(
            ~ok, _LINESEARCH,
            jnp.where(~finite, _NONFINITE,
                      jnp.where(0.5 * ndec < tol, _CONVERGED,
                                jnp.where(it >= max_iter, _MAX_ITER, _RUNNING))))
        return _NewtonState(new_theta, nval, ngrad, nhess, nstep, ndec, it, status,
                            state.hit_pole | pole_ls)

    return lax.while_loop(cond, body, init)


@partial(jax.jit, static_argnames=("model", "likelihood", "chunk"))
def _at_point(theta: Array, delta: Array, templates: Array, tol: Array, model: str,
              likelihood: str, chunk: int) -> _NewtonState:
    """The state :func:`_newton` would return, without iterating (closed-form maxima)."""
    val, grad, hess = loglike_derivatives(theta, delta, templates, model, likelihood, chunk)
    step, dec, _ = _direction(grad, hess)
    status = jnp.where(0.5 * dec < tol, _CONVERGED, _MAX_ITER)
    return _NewtonState(theta, val, grad, hess, step, dec, jnp.asarray(0), status,
                        jnp.asarray(False))


# --------------------------------------------------------------------------- public entry


def _concrete(*xs) -> bool:
    """No argument is a tracer (the value checks need concrete arrays)."""
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_inputs(delta: Array, templates: Array) -> tuple[Array, Array]:
    delta = jnp.asarray(delta)
    templates = jnp.asarray(templates)
    if delta.ndim != 1:
        raise ValueError(f"delta: expected shape (Npix,), got {delta.shape}")
    npix = delta.shape[-1]
    if templates.ndim != 2 or templates.shape[1] != npix:
        raise ValueError(f"templates: expected shape (K, {npix}), got {templates.shape}")
    if templates.shape[0] >= npix:
        raise ValueError(f"templates: need fewer templates than pixels, got shape {templates.shape}")
    if _concrete(delta) and not bool(jnp.all(jnp.isfinite(delta))):
        raise ValueError("delta: contains non-finite values")
    if _concrete(templates) and not bool(jnp.all(jnp.isfinite(templates))):
        raise ValueError("templates: contains non-finite values")
    dtype = jnp.result_type(delta.dtype, templates.dtype, float)
    return delta.astype(dtype), templates.astype(dtype)


def _check_theta0(theta0, delta, templates, model, likelihood, size) -> Array:
    theta0 = jnp.asarray(theta0, dtype=delta.dtype)
    if theta0.shape != (size,):
        raise ValueError(f"theta0: expected shape {(size,)} for {model}/{likelihood} "
                         f"with K={templates.shape[0]}, got {theta0.shape}")
    if _concrete(theta0, delta, templates) and not bool(
            jnp.isfinite(loglike(theta0, delta, templates, model, likelihood))):
        raise ValueError("theta0: outside the domain (s <= 0 or 1 + b.t_p <= 0 on a pixel)")
    return theta0


def _inverse(neg_hess: np.ndarray) -> np.ndarray:
    """NumPy inverse of ``-H`` (``nan`` where singular): the covariance of an eager fit."""
    try:
        return np.linalg.inv(neg_hess)
    except np.linalg.LinAlgError:
        return np.full_like(neg_hess, np.nan)


def _result(model: str, likelihood: str, K: int, closed: bool, state: _NewtonState,
            eager: bool) -> MLEResult:
    """Package the state of one Newton run as an :class:`MLEResult`.

    Eagerly the covariance is NumPy's (LAPACK) inverse and the leaves become
    NumPy arrays and Python scalars; under a transformation (``vmap``, ``jit``)
    everything stays in JAX and the covariance is :func:`jax.numpy.linalg.inv`
    (equal to rounding).
    """
    lay = param_layout(model, likelihood, K)
    if eager:
        xp = np
        state = _NewtonState(*(np.asarray(x) for x in state))
        cov = _inverse(-state.hess)
    else:
        xp = jnp
        cov = jnp.linalg.inv(-state.hess)
    # max_iter == 0 and not converged at the start
    status = xp.where(state.status == _RUNNING, _MAX_ITER, state.status)
    theta = state.theta
    diag = xp.diagonal(cov)
    err = xp.sqrt(xp.where(diag > 0, diag, xp.nan))
    zeros = xp.zeros(K, dtype=theta.dtype)
    nans = xp.full(K, xp.nan, dtype=theta.dtype)
    res = MLEResult(
        model=model,
        likelihood=likelihood,
        closed=closed,
        theta=theta,
        a=theta[lay.a] if lay.a is not None else zeros,
        b=theta[lay.b] if lay.b is not None else zeros,
        s=theta[lay.s],
        g=theta[lay.g] if lay.g is not None else xp.zeros((), theta.dtype),
        cov=cov,
        a_err=err[lay.a] if lay.a is not None else nans,
        b_err=err[lay.b] if lay.b is not None else nans,
        loglike=state.value,
        converged=status == _CONVERGED,
        n_iter=state.n_iter,
        hit_pole=state.hit_pole,
        status=status,
        decrement=0.5 * state.decrement,
    )
    return _to_host(res) if eager else res


def _to_host(res: MLEResult) -> MLEResult:
    """NumPy arrays (own copies) and Python scalars."""
    def host(x):
        x = np.asarray(x)
        return x.item() if x.ndim == 0 else x.copy()

    return jax.tree_util.tree_map(host, res)


def fit_mle(
    delta: Array,
    templates: Array,
    model: str,
    likelihood: str,
    *,
    theta0: Array | None = None,
    max_iter: int = 200,
    tol: float = 1e-9,
    chunk: int = CHUNK,
) -> MLEResult:
    """Maximum-likelihood fit of one contamination model (Berlfein+24 Eqs. 11-13, 17-18).

    Vectorise over maps with ``jax.vmap`` (``model``, ``likelihood`` and the
    keyword settings bound with :func:`functools.partial`): the result is an
    :class:`MLEResult` with a leading batch axis on every array field; each
    map's fit equals the unbatched one to rounding.

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
        NumPy arrays and Python scalars when called eagerly on one map.

    Raises
    ------
    ValueError
        Unknown model or likelihood, inconsistent shapes, non-finite input,
        or a ``theta0`` of the wrong size or outside the domain (the value
        checks only on concrete input, not under ``vmap``/``jit``).
    """
    eager = _concrete(delta, templates, theta0)
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
    tol_ = jnp.asarray(tol, delta.dtype)
    if closed:
        # the start is the maximum: only the derivatives there are needed
        state = _at_point(theta0, delta, templates, tol_, model=model, likelihood=likelihood,
                          chunk=chunk)
    else:
        state = _newton(theta0, delta, templates, jnp.asarray(max_iter), tol_, model=model,
                        likelihood=likelihood, chunk=chunk)
    return _result(model, likelihood, K, closed, state, eager)
