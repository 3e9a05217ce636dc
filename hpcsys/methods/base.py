"""One interface for the six decontamination methods (Berlfein+24 Section 3).

Every method takes a :class:`MapData` (observed overdensity and templates on
the footprint) and returns a :class:`MethodResult` with the same fields
whatever the method: coefficients that a method does not estimate are zero and
their errors ``nan``; diagnostics that do not apply are ``nan``/``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hpcsys.core.comparison import ModelComparison
    from hpcsys.measure.honest import SandwichSetup

__all__ = ["MapData", "MethodDiagnostics", "MethodResult"]


@dataclass(frozen=True)
class MapData:
    """An observed overdensity map and its templates, restricted to the footprint.

    Attributes
    ----------
    delta : ndarray, shape (Npix,)
        Observed overdensity ``delta_obs`` on the footprint pixels.
    templates : ndarray, shape (K, Npix)
        Template maps on the same pixels (standardised: mean 0, std 1).
    pixels : ndarray of int, shape (Npix,)
        HEALPix RING indices of the footprint pixels.
    nside : int
        HEALPix NSIDE.
    names : tuple of str
        Template names (length K).
    sandwich : SandwichSetup, optional
        Harmonic geometry of the footprint and the transform of ``templates``
        for the honest (sandwich) covariances, precomputed once per run
        (:func:`hpcsys.measure.honest.sandwich_setup`); built on the fly when
        ``None``.
    comparison : ModelComparison, optional
        The map's model comparison (:func:`hpcsys.core.comparison.compare_models`
        on the same ``delta`` and ``templates`` with the same sandwich setup),
        when it ran before the methods: MCMC-add/-comb take the sandwich
        covariance of the Gaussian maximum from it instead of computing it
        again, where their posterior maximum is that maximum.
    """

    delta: np.ndarray
    templates: np.ndarray
    pixels: np.ndarray
    nside: int
    names: tuple[str, ...] = ()
    sandwich: SandwichSetup | None = None
    comparison: ModelComparison | None = None

    @property
    def n_templates(self) -> int:
        """Number of templates K."""
        return int(self.templates.shape[0])

    @property
    def n_pixels(self) -> int:
        """Number of footprint pixels."""
        return int(self.delta.shape[0])


@dataclass(frozen=True)
class MethodDiagnostics:
    """Convergence and cost of one method run (``nan``/``-1`` where not applicable)."""

    converged: bool
    n_iterations: int = -1
    acceptance_fraction: float = float("nan")
    autocorr_time: float = float("nan")  # max over parameters, in steps
    effective_samples: float = float("nan")  # min over parameters
    rhat_max: float = float("nan")  # split-R-hat over walker halves, max over parameters
    stop_reason: str = ""  # why a chain stopped: fixed length, ESS target met, step cap
    hit_pole: bool = False  # a fit or sampler ran into 1 + b.t_p = 0
    wall_time: float = float("nan")  # seconds
    message: str = ""
    penalty: float = float("nan")  # ElasticNet: the cross-validated penalty alpha
    l1_ratio: float = float("nan")  # ElasticNet: the cross-validated l1_ratio


@dataclass(frozen=True)
class MethodResult:
    """What every method returns.

    Attributes
    ----------
    name : str
        Method name (``OLS``, ``ElasticNet``, ``ISD-1``, ``ISD-3``, ``MCMC-add``, ``MCMC-comb``).
    model : str
        Contamination model the method assumes (``additive``, ``multiplicative``, ``combined``).
    a, b : ndarray, shape (K,)
        Point estimates in the original (unrotated) template basis; for MCMC the
        posterior mean. Zero where the model has no such term.
    a_err, b_err : ndarray, shape (K,)
        1-sigma errors (``nan`` where not estimated), the honest ones: for OLS
        the harmonic sandwich errors, for MCMC the sandwich (correlated-sky)
        errors of the posterior maximum (not the posterior std), for
        ElasticNet in the mock pipeline its spatial jackknife.
    cov : ndarray, shape (2K, 2K)
        Covariance of ``(a, b)``; ``nan`` blocks where not estimated (OLS:
        the sandwich covariance).
    a_mean, b_mean, a_std, b_std : ndarray, shape (K,)
        Posterior mean and standard deviation (MCMC only; ``nan`` otherwise).
    a_median, b_median : ndarray, shape (K,)
        Posterior medians (MCMC only).
    a_ci68, b_ci68, a_ci95, b_ci95 : ndarray, shape (K, 2)
        Central posterior intervals ``(lower, upper)``: the 15.87/84.13 and
        2.5/97.5 percentiles of the samples (MCMC only).
    a_ess, b_ess : ndarray, shape (K,)
        Effective sample size per parameter, ``W S / tau`` (MCMC only).
    sigma : float
        Fitted pixel scale ``s`` (``nan`` where not estimated).
    weights : ndarray, shape (Npix,)
        Per-pixel weights ``1/(1 + b.t_p)`` for weighting methods, ones otherwise.
    corrected : ndarray, shape (Npix,)
        The method's estimate of the true overdensity map.
    diagnostics : MethodDiagnostics
    a_err_indep, b_err_indep : ndarray, shape (K,)
        Errors that assume independent pixels (OLS: ``s^2 (T T^T)^-1``);
        ``nan`` where the method has none.
    cov_indep : ndarray, shape (2K, 2K)
        The independent-pixel covariance of ``(a, b)``; ``nan`` where none.
    """

    name: str
    model: str
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    cov: np.ndarray
    sigma: float
    weights: np.ndarray
    corrected: np.ndarray
    diagnostics: MethodDiagnostics
    a_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_std: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_std: np.ndarray = field(default_factory=lambda: np.empty(0))
    # independent-pixel errors beside the honest ones (issue 13)
    a_err_indep: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_err_indep: np.ndarray = field(default_factory=lambda: np.empty(0))
    cov_indep: np.ndarray = field(default_factory=lambda: np.empty(0))
    # posterior summaries of the MCMC methods (issue 13, item 6); nan for the others
    a_median: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_median: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_ci68: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_ci68: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_ci95: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_ci95: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_ess: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_ess: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        K = self.a.shape[0]
        for name in (*_POSTERIOR_K, "a_err_indep", "b_err_indep"):
            if getattr(self, name).shape != (K,):
                object.__setattr__(self, name, np.full(K, np.nan))
        for name in _POSTERIOR_K2:
            if getattr(self, name).shape != (K, 2):
                object.__setattr__(self, name, np.full((K, 2), np.nan))
        if self.cov_indep.shape != (2 * K, 2 * K):
            object.__setattr__(self, "cov_indep", np.full((2 * K, 2 * K), np.nan))


#: Posterior summaries of shape (K,) and (K, 2): ``nan`` for methods that do not sample.
_POSTERIOR_K = ("a_mean", "b_mean", "a_std", "b_std", "a_median", "b_median", "a_ess", "b_ess")
_POSTERIOR_K2 = ("a_ci68", "b_ci68", "a_ci95", "b_ci95")
