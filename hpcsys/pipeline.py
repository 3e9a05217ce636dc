"""One realisation end to end: mock sky, all methods, MLE fits, LRTs and w(theta).

:func:`prepare_run` builds the :class:`RunContext`: everything shared by all
tasks of a run (footprint, target and Gaussian spectra, the fixed templates,
their PCA rotation and auto-/cross-correlation functions ``xi_ij(theta)``, the
true (a, b), the angular bins). It is deterministic in the configuration, so
every MPI rank can build it identically (or rank 0 builds it and broadcasts
it: it is a picklable bundle of arrays).

:func:`run_realisation` is the unit of work that :mod:`hpcsys.parallel`
scatters over ranks. It is deterministic in ``(config, scenario, index)``:
every random number comes from :mod:`hpcsys.seeds` streams keyed by the
realisation (and scenario / method) index, never by the rank:

=============  =====================================  ===========================
stream         key                                    draws
=============  =====================================  ===========================
``truth``      ()                                     true (a, b), once per run
``templates``  () or (index,) with templates.redraw   template maps
``field``      (index,)                               lognormal true field
``counts``     (index,)                               Poisson galaxy counts
``method``     (scenario, index, method)              CV folds, samplers
=============  =====================================  ===========================

The calibration mocks of Table 2 use their own streams (``calibration_field``,
``calibration_counts``, ``calibration_templates``; :mod:`hpcsys.calibration`),
never these. The field and counts streams ignore the scenario, so all scenarios of one
realisation share the same true field and the same Poisson variates (common
random numbers: scenario differences are not blurred by sample variance).
Scenario and method indices are positions in :data:`hpcsys.config.SCENARIOS`
and :data:`hpcsys.config.METHOD_NAMES`, independent of the configured subsets.

Per realisation (docs/science/tables.rst):

* w(theta) of the true field, the observed field and of every method's
  corrected map (TreeCorr, :mod:`hpcsys.measure.twopoint`);
* for coefficient methods, the Eq. 16 correction of ``w_obs`` with the full
  template correlation matrix (cross terms), and with autocorrelations only,
  each quadratic form minus its expected noise ``tr(Xi Sigma)`` (Eq. 21 for
  the whole form, with the method's full honest covariance ``Sigma``;
  :func:`hpcsys.core.correction.correct_w_unbiased`). Both are done in the
  fitting basis: PCA-rotated (``V^T a``, ``V^T Sigma V``, ``V^T Xi V``) when
  ``methods.pca``, as in Berlfein+24 App. A. ElasticNet's covariance is its
  jackknife. For weighting methods (ISD) the corrected w is the re-measured
  w of the weighted map;
* maximum-likelihood fits of every model in
  :data:`hpcsys.core.models.FIT_MODELS` under each configured likelihood (in
  the original template basis; the maxima, and so the LRTs, do not depend on
  the basis) and the likelihood-ratio tests of
  :data:`hpcsys.core.models.LRT_PAIRS` (Berlfein+24 Eq. 19), both by
  :func:`hpcsys.core.comparison.compare_models`;
* the honest errors: the harmonic sandwich covariance
  (:mod:`hpcsys.measure.sandwich`) of OLS and of every MLE fit, and for every
  LRT pair the Wald test of the alternative's extra coefficients with that
  covariance. The footprint's harmonic geometry and the transform of the
  fixed templates (:class:`hpcsys.measure.honest.SandwichSetup`) are built
  once per run in :func:`prepare_run`; a task transforms only its residual
  fields and, for models with ``b``, the modulated designs ``t_k/(1 + b.t)``.
  The exact band is ``methods.sandwich_lmax`` (white above it).
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hpcsys import seeds
from hpcsys.config import METHOD_NAMES, REMEASURED_METHODS, SCENARIOS, Config, ConfigError
from hpcsys.core.comparison import LRTMatrix, MLEGrid, ModelComparison, compare_models
from hpcsys.core.correction import correct_w_unbiased
from hpcsys.core.pca import pca_rotation
from hpcsys.measure.honest import SandwichSetup, designs_for, mle_covariances, sandwich_setup
from hpcsys.measure.jackknife import (
    JackknifeRegions,
    jackknife_regions,
)
from hpcsys.measure.twopoint import PixelCorrelator, angular_bins, rotate_xi
from hpcsys.methods import MapData, run_method
from hpcsys.methods.base import MethodResult
from hpcsys.methods.deletions import JackknifeErrors, task_jackknife, with_jackknife_cov
from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
from hpcsys.sims.footprint import Footprint, make_footprint
from hpcsys.sims.mock import Mock, mean_count_per_pixel, observe, true_overdensity
from hpcsys.sims.spectra import target_cl
from hpcsys.sims.templates import correlation_matrix, draw_templates, template_names
from hpcsys.sims.truth import TrueCoefficients, draw_truth

__all__ = [
    "STAGES",
    "RealisationResult",
    "RunContext",
    "TaskTimings",
    "TemplateSet",
    "attach_fixed_templates",
    "make_mock",
    "prepare_run",
    "run_realisation",
]

#: Timed stages of one realisation, in order.
STAGES: tuple[str, ...] = ("mock", "methods", "mle", "jackknife", "twopoint", "total")


@dataclass(frozen=True)
class TaskTimings:
    """Cost of one task.

    Attributes
    ----------
    stage_seconds : ndarray, shape (len(STAGES),)
        Wall time of each stage of :data:`STAGES`.
    peak_memory_mb : float
        Peak resident memory of the process after this task.
    """

    stage_seconds: np.ndarray
    peak_memory_mb: float


@dataclass(frozen=True)
class RealisationResult:
    """Everything measured on one mock realisation of one scenario.

    Shapes: K templates, M methods (``config.methods.names`` order), L
    likelihoods (``config.methods.likelihoods`` order), F = len(FIT_MODELS),
    Q = len(LRT_PAIRS) (:mod:`hpcsys.core.models`), B angular bins. The HDF5
    layout of ``results.h5`` follows this nesting (:mod:`hpcsys.io.schema`).

    Attributes
    ----------
    scenario, index : str, int
        Task identity.
    seed_words : ndarray of uint32, shape (4,)
        State words of the realisation's ``field`` and ``counts`` streams (provenance).
    a_true, b_true : ndarray, shape (K,)
        Injected coefficients (zeros for absent terms of the scenario).
    theta_arcmin : ndarray, shape (B,)
        Bin centres of w(theta) in arcmin.
    w_true, w_obs : ndarray, shape (B,)
        w(theta) of the true field and of the contaminated observed field.
    methods : tuple of MethodResult, length M
    w_corrected : ndarray, shape (M, B)
        Each method's corrected w: Berlfein+24 Eq. 16 with the full template
        cross-correlation matrix for coefficient methods; the re-measured
        weighted map for weighting methods (ISD).
    w_corrected_diag : ndarray, shape (M, B)
        Eq. 16 with template autocorrelations only (no cross terms), ``nan`` for ISD.
    w_remeasured : ndarray, shape (M, B)
        w(theta) of each method's corrected map.
    mle : MLEGrid
        Maximum-likelihood fits, (F, L) and (F, L, K) arrays; honest
        (sandwich) errors and covariances, and the independent-pixel errors.
    lrt : LRTMatrix
        Eq. 19 statistic, its Wilks chi-square p-value (Q, L) and dof (Q,);
        the Wald test with the honest covariance (Q, L) and its dof (Q,).
    jackknife : hpcsys.methods.deletions.JackknifeErrors
    timings : TaskTimings
    """

    scenario: str
    index: int
    seed_words: np.ndarray
    a_true: np.ndarray
    b_true: np.ndarray
    theta_arcmin: np.ndarray
    w_true: np.ndarray
    w_obs: np.ndarray
    methods: tuple[MethodResult, ...]
    w_corrected: np.ndarray
    w_corrected_diag: np.ndarray
    w_remeasured: np.ndarray
    mle: MLEGrid
    lrt: LRTMatrix
    jackknife: JackknifeErrors
    timings: TaskTimings


# --------------------------------------------------------------------------- run context


@dataclass(frozen=True)
class TemplateSet:
    """Templates and everything derived from them.

    Attributes
    ----------
    templates : ndarray, shape (K, Npix)
        Standardised templates on the footprint.
    V : ndarray, shape (K, K)
        PCA rotation (Berlfein+24 App. A), identity when ``methods.pca`` is off.
    xi : ndarray, shape (B, K, K)
        Template auto- and cross-correlation functions (original basis).
    xi_fit : ndarray, shape (B, K, K)
        The same in the fitting basis, ``V^T Xi V``.
    """

    templates: np.ndarray
    V: np.ndarray
    xi: np.ndarray
    xi_fit: np.ndarray


@dataclass(frozen=True)
class RunContext:
    """Everything shared by all tasks of a run (built by :func:`prepare_run`).

    Attributes
    ----------
    config : Config
    footprint : Footprint
    target_cl : ndarray, shape (3 nside,)
        Target galaxy C_l (bias included).
    gaussian_cl : ndarray, shape (3 nside,)
        Spectrum of the Gaussian field behind the lognormal field.
    nbar_pixel : float
        Mean galaxy count per pixel.
    template_names : tuple of str
    correlation : ndarray, shape (K, K)
        Requested template correlation matrix.
    truth : TrueCoefficients
        True (a, b) of the run; :meth:`TrueCoefficients.for_scenario` per scenario.
    correlator : PixelCorrelator
        TreeCorr w(theta) on the footprint pixels.
    fixed : TemplateSet or None
        The run's templates (``None`` when ``templates.redraw``).
    prepare_seconds : float
        Wall time of :func:`prepare_run`.
    regions : JackknifeRegions or None
        Jackknife regions of the footprint (``None`` when ``methods.jackknife_regions = 0``).
    sandwich : SandwichSetup or None
        Harmonic geometry (band ``methods.sandwich_lmax``) and the transform of
        the fixed templates for the honest covariances; built per task when None.
    """

    config: Config
    footprint: Footprint
    target_cl: np.ndarray
    gaussian_cl: np.ndarray
    nbar_pixel: float
    template_names: tuple[str, ...]
    correlation: np.ndarray
    truth: TrueCoefficients
    correlator: PixelCorrelator
    fixed: TemplateSet | None
    prepare_seconds: float
    sandwich: SandwichSetup | None = None
    regions: JackknifeRegions | None = None

    @property
    def theta_arcmin(self) -> np.ndarray:
        """Bin centres of w(theta) in arcmin."""
        return self.correlator.theta_arcmin

    def templates_for(self, index: int) -> TemplateSet:
        """The templates of realisation ``index`` (the fixed set unless redrawn)."""
        if self.fixed is not None:
            return self.fixed
        rng = seeds.rng(self.config.run.master_seed, "templates", index)
        return _template_set(self, rng)


def _template_set(ctx: RunContext, rng: np.random.Generator,
                  mapper: Callable = map) -> TemplateSet:
    cfg = ctx.config
    T = draw_templates(cfg.templates, cfg.sky.nside, ctx.footprint.pixels, rng)
    K = T.shape[0]
    V = np.asarray(pca_rotation(T).V, dtype=float) if cfg.methods.pca else np.eye(K)
    xi = ctx.correlator.xi_matrix(T, mapper=mapper)
    return TemplateSet(templates=T, V=V, xi=xi, xi_fit=rotate_xi(xi, V))


def prepare_run(config: Config, *, mapper: Callable = map) -> RunContext:
    """Build the shared state of a run (deterministic in ``config``).

    Draws the fixed templates (stream ``templates``) and the true (a, b)
    (stream ``truth``) and measures the template auto- and cross-correlations
    once: about K^2/4 TreeCorr runs (:meth:`PixelCorrelator.xi_matrix`), the
    dominant cost at paper size (K = 25, NSIDE 512: 157 runs, about 10 CPU
    minutes). ``mapper`` (like the builtin :func:`map`, the default) evaluates
    those runs; pass an executor's ``map`` to spread them over workers, or
    build the context on one rank and broadcast it (it pickles: arrays only).
    The result does not depend on the mapper.

    Raises
    ------
    ConfigError
        A bad sky, templates, contamination or twopoint value (naming the key),
        or an unreadable mask file (naming the file).
    """
    t0 = time.perf_counter()
    sky, tp = config.sky, config.twopoint
    if config.templates.n_templates < 1:
        raise ConfigError(
            f"templates.n_templates: must be >= 1, got {config.templates.n_templates}"
        )
    footprint = make_footprint(sky.footprint, sky.nside, cap_radius_deg=sky.cap_radius_deg,
                               mask_file=sky.mask_file)
    nbar = mean_count_per_pixel(sky.number_density, sky.nside)
    cl = target_cl(sky.spectrum, sky.galaxy_bias, 3 * sky.nside - 1)
    gl = lognormal_gaussian_cl(cl)
    R = correlation_matrix(config.templates)
    bins = angular_bins(sky.nside, tp.theta_min_arcmin, tp.theta_max_arcmin, tp.n_bins,
                        tp.bin_slop)
    correlator = PixelCorrelator(sky.nside, footprint.pixels, bins, tp.n_threads)
    truth = draw_truth(config.contamination, config.templates.n_templates,
                       seeds.rng(config.run.master_seed, "truth"))
    ctx = RunContext(
        config=config, footprint=footprint, target_cl=cl, gaussian_cl=gl, nbar_pixel=nbar,
        template_names=template_names(config.templates), correlation=R, truth=truth,
        correlator=correlator, fixed=None, prepare_seconds=0.0,
    )
    fixed = None
    if not config.templates.redraw:
        fixed = _template_set(ctx, seeds.rng(config.run.master_seed, "templates"), mapper)
    setup = sandwich_setup(footprint.pixels, sky.nside, config.methods.sandwich_lmax,
                           None if fixed is None else fixed.templates)
    return dataclasses.replace(ctx, fixed=fixed, sandwich=setup, regions=_regions(config, footprint),
                               prepare_seconds=time.perf_counter() - t0)


def _regions(config: Config, footprint: Footprint) -> JackknifeRegions | None:
    """The run's jackknife regions (stream ``jackknife``), or None when off."""
    R = config.methods.jackknife_regions
    if R == 0:
        return None
    if R > footprint.pixels.size // 4:
        raise ConfigError(f"methods.jackknife_regions: {R} regions on {footprint.pixels.size} "
                          "footprint pixels leave fewer than 4 pixels per region; use fewer")
    return jackknife_regions(footprint.pixels, config.sky.nside, R,
                             seeds.rng(config.run.master_seed, "jackknife"))


def attach_fixed_templates(ctx: RunContext, fixed: TemplateSet) -> RunContext:
    """``ctx`` with the fixed templates ``fixed`` (e.g. from a cache) and their sandwich transform."""
    setup = _task_sandwich(ctx, fixed)
    return dataclasses.replace(ctx, fixed=fixed, sandwich=setup)


def _task_sandwich(ctx: RunContext, tset: TemplateSet) -> SandwichSetup:
    """The sandwich setup for templates ``tset``: the run's, or one with their transform."""
    cfg = ctx.config
    setup = ctx.sandwich or sandwich_setup(ctx.footprint.pixels, cfg.sky.nside,
                                           cfg.methods.sandwich_lmax)
    return SandwichSetup(setup.geometry, designs_for(setup, tset.templates))


# --------------------------------------------------------------------------- one realisation


def _check_task(ctx: RunContext, scenario: str, index: int) -> None:
    if scenario not in SCENARIOS:
        raise ConfigError(
            f"run.scenarios: unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}"
        )
    if not 0 <= int(index):
        raise ValueError(f"realisation index must be >= 0, got {index}")


def make_mock(ctx: RunContext, scenario: str, index: int,
              templates: TemplateSet | None = None) -> Mock:
    """The mock observation of one realisation and scenario (Berlfein+24 Eqs. 11-13).

    The true field uses stream ``field`` and the counts stream ``counts``,
    both keyed by ``index`` only.
    """
    _check_task(ctx, scenario, index)
    cfg = ctx.config
    tset = ctx.templates_for(index) if templates is None else templates
    master = cfg.run.master_seed
    delta = draw_lognormal(ctx.gaussian_cl, cfg.sky.nside, seeds.rng(master, "field", index))
    delta_true = true_overdensity(delta[ctx.footprint.pixels])
    del delta
    a, b = ctx.truth.for_scenario(scenario)
    return observe(delta_true, tset.templates, a, b, nbar_pixel=ctx.nbar_pixel,
                   shot_noise=cfg.sky.shot_noise, rng=seeds.rng(master, "counts", index))


def _fit_basis_covariance(cov_block: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``V^T C V``; zero (no debiasing) where the method gave no finite covariance."""
    if not np.all(np.isfinite(cov_block)):
        return np.zeros((V.shape[0], V.shape[0]))
    c = V.T @ cov_block @ V
    return 0.5 * (c + c.T)


def _corrected_w(w_obs: np.ndarray, res: MethodResult, tset: TemplateSet
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 16 (full ``Xi`` and diagonal only) with the noise of Eq. 21 removed.

    The expected noise of each quadratic form, ``tr(Xi Sigma)`` with the
    method's full covariance in the fitting basis (:func:`correct_w_unbiased`),
    is subtracted; no truncation, so a map with nothing to correct is not
    over-corrected on average.
    """
    K = res.a.shape[0]
    V = tset.V
    a_fit, b_fit = res.a @ V, res.b @ V  # a' = V^T a
    cov_a = _fit_basis_covariance(res.cov[:K, :K], V)
    cov_b = _fit_basis_covariance(res.cov[K:, K:], V)
    full = np.asarray(correct_w_unbiased(w_obs, a_fit, b_fit, cov_a, cov_b, tset.xi_fit),
                      dtype=float)
    auto = np.diagonal(tset.xi_fit, axis1=1, axis2=2)
    xi_diag = auto[:, :, None] * np.eye(K)[None]
    diag = np.asarray(correct_w_unbiased(w_obs, a_fit, b_fit, cov_a, cov_b, xi_diag),
                      dtype=float)
    return full, diag


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run_methods(ctx: RunContext, scenario: str, index: int, mock: Mock,
                 tset: TemplateSet, setup: SandwichSetup, comparison: ModelComparison
                 ) -> tuple[MethodResult, ...]:
    """Every configured method on the observed map (stream ``method``)."""
    cfg = ctx.config
    data = MapData(delta=mock.delta_obs, templates=tset.templates, pixels=ctx.footprint.pixels,
                   nside=cfg.sky.nside, names=ctx.template_names, sandwich=setup,
                   comparison=comparison)
    s_idx = SCENARIOS.index(scenario)
    return tuple(
        run_method(name, data, cfg.methods,
                   seeds.seed_sequence(cfg.run.master_seed, "method", s_idx, index,
                                       METHOD_NAMES.index(name)))
        for name in cfg.methods.names
    )


def _measure_w(ctx: RunContext, mock: Mock, methods: tuple[MethodResult, ...],
               tset: TemplateSet) -> tuple[np.ndarray, ...]:
    """``w_true, w_obs, w_corrected, w_corrected_diag, w_remeasured`` of one task."""
    # true, observed and every corrected map, two maps per TreeCorr run
    w_all = ctx.correlator.w_many(
        np.stack([mock.delta_true, mock.delta_obs, *(res.corrected for res in methods)]))
    w_true, w_obs, w_remeasured = w_all[0], w_all[1], w_all[2:]
    M, B = len(methods), w_obs.shape[0]
    w_corrected, w_diag = np.full((M, B), np.nan), np.full((M, B), np.nan)
    for m, res in enumerate(methods):
        if res.name in REMEASURED_METHODS:
            w_corrected[m] = w_remeasured[m]
        else:
            w_corrected[m], w_diag[m] = _corrected_w(w_obs, res, tset)
    return w_true, w_obs, w_corrected, w_diag, w_remeasured


def run_realisation(ctx: RunContext, scenario: str, index: int) -> RealisationResult:
    """Mock, methods, MLE fits, LRTs and all w(theta) of one task.

    The stages (timed in :class:`TaskTimings`, names :data:`STAGES`): the mock
    (:func:`make_mock`), the model comparison
    (:func:`hpcsys.core.comparison.compare_models`, with the sandwich
    covariances and Wald tests), the methods (MCMC-add/-comb take the sandwich
    covariance of their Gaussian maximum from the comparison), the jackknife
    and w(theta).

    Parameters
    ----------
    ctx : RunContext
        From :func:`prepare_run`.
    scenario : str
        One of :data:`hpcsys.config.SCENARIOS`.
    index : int
        Realisation index (>= 0).

    Returns
    -------
    RealisationResult
    """
    t_start = time.perf_counter()
    _check_task(ctx, scenario, index)
    cfg = ctx.config
    master = cfg.run.master_seed
    seconds = dict.fromkeys(STAGES, 0.0)

    t = time.perf_counter()
    tset = ctx.templates_for(index)
    mock = make_mock(ctx, scenario, index, tset)
    a_true, b_true = ctx.truth.for_scenario(scenario)
    seconds["mock"] = time.perf_counter() - t

    # the model comparison first: the MCMC methods reuse its Gaussian sandwich covariances
    t = time.perf_counter()
    setup = _task_sandwich(ctx, tset)
    comparison = compare_models(mock.delta_obs, tset.templates, cfg.methods.likelihoods,
                                max_iter=cfg.methods.mle_max_iter, tol=cfg.methods.mle_tol,
                                covariance=mle_covariances(setup, mock.delta_obs,
                                                           tset.templates))
    seconds["mle"] = time.perf_counter() - t

    t = time.perf_counter()
    methods = _run_methods(ctx, scenario, index, mock, tset, setup, comparison)
    seconds["methods"] = time.perf_counter() - t

    t = time.perf_counter()
    jack = task_jackknife(mock.delta_obs, tset.templates, ctx.footprint.pixels, cfg,
                          ctx.regions, methods, comparison, ctx.template_names)
    seconds["jackknife"] = time.perf_counter() - t

    t = time.perf_counter()
    methods = tuple(with_jackknife_cov(res, jack.method_cov[m]) for m, res in enumerate(methods))
    w_true, w_obs, w_corrected, w_diag, w_remeasured = _measure_w(ctx, mock, methods, tset)
    seconds["twopoint"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start

    return RealisationResult(
        scenario=scenario,
        index=int(index),
        seed_words=np.concatenate([seeds.seed_words(master, "field", index),
                                   seeds.seed_words(master, "counts", index)]),
        a_true=a_true,
        b_true=b_true,
        theta_arcmin=ctx.theta_arcmin.copy(),
        w_true=w_true,
        w_obs=w_obs,
        methods=methods,
        w_corrected=w_corrected,
        w_corrected_diag=w_diag,
        w_remeasured=w_remeasured,
        mle=comparison.mle,
        lrt=comparison.lrt,
        jackknife=jack,
        timings=TaskTimings(stage_seconds=np.array([seconds[s] for s in STAGES]),
                            peak_memory_mb=_peak_memory_mb()),
    )
