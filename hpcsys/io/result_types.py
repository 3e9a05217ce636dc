"""Typed contents of the aggregated results file, as the reader returns them.

:class:`ScenarioData` and its nested :class:`MethodArrays`,
:class:`DiagnosticsArrays`, :class:`MLEArrays`, :class:`LRTArrays` and
:class:`TimingArrays` mirror the nesting of the per-realisation results
(:class:`hpcsys.pipeline.RealisationResult`) with a leading realisation axis;
:func:`hpcsys.io.results.ResultsFile.scenario` rebuilds them generically from
their field names, so a field here is a dataset (or sub-group) of the same
name in ``results.h5`` (:mod:`hpcsys.io.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CalibrationData",
    "Coordinates",
    "DiagnosticsArrays",
    "JackknifeArrays",
    "LRTArrays",
    "MLEArrays",
    "MethodArrays",
    "Provenance",
    "ResultsFormatError",
    "ScenarioData",
    "TemplateInfo",
    "TimingArrays",
]


class ResultsFormatError(ValueError):
    """A results file is missing, unreadable, of another schema version or lacks a group."""


@dataclass(frozen=True)
class Provenance:
    """Where, when and from what a run was made (root attributes of ``results.h5``)."""

    schema_version: int
    hpcsys_version: str
    git_hash: str
    config_text: str
    config_source: str
    master_seed: int
    created: str
    n_ranks: int
    hosts: tuple[str, ...]
    devices: tuple[str, ...]
    n_tasks: int


@dataclass(frozen=True)
class Coordinates:
    """Labels of the named axes (stored under ``/coords``)."""

    scenario: tuple[str, ...]
    method: tuple[str, ...]
    likelihood: tuple[str, ...]
    fit_model: tuple[str, ...]
    lrt_pair: tuple[str, ...]
    stage: tuple[str, ...]
    template: tuple[str, ...]

    @property
    def estimator(self) -> tuple[str, ...]:
        """``uncorrected`` followed by the method names (Table 3 rows)."""
        return ("uncorrected", *self.method)

    @property
    def parameter(self) -> tuple[str, ...]:
        """``a_0 .. a_{K-1}, b_0 .. b_{K-1}``."""
        K = len(self.template)
        return tuple(f"a_{i}" for i in range(K)) + tuple(f"b_{i}" for i in range(K))


@dataclass(frozen=True)
class TemplateInfo:
    """Templates of the run (``/templates``).

    Attributes
    ----------
    names : tuple of str, length K
    correlation : ndarray, shape (K, K)
        Correlation matrix of the templates on the footprint (the requested
        matrix when templates are redrawn per realisation).
    xi : ndarray, shape (B, K, K), or None
        Template auto/cross-correlation functions xi_ij(theta) (Berlfein+24 Eq. 16);
        None when templates are redrawn per realisation.
    """

    names: tuple[str, ...]
    correlation: np.ndarray
    xi: np.ndarray | None = None


@dataclass(frozen=True)
class DiagnosticsArrays:
    """A method's diagnostics over N realisations, each (N,).

    See :class:`hpcsys.methods.base.MethodDiagnostics` for meanings.
    """

    converged: np.ndarray
    n_iterations: np.ndarray
    acceptance_fraction: np.ndarray
    autocorr_time: np.ndarray
    effective_samples: np.ndarray
    hit_pole: np.ndarray
    wall_time: np.ndarray
    message: np.ndarray
    # ElasticNet's cross-validated choice; empty when built by hand without them
    penalty: np.ndarray = field(default_factory=lambda: np.empty(0))
    l1_ratio: np.ndarray = field(default_factory=lambda: np.empty(0))
    # MCMC convergence (issue 13, item 6); empty when built by hand without them
    rhat_max: np.ndarray = field(default_factory=lambda: np.empty(0))
    stop_reason: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))


@dataclass(frozen=True)
class MethodArrays:
    """One method's results over a scenario's N realisations (K templates).

    ``a, b, a_err, b_err, a_mean, b_mean, a_std, b_std, a_err_indep, b_err_indep``:
    (N, K); ``cov``, ``cov_indep``: (N, 2K, 2K); ``sigma`` (N,); MCMC posterior
    summaries ``a_median, b_median, a_ess, b_ess`` (N, K) and ``a_ci68, b_ci68,
    a_ci95, b_ci95`` (N, K, 2). See :class:`hpcsys.methods.base.MethodResult`
    for meanings (``a_err``/``cov`` honest where the method has them,
    ``*_indep`` assume independent pixels).
    """

    name: str
    model: str
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    cov: np.ndarray
    sigma: np.ndarray
    diagnostics: DiagnosticsArrays
    a_mean: np.ndarray
    b_mean: np.ndarray
    a_std: np.ndarray
    b_std: np.ndarray
    # independent-pixel errors beside the honest ones (issue 13)
    a_err_indep: np.ndarray
    b_err_indep: np.ndarray
    cov_indep: np.ndarray
    # MCMC posterior summaries (issue 13, item 6); empty when built by hand without them
    a_median: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_median: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_ci68: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_ci68: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_ci95: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_ci95: np.ndarray = field(default_factory=lambda: np.empty(0))
    a_ess: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_ess: np.ndarray = field(default_factory=lambda: np.empty(0))


@dataclass(frozen=True)
class MLEArrays:
    """Maximum-likelihood fits: (N, F, L) and (N, F, L, K) arrays (F fit models, L likelihoods).

    ``a_err``, ``b_err`` and ``cov`` (N, F, L, 2K, 2K) are the honest (sandwich)
    errors; ``a_err_indep``, ``b_err_indep`` the inverse-Hessian ones
    (:class:`hpcsys.core.comparison.MLEGrid`).
    """

    loglike: np.ndarray
    converged: np.ndarray
    hit_pole: np.ndarray
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    s: np.ndarray
    g: np.ndarray
    cov: np.ndarray
    a_err_indep: np.ndarray
    b_err_indep: np.ndarray


@dataclass(frozen=True)
class LRTArrays:
    """Tests of the nested pairs: Wilks LRT and Wald (:class:`hpcsys.core.comparison.LRTMatrix`).

    ``statistic``, ``pvalue`` (N, Q, L), ``dof`` (N, Q): Berlfein+24 Eq. 19 and its
    Wilks p-value (assumes independent pixels); ``wald_statistic``,
    ``wald_pvalue`` (N, Q, L), ``wald_dof`` (N, Q): the Wald test with the
    honest covariance.
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    dof: np.ndarray
    wald_statistic: np.ndarray
    wald_pvalue: np.ndarray
    wald_dof: np.ndarray


@dataclass(frozen=True)
class JackknifeArrays:
    """Delete-one-region jackknife (:class:`hpcsys.methods.deletions.JackknifeErrors`).

    ``n_regions`` (N,) (0: not computed); ``method_cov`` (N, M, 2K, 2K);
    ``mle_a_err``, ``mle_b_err`` (N, F, L, K).
    """

    n_regions: np.ndarray
    method_cov: np.ndarray
    mle_a_err: np.ndarray
    mle_b_err: np.ndarray


@dataclass(frozen=True)
class TimingArrays:
    """Per-task cost: ``stage_seconds`` (N, stages) and ``peak_memory_mb`` (N,)."""

    stage_seconds: np.ndarray
    peak_memory_mb: np.ndarray


@dataclass(frozen=True)
class ScenarioData:
    """All per-realisation arrays of one scenario (axis 0: realisation, sorted by index).

    Attributes
    ----------
    scenario : str
    index : ndarray of int, shape (N,)
    seed_words : ndarray of uint32, shape (N, 4)
    a_true, b_true : ndarray, shape (N, K)
    w_true, w_obs : ndarray, shape (N, B)
    w_corrected, w_corrected_diag, w_remeasured : ndarray, shape (N, M, B)
    methods : dict of str to MethodArrays
        In the order of ``ResultsFile.method_names``.
    mle : MLEArrays
    lrt : LRTArrays
    jackknife : JackknifeArrays
    timings : TimingArrays
    """

    scenario: str
    index: np.ndarray
    seed_words: np.ndarray
    a_true: np.ndarray
    b_true: np.ndarray
    w_true: np.ndarray
    w_obs: np.ndarray
    methods: dict[str, MethodArrays]
    w_corrected: np.ndarray
    w_corrected_diag: np.ndarray
    w_remeasured: np.ndarray
    mle: MLEArrays
    lrt: LRTArrays
    jackknife: JackknifeArrays
    timings: TimingArrays

    @property
    def name(self) -> str:
        """The scenario name."""
        return self.scenario

    @property
    def n_realisations(self) -> int:
        """Number of realisations N."""
        return int(self.index.shape[0])


@dataclass(frozen=True)
class CalibrationData:
    """The calibration set of Table 2 (:mod:`hpcsys.calibration`): M null mocks.

    Shapes: M calibration tasks, S scenarios (``scenarios``), Q LRT pairs, L
    likelihoods, P = len(``bootstrap_models``) free null models, K templates.

    Attributes
    ----------
    scenarios : tuple of str, length S
    bootstrap_models : tuple of str, length P
    index : ndarray of int, shape (M,)
        Calibration indices ``j`` (streams ``calibration_field``/``calibration_counts``).
    seed_words : ndarray of uint32, shape (M, 4)
        State words of each task's calibration field and counts streams.
    statistic : ndarray, shape (M, S, Q, L)
        Calibration lambda of each (scenario, test, likelihood): exact null mocks
        (a = b = 0) for the tests whose null model is ``null``, the parametric
        bootstrap at the scenario's fitted null for the others.
    null_pvalue : ndarray, shape (M, Q, L)
        Wilks p-value of every test on the exact null mocks.
    bootstrap_a, bootstrap_b : ndarray, shape (S, P, K)
        The bootstrap points (scenario-mean MLE of each free null model).
    """

    scenarios: tuple[str, ...]
    bootstrap_models: tuple[str, ...]
    index: np.ndarray
    seed_words: np.ndarray
    statistic: np.ndarray
    null_pvalue: np.ndarray
    bootstrap_a: np.ndarray
    bootstrap_b: np.ndarray

    @property
    def n_calibration(self) -> int:
        """Number of calibration mocks M."""
        return int(self.index.shape[0])
