"""Population view: shared contamination parameters fitted jointly over realisations.

If N independent realisations of the sky share the same systematics (the same
templates and the same true ``(a, b)``), their likelihoods multiply. The joint
log-likelihood is the sum of the per-realisation pixel likelihoods of
Berlfein+24 Eqs. 17-18,

.. math::

    \\ln L_N(a, b, s, g) = \\sum_{r=1}^{N} \\ln L(a, b, s, g \\mid \\hat\\delta_r),

and the posterior width on the shared ``(a, b)`` (Laplace approximation: the
inverse Hessian of ``-ln L_N`` at its maximum) must shrink as ``1/sqrt(N)``
(the population view of docs/science/tables.rst).

:func:`fit_population` maximises ``ln L_N`` (the per-realisation likelihoods
are :func:`hpcsys.core.likelihood.loglike`, vmapped over realisations) and
returns the Laplace covariance; :func:`population_convergence` repeats the fit
on disjoint groups of ``N`` realisations for several ``N`` and compares the
scatter of the group estimates with their widths: the Laplace width (which
treats pixels as independent, so on a spatially correlated sky the scatter
exceeds it, docs/correlated_pixels.rst) and the delete-one-realisation
jackknife width (honest, because the realisations are independent). The
slope of ``log(width)`` against ``log(N)`` is ``-1/2`` by construction for
independent realisations and is kept only as a side note.

Compile once per shape: the objective always sees the full ``(N_max, Npix)``
stack with 0/1 weights selecting the realisations of a group, so every group
size reuses the same compiled value, gradient and Hessian. Realisations are
summed one at a time (``lax.map``; memory of one map, not N) and those with
zero weight are skipped (``lax.cond``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from scipy import optimize, stats

from hpcsys.core.likelihood import loglike, param_layout
from hpcsys.core.models import MODELS

__all__ = [
    "PopulationConvergence",
    "PopulationError",
    "PopulationFit",
    "fit_population",
    "population_convergence",
    "population_loglike",
]


class PopulationError(ValueError):
    """Inputs of a population fit are inconsistent (shapes, model, group sizes)."""


@dataclass(frozen=True)
class PopulationFit:
    """Joint maximum-likelihood fit of shared parameters over N realisations.

    Attributes
    ----------
    model, likelihood : str
        Contamination model and pixel likelihood (Berlfein+24 Eqs. 11-13, 17-18).
    n_realisations : int
        Number of realisations N in the joint likelihood.
    theta : ndarray, shape (P,)
        Maximum of the joint likelihood, layout of
        :func:`hpcsys.core.likelihood.param_layout`.
    cov : ndarray, shape (P, P)
        Laplace covariance: inverse Hessian of ``-ln L_N`` at the maximum
        (``nan`` if the Hessian is not positive definite).
    a, b : ndarray, shape (K,)
        Shared coefficients (zeros where the model has no such term).
    a_err, b_err : ndarray, shape (K,)
        Laplace posterior widths (``nan`` where absent).
    s, g : float
        Pixel scale and skew-normal shape (``g = 0`` for the Gaussian likelihood).
    loglike : float
        ``ln L_N`` at the maximum.
    converged : bool
        The optimiser converged and the Hessian is positive definite.
    n_iterations : int
    message : str
        Optimiser message.
    """

    model: str
    likelihood: str
    n_realisations: int
    theta: np.ndarray
    cov: np.ndarray
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    s: float
    g: float
    loglike: float
    converged: bool
    n_iterations: int
    message: str

    @property
    def coef(self) -> np.ndarray:
        """Fitted ``(a, b)`` entries that the model contains, shape (P_ab,)."""
        return _ab_part(self.theta, self.model, self.likelihood, self.a.shape[0])

    @property
    def coef_err(self) -> np.ndarray:
        """Laplace widths of :attr:`coef`, shape (P_ab,)."""
        return np.sqrt(_ab_part(np.diag(self.cov), self.model, self.likelihood, self.a.shape[0]))


@dataclass(frozen=True)
class PopulationConvergence:
    """Posterior width of the shared ``(a, b)`` against the number of realisations.

    One joint fit per disjoint group of ``N`` consecutive realisations, for
    each ``N`` in ``n_values``.

    Attributes
    ----------
    n_values : ndarray of int, shape (J,)
        Group sizes N.
    n_groups : ndarray of int, shape (J,)
        Disjoint groups fitted at each N (``N_max // N``).
    group_n : ndarray of int, shape (G,)
        Group size of each of the G joint fits.
    estimates : ndarray, shape (G, P_ab)
        Fitted shared ``(a, b)`` entries of each group.
    widths : ndarray, shape (G, P_ab)
        Laplace posterior widths of each group.
    converged : ndarray of bool, shape (G,)
    jackknife_widths : ndarray, shape (G, P_ab)
        Delete-one-realisation jackknife widths of each group's estimate
        (``nan`` for N = 1 or when not computed): honest whatever the pixel
        correlations, because the realisations are independent.
    mean_width, mean_jackknife_width : ndarray, shape (J, P_ab)
        Mean Laplace / jackknife width over the groups of each N.
    scatter : ndarray, shape (J, P_ab)
        Standard deviation of the estimates over the groups of each N
        (``nan`` with fewer than two groups).
    scatter_rel_err : ndarray, shape (J,)
        Relative standard error of :attr:`scatter`, ``1/sqrt(2 (G_N - 1))``
        for Gaussian estimates (``nan`` with fewer than two groups).
    slope, slope_err : float
        Least-squares slope of ``log(width)`` on ``log(N)`` over all converged
        groups, ``width`` being the geometric mean of the P_ab Laplace widths,
        and its standard error from the residuals. ``-0.5`` is the
        ``1/sqrt(N)`` law, which holds by construction for independent
        realisations: a side note, not a test of the width.
    parameter_slopes : ndarray, shape (P_ab,)
        The same slope for each parameter separately.
    labels : tuple of str
        Names of the P_ab parameters (``a_0``, ..., ``b_{K-1}``), as in ``results.h5``.
    """

    n_values: np.ndarray
    n_groups: np.ndarray
    group_n: np.ndarray
    estimates: np.ndarray
    widths: np.ndarray
    converged: np.ndarray
    jackknife_widths: np.ndarray
    mean_width: np.ndarray
    mean_jackknife_width: np.ndarray
    scatter: np.ndarray
    scatter_rel_err: np.ndarray
    slope: float
    slope_err: float
    parameter_slopes: np.ndarray
    labels: tuple[str, ...]

    def honesty(self, kind: str = "laplace") -> np.ndarray:
        """Scatter of the group estimates over their mean width, shape (J, P_ab).

        The informative check of the population view: 1 for an honest width
        (within :attr:`scatter_rel_err`), above 1 for a width that is too
        small. ``kind`` is ``"laplace"`` or ``"jackknife"``.
        """
        if kind not in ("laplace", "jackknife"):
            raise PopulationError(f"kind: 'laplace' or 'jackknife', got {kind!r}")
        width = self.mean_width if kind == "laplace" else self.mean_jackknife_width
        return self.scatter / width


# --------------------------------------------------------------------------- helpers


def _ab_part(vec: np.ndarray, model: str, likelihood: str, K: int) -> np.ndarray:
    lay = param_layout(model, likelihood, K)
    parts = [vec[sl] for sl in (lay.a, lay.b) if sl is not None]
    return np.concatenate(parts) if parts else np.empty(0)


def _labels(model: str, K: int) -> tuple[str, ...]:
    has_a, has_b = MODELS[model]
    out: list[str] = []
    if has_a:
        out += [f"a_{i}" for i in range(K)]
    if has_b:
        out += [f"b_{i}" for i in range(K)]
    return tuple(out)


def _check_inputs(maps: np.ndarray, templates: np.ndarray, model: str) -> None:
    if model not in MODELS:
        raise PopulationError(f"model: unknown model {model!r}; choose from {', '.join(MODELS)}")
    if model == "null":
        raise PopulationError("model: the null model has no shared (a, b) to fit")
    if maps.ndim != 2:
        raise PopulationError(f"maps: expected shape (N, Npix), got {maps.shape}")
    if templates.ndim not in (2, 3):
        raise PopulationError(
            f"templates: expected shape (K, Npix) or (N, K, Npix), got {templates.shape}"
        )
    if templates.shape[-1] != maps.shape[1]:
        raise PopulationError(
            f"templates: {templates.shape[-1]} pixels but maps have {maps.shape[1]}"
        )
    if templates.ndim == 3 and templates.shape[0] != maps.shape[0]:
        raise PopulationError(
            f"templates: {templates.shape[0]} realisations but maps have {maps.shape[0]}"
        )
    if not (np.all(np.isfinite(maps)) and np.all(np.isfinite(templates))):
        raise PopulationError("maps/templates: contain non-finite values")


@partial(jax.jit, static_argnames=("model", "likelihood"))
def population_loglike(
    theta: Array, maps: Array, templates: Array, weights: Array, model: str, likelihood: str
) -> Array:
    """Weighted joint log-likelihood ``sum_r w_r ln L(theta | maps_r)`` (Berlfein+24 Eqs. 17-18).

    Parameters
    ----------
    theta : array, shape (P,)
        Shared parameters (layout: :func:`hpcsys.core.likelihood.param_layout`).
    maps : array, shape (N, Npix)
        Observed overdensities of N realisations on the same footprint.
    templates : array, shape (K, Npix) or (N, K, Npix)
        Shared templates, or one set per realisation.
    weights : array, shape (N,)
        Realisation weights; 0 excludes a realisation (used to fit groups
        without recompiling).
    model, likelihood : str
        As for :func:`hpcsys.core.likelihood.loglike`.

    Returns
    -------
    array, shape ()
        ``-inf`` outside the domain of any included realisation.
    """
    return _sum_over_realisations(
        lambda d, t: loglike(theta, d, t, model=model, likelihood=likelihood),
        maps, templates, weights, jnp.zeros((), dtype=theta.dtype))


def _sum_over_realisations(f, maps: Array, templates: Array, weights: Array, zero: Array) -> Array:
    """``sum_r w_r f(maps_r, templates_r)``, one realisation at a time.

    ``lax.map`` keeps the memory of one realisation (``Npix x P`` for a
    Hessian) instead of all of them, and ``lax.cond`` skips realisations with
    zero weight, so a group of N realisations costs N evaluations whatever
    the size of the stack.
    """
    shared = templates.ndim == 2

    def one(args):
        d, t, w = (args[0], templates, args[1]) if shared else args
        return lax.cond(w > 0, lambda: w * f(d, t), lambda: zero)

    xs = (maps, weights) if shared else (maps, templates, weights)
    return jnp.sum(lax.map(one, xs), axis=0)


def _to_theta(phi: Array, s_index: int) -> Array:
    """Optimisation variables (``log s`` in place of ``s``) to ``theta``."""
    return phi.at[s_index].set(jnp.exp(phi[s_index]))


@partial(jax.jit, static_argnames=("model", "likelihood", "s_index"))
def _objective(phi, maps, templates, weights, model, likelihood, s_index):
    return -population_loglike(_to_theta(phi, s_index), maps, templates, weights, model, likelihood)


@partial(jax.jit, static_argnames=("model", "likelihood", "s_index"))
def _objective_grad(phi, maps, templates, weights, model, likelihood, s_index):
    return jax.grad(_objective)(phi, maps, templates, weights, model, likelihood, s_index)


@partial(jax.jit, static_argnames=("model", "likelihood", "s_index"))
def _objective_hess(phi, maps, templates, weights, model, likelihood, s_index):
    def neg_hess(d, t):
        return jax.hessian(
            lambda p: -loglike(_to_theta(p, s_index), d, t, model=model, likelihood=likelihood)
        )(phi)

    return _sum_over_realisations(neg_hess, maps, templates, weights,
                                  jnp.zeros((phi.shape[0], phi.shape[0]), dtype=phi.dtype))


def _start(maps: np.ndarray, templates: np.ndarray, weights: np.ndarray, model: str,
           likelihood: str) -> np.ndarray:
    """Starting point: pooled least-squares ``a``, ``b = 0``, residual ``s``, ``g = 0``."""
    K = templates.shape[-2]
    lay = param_layout(model, likelihood, K)
    sel = weights > 0
    d = maps[sel]
    t = templates if templates.ndim == 2 else templates[sel]
    phi = np.zeros(lay.size)
    resid = d
    if lay.a is not None:
        if t.ndim == 2:
            a0 = np.linalg.lstsq(t.T, d.mean(axis=0), rcond=None)[0]
            resid = d - a0 @ t
        else:
            tt = np.einsum("nkp,nlp->kl", t, t)
            td = np.einsum("nkp,np->k", t, d)
            a0 = np.linalg.solve(tt, td)
            resid = d - np.einsum("k,nkp->np", a0, t)
        phi[lay.a] = a0
    phi[lay.s] = math.log(max(float(np.std(resid)), 1e-12))
    return phi


def fit_population(
    maps: np.ndarray,
    templates: np.ndarray,
    model: str = "combined",
    likelihood: str = "gaussian",
    *,
    weights: np.ndarray | None = None,
    theta0: np.ndarray | None = None,
    max_iter: int = 200,
    tol: float = 1e-9,
) -> PopulationFit:
    """Maximise the joint likelihood of shared ``(a, b)`` over realisations.

    The per-realisation log-likelihoods (Berlfein+24 Eqs. 17-18) are summed
    (:func:`population_loglike`) and maximised with SciPy's exact trust-region
    Newton method using JAX gradients and Hessians; ``s`` is optimised as
    ``log s``. Points outside the domain ``1 + b.t_p > 0`` have
    ``ln L = -inf`` and are rejected by the trust region, so the fit never
    crosses the pole of the Jacobian term. The posterior width is the Laplace
    approximation, ``cov = H^-1`` with ``H`` the Hessian of ``-ln L_N``.

    Parameters
    ----------
    maps : ndarray, shape (N, Npix)
        Observed overdensity maps of N realisations on the footprint.
    templates : ndarray, shape (K, Npix) or (N, K, Npix)
        Shared templates (fixed across realisations) or one set per realisation.
    model : {"additive", "multiplicative", "combined"}
    likelihood : {"gaussian", "skewnormal"}
    weights : ndarray, shape (N,), optional
        0/1 (or positive) realisation weights; default all ones.
    theta0 : ndarray, shape (P,), optional
        Starting point (e.g. the fit of a larger group, for a jackknife
        deletion); default a least-squares start.
    max_iter : int
        Maximum trust-region iterations.
    tol : float
        Gradient tolerance of the optimiser.

    Returns
    -------
    PopulationFit

    Raises
    ------
    PopulationError
        On inconsistent shapes, the null model or no included realisation.
    """
    maps = np.asarray(maps, dtype=np.float64)
    templates = np.asarray(templates, dtype=np.float64)
    _check_inputs(maps, templates, model)
    if likelihood not in ("gaussian", "skewnormal"):
        raise PopulationError(f"likelihood: unknown likelihood {likelihood!r}")
    N = maps.shape[0]
    w = np.ones(N) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (N,) or np.any(w < 0) or not np.any(w > 0):
        raise PopulationError(f"weights: need {N} non-negative weights, not all zero")
    K = templates.shape[-2]
    lay = param_layout(model, likelihood, K)
    args = (jnp.asarray(maps), jnp.asarray(templates), jnp.asarray(w), model, likelihood, lay.s)

    def fun(phi: np.ndarray) -> float:
        v = float(_objective(jnp.asarray(phi), *args))
        return v if math.isfinite(v) else math.inf

    def jac(phi: np.ndarray) -> np.ndarray:
        return np.asarray(_objective_grad(jnp.asarray(phi), *args))

    def hess(phi: np.ndarray) -> np.ndarray:
        return np.asarray(_objective_hess(jnp.asarray(phi), *args))

    if theta0 is None:
        phi0 = _start(maps, templates, w, model, likelihood)
    else:
        phi0 = np.array(theta0, dtype=np.float64)
        if phi0.shape != (lay.size,) or not phi0[lay.s] > 0:
            raise PopulationError(f"theta0: need {lay.size} parameters with s > 0")
        phi0[lay.s] = math.log(phi0[lay.s])
    res = optimize.minimize(
        fun, phi0, jac=jac, hess=hess, method="trust-exact",
        options={"maxiter": max_iter, "gtol": tol},
    )
    phi = np.asarray(res.x)
    theta = phi.copy()
    theta[lay.s] = math.exp(phi[lay.s])
    H = hess(phi)
    P = lay.size
    evals = np.linalg.eigvalsh(0.5 * (H + H.T))
    pos_def = bool(np.all(np.isfinite(evals)) and evals.min() > 0)
    if pos_def:
        cov_phi = np.linalg.inv(H)
        J = np.eye(P)
        J[lay.s, lay.s] = theta[lay.s]  # d s / d log s
        cov = J @ cov_phi @ J.T
    else:
        cov = np.full((P, P), np.nan)
    err = np.sqrt(np.diag(cov))
    zeros, nans = np.zeros(K), np.full(K, np.nan)
    grad_ok = bool(np.all(np.isfinite(res.jac))) and float(np.max(np.abs(res.jac))) < max(
        1e3 * tol, 1e-5 * (1.0 + abs(float(res.fun)))
    )
    return PopulationFit(
        model=model,
        likelihood=likelihood,
        n_realisations=int(np.count_nonzero(w)),
        theta=theta,
        cov=cov,
        a=theta[lay.a] if lay.a is not None else zeros,
        b=theta[lay.b] if lay.b is not None else zeros.copy(),
        a_err=err[lay.a] if lay.a is not None else nans,
        b_err=err[lay.b] if lay.b is not None else nans.copy(),
        s=float(theta[lay.s]),
        g=float(theta[lay.g]) if lay.g is not None else 0.0,
        loglike=-float(res.fun),
        converged=bool((res.success or grad_ok) and pos_def),
        n_iterations=int(res.nit),
        message=str(res.message),
    )


def _jackknife_width(maps: np.ndarray, templates: np.ndarray, model: str, likelihood: str,
                     weights: np.ndarray, members: np.ndarray, fit: PopulationFit,
                     max_iter: int, tol: float) -> np.ndarray:
    """Delete-one-realisation jackknife width of a group's shared ``(a, b)``."""
    n = members.size
    deleted = []
    for i in members:
        w = weights.copy()
        w[i] = 0.0
        deleted.append(fit_population(maps, templates, model, likelihood, weights=w,
                                      theta0=fit.theta, max_iter=max_iter, tol=tol).coef)
    x = np.asarray(deleted)
    return np.sqrt((n - 1) / n * np.sum((x - x.mean(axis=0)) ** 2, axis=0))


def population_convergence(
    maps: np.ndarray,
    templates: np.ndarray,
    n_values: tuple[int, ...] | list[int] | np.ndarray,
    model: str = "combined",
    likelihood: str = "gaussian",
    *,
    max_iter: int = 200,
    tol: float = 1e-9,
    jackknife: bool = True,
) -> PopulationConvergence:
    """Joint fits on disjoint groups of N realisations: scatter against width.

    For every N in ``n_values`` the first ``(N_max // N) * N`` realisations are
    split into consecutive disjoint groups of N, and each group is fitted with
    :func:`fit_population`. What the view tests is the scatter of the group
    estimates against their width (:meth:`PopulationConvergence.honesty`):
    the Laplace width assumes independent pixels; the delete-one-realisation
    jackknife width (each group refitted N times without one of its
    realisations, warm-started at the group's fit, factor ``(N - 1)/N``)
    does not. The slope of ``log(width)`` on ``log(N)`` (ordinary least
    squares, standard error from the residuals) is kept as a side note: it is
    ``-1/2`` by construction for independent realisations (docs/science/tables.rst).

    Parameters
    ----------
    maps : ndarray, shape (N_max, Npix)
    templates : ndarray, shape (K, Npix) or (N_max, K, Npix)
    n_values : sequence of int
        Group sizes, each between 1 and N_max; at least two distinct values.
    model, likelihood, max_iter, tol
        As for :func:`fit_population`.
    jackknife : bool
        Compute the jackknife widths (N extra fits per group of N >= 2).

    Returns
    -------
    PopulationConvergence
    """
    maps = np.asarray(maps, dtype=np.float64)
    templates = np.asarray(templates, dtype=np.float64)
    _check_inputs(maps, templates, model)
    n_max = maps.shape[0]
    ns = np.unique(np.asarray(n_values, dtype=int))
    if ns.size < 2 or ns.min() < 1 or ns.max() > n_max:
        raise PopulationError(
            f"n_values: need at least two distinct group sizes in [1, {n_max}], got {list(ns)}"
        )
    K = templates.shape[-2]
    labels = _labels(model, K)
    group_n, est, wid, jk, conv = [], [], [], [], []
    for n in ns:
        for g in range(n_max // n):
            members = np.arange(g * n, (g + 1) * n)
            w = np.zeros(n_max)
            w[members] = 1.0
            fit = fit_population(maps, templates, model, likelihood, weights=w,
                                 max_iter=max_iter, tol=tol)
            group_n.append(n)
            est.append(fit.coef)
            wid.append(fit.coef_err)
            conv.append(fit.converged)
            jk.append(_jackknife_width(maps, templates, model, likelihood, w, members, fit,
                                       max_iter, tol) if jackknife and n >= 2 and fit.converged
                      else np.full(len(labels), np.nan))
    group_n_arr = np.asarray(group_n)
    est_arr, wid_arr, conv_arr = np.asarray(est), np.asarray(wid), np.asarray(conv)
    jk_arr = np.asarray(jk)
    mean_w = np.full((ns.size, len(labels)), np.nan)
    mean_jk = np.full((ns.size, len(labels)), np.nan)
    scatter = np.full((ns.size, len(labels)), np.nan)
    scatter_err = np.full(ns.size, np.nan)
    for j, n in enumerate(ns):
        sel = (group_n_arr == n) & conv_arr
        if sel.any():
            mean_w[j] = wid_arr[sel].mean(axis=0)
            if np.all(np.isfinite(jk_arr[sel])):
                mean_jk[j] = jk_arr[sel].mean(axis=0)
        if sel.sum() >= 2:
            scatter[j] = est_arr[sel].std(axis=0, ddof=1)
            scatter_err[j] = 1.0 / math.sqrt(2.0 * (sel.sum() - 1))
    ok = conv_arr & np.all(np.isfinite(wid_arr), axis=1)
    if len(np.unique(group_n_arr[ok])) < 2:
        raise PopulationError("fits: fewer than two group sizes converged; cannot fit a slope")
    x = np.log(group_n_arr[ok])
    summary = np.mean(np.log(wid_arr[ok]), axis=1)
    reg = stats.linregress(x, summary)
    par_slopes = np.array([stats.linregress(x, np.log(wid_arr[ok, i])).slope
                           for i in range(len(labels))])
    return PopulationConvergence(
        n_values=ns,
        n_groups=np.array([n_max // n for n in ns]),
        group_n=group_n_arr,
        estimates=est_arr,
        widths=wid_arr,
        converged=conv_arr,
        jackknife_widths=jk_arr,
        mean_width=mean_w,
        mean_jackknife_width=mean_jk,
        scatter=scatter,
        scatter_rel_err=scatter_err,
        slope=float(reg.slope),
        slope_err=float(reg.stderr),
        parameter_slopes=par_slopes,
        labels=labels,
    )
