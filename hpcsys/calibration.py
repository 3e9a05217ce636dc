"""Null mocks that calibrate the likelihood-ratio tests of Table 2 without circularity.

The mock-calibrated column of Table 2 (:func:`hpcsys.reduction.table2`) needs
the distribution of the Eq. 19 statistic lambda when the null model of a test
is true. It comes from a *calibration set* of ``analysis.calibration_realisations``
mocks that shares no random stream with the evaluated realisations: its own
true fields (stream ``calibration_field``), Poisson counts
(``calibration_counts``) and, with ``templates.redraw``, templates
(``calibration_templates``), each keyed by the calibration index ``j`` (see
:data:`hpcsys.seeds.STREAMS`). With fixed templates the calibration mocks use
the run's templates: they are a property of the survey, like the true (a, b),
not of a realisation. No test's size is therefore measured on a realisation
its calibration used.

One calibration task ``j`` draws one true field and fits
(:func:`hpcsys.core.comparison.compare_models`, no methods, no w(theta)):

* the exact null mock ``a = b = 0``: the null distribution of every test whose
  null model is ``null`` (no contamination parameters; the pixel scale ``s``
  does not matter, lambda is invariant under a rescaling of the map);
* for the tests whose null model has free parameters (``additive/combined``,
  ``multiplicative/combined``), a *parametric bootstrap at the fitted null*:
  per scenario ``s`` and free null model ``m``, the calibration field
  contaminated with the scenario-mean maximum-likelihood fit of model ``m``
  (:func:`bootstrap_points`, computed by the run from the evaluated tasks
  after they finish, under the first configured likelihood).

The scenario-mean point costs ``1 + 2 S`` model comparisons per calibration
task (S scenarios) instead of ``N (1 + 2 S)`` for a bootstrap at each
realisation's own fit. It assumes that the null distribution of lambda varies
slowly with the nuisance parameters over the spread of the per-realisation
fits (their scatter is the fit's noise, small against the parameters at the
settings of the shipped configs), and that the model fitted under the first
likelihood is the nuisance point of every likelihood (the fits of ``a`` or
``b`` under the Gaussian and skew-normal likelihoods agree to within their
noise). The calibrated p-value of a realisation is
``(1 + #{lambda_cal >= lambda}) / (1 + M)`` over the M calibration values
of its cell: exact (valid at any M) when the calibration mocks are
exchangeable with the tested one under the null.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpcsys import seeds
from hpcsys.core.comparison import LRTMatrix, compare_models
from hpcsys.core.models import FIT_MODELS, LRT_PAIRS, MODELS
from hpcsys.io import task_path
from hpcsys.sims.fields import draw_lognormal
from hpcsys.sims.mock import Mock, observe, true_overdensity

if TYPE_CHECKING:
    from hpcsys.pipeline import RunContext

__all__ = [
    "BOOTSTRAP_MODELS",
    "CALIBRATION_KIND",
    "CALIBRATION_STREAMS",
    "BootstrapPoints",
    "CalibrationResult",
    "bootstrap_points",
    "calibration_mock",
    "calibration_path",
    "calibration_source",
    "run_calibration",
    "same_points",
]

#: Task "scenario" label of calibration tasks (never a scenario name) and their folder.
CALIBRATION_KIND = "calibration"


def calibration_path(run_dir: str | Path, index: int) -> Path:
    """File of calibration task ``index``: ``RUN_DIR/tasks/calibration/<index:05d>.h5``."""
    return task_path(run_dir, CALIBRATION_KIND, index)


def same_points(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of bootstrap coordinates agree (shape, and to 1e-8 relative)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-8, atol=1e-14))


#: Null models of the LRT pairs that have free contamination parameters.
BOOTSTRAP_MODELS: tuple[str, ...] = tuple(
    dict.fromkeys(null for null, _ in LRT_PAIRS if any(MODELS[null])))
#: Streams of a calibration task (keyed by the calibration index only).
CALIBRATION_STREAMS: tuple[str, ...] = ("calibration_field", "calibration_counts",
                                        "calibration_templates")


@dataclass(frozen=True)
class BootstrapPoints:
    """Nuisance points of the parametric bootstrap (S scenarios, P = len(BOOTSTRAP_MODELS)).

    Attributes
    ----------
    scenarios : tuple of str, length S
    models : tuple of str, length P
    a, b : ndarray, shape (S, P, K)
        Mean over the scenario's realisations of the maximum-likelihood ``a``
        and ``b`` of each free null model (zero where the model has no such term).
    """

    scenarios: tuple[str, ...]
    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class CalibrationResult:
    """The lambda values of one calibration task (Q = len(LRT_PAIRS), L likelihoods).

    Attributes
    ----------
    index : int
        Calibration index ``j``.
    seed_words : ndarray of uint32, shape (4,)
        State words of the task's ``calibration_field`` and ``calibration_counts``
        streams (provenance, and the proof of disjointness from the evaluated tasks).
    statistic : ndarray, shape (S, Q, L)
        Eq. 19 lambda of each scenario's calibration of each test: the exact
        null mock for the tests whose null model is ``null`` (equal for all
        scenarios), the bootstrap mock of the scenario's fitted null otherwise.
    null_pvalue : ndarray, shape (Q, L)
        Wilks p-values of the exact null mock (its Wilks size, for comparison).
    bootstrap_a, bootstrap_b : ndarray, shape (S, P, K)
        The bootstrap points used (:class:`BootstrapPoints`): a task computed
        at other points is redone on resume.
    seconds : float
        Wall time of the task.
    """

    index: int
    seed_words: np.ndarray
    statistic: np.ndarray
    null_pvalue: np.ndarray
    bootstrap_a: np.ndarray
    bootstrap_b: np.ndarray
    seconds: float


def calibration_source(pair: str) -> str:
    """How the calibration set calibrates the test ``"null/alt"`` (one phrase)."""
    null = pair.split("/")[0]
    if any(MODELS[null]):
        return f"parametric bootstrap at the scenario-mean fitted {null} model"
    return "exact null mocks (a = b = 0)"


def bootstrap_points(scenarios: Sequence[str], mle_a: Mapping[str, np.ndarray],
                     mle_b: Mapping[str, np.ndarray], likelihood_index: int = 0
                     ) -> BootstrapPoints:
    """Scenario-mean maximum-likelihood fits of the free null models.

    Parameters
    ----------
    scenarios : sequence of str
    mle_a, mle_b : mapping of scenario to ndarray, shape (N, F, L, K)
        The ``mle/a`` and ``mle/b`` arrays of the scenario's evaluated tasks.
    likelihood_index : int
        Position of the likelihood whose fits are used (the first configured one).
    """
    P = len(BOOTSTRAP_MODELS)
    K = int(np.shape(next(iter(mle_a.values())))[-1]) if mle_a else 0
    a, b = np.zeros((len(scenarios), P, K)), np.zeros((len(scenarios), P, K))
    for s, name in enumerate(scenarios):
        for p, model in enumerate(BOOTSTRAP_MODELS):
            f = FIT_MODELS.index(model)
            has_a, has_b = MODELS[model]
            fa = np.asarray(mle_a[name], dtype=float)[:, f, likelihood_index]
            fb = np.asarray(mle_b[name], dtype=float)[:, f, likelihood_index]
            ok = np.all(np.isfinite(fa), axis=1) & np.all(np.isfinite(fb), axis=1)
            if not ok.any():
                raise ValueError(f"scenario {name!r}: no finite {model} fit to bootstrap from")
            if has_a:
                a[s, p] = fa[ok].mean(axis=0)
            if has_b:
                b[s, p] = fb[ok].mean(axis=0)
    return BootstrapPoints(tuple(scenarios), BOOTSTRAP_MODELS, a, b)


def _templates(ctx: RunContext, index: int) -> np.ndarray:
    if ctx.fixed is not None:
        return ctx.fixed.templates
    from hpcsys.pipeline import _template_set

    rng = seeds.rng(ctx.config.run.master_seed, "calibration_templates", index)
    return _template_set(ctx, rng).templates


def calibration_mock(ctx: RunContext, index: int, a: np.ndarray, b: np.ndarray,
                     templates: np.ndarray | None = None) -> Mock:
    """Calibration mock ``index`` contaminated with ``(a, b)`` (calibration streams only).

    Parameters
    ----------
    ctx : hpcsys.pipeline.RunContext
    index : int
        Calibration index ``j >= 0``.
    a, b : ndarray, shape (K,)
    templates : ndarray, shape (K, Npix), optional
        The task's templates (default: the fixed ones, or drawn from
        ``calibration_templates`` when ``templates.redraw``).
    """
    if int(index) < 0:
        raise ValueError(f"calibration index must be >= 0, got {index}")
    cfg = ctx.config
    master = cfg.run.master_seed
    T = _templates(ctx, index) if templates is None else templates
    delta = draw_lognormal(ctx.gaussian_cl, cfg.sky.nside,
                           seeds.rng(master, "calibration_field", index))
    delta_true = true_overdensity(delta[ctx.footprint.pixels])
    return observe(delta_true, T, a, b, nbar_pixel=ctx.nbar_pixel,
                   shot_noise=cfg.sky.shot_noise,
                   rng=seeds.rng(master, "calibration_counts", index))


def run_calibration(ctx: RunContext, index: int, points: BootstrapPoints) -> CalibrationResult:
    """All model comparisons of calibration task ``index`` (see the module docstring).

    Parameters
    ----------
    ctx : hpcsys.pipeline.RunContext
    index : int
        Calibration index ``j >= 0``.
    points : BootstrapPoints
        From :func:`bootstrap_points` over the run's evaluated tasks.
    """
    t0 = time.perf_counter()
    cfg = ctx.config
    liks = cfg.methods.likelihoods
    S, Q, L = len(points.scenarios), len(LRT_PAIRS), len(liks)
    T = _templates(ctx, index)
    K = T.shape[0]

    def lrt(a: np.ndarray, b: np.ndarray) -> LRTMatrix:
        mock = calibration_mock(ctx, index, a, b, T)
        return compare_models(mock.delta_obs, T, liks, max_iter=cfg.methods.mle_max_iter,
                              tol=cfg.methods.mle_tol).lrt

    null = lrt(np.zeros(K), np.zeros(K))
    stat = np.full((S, Q, L), np.nan)
    stat[:] = null.statistic
    for s in range(S):
        for p, model in enumerate(points.models):
            boot = lrt(points.a[s, p], points.b[s, p])
            for q, (m0, _) in enumerate(LRT_PAIRS):
                if m0 == model:
                    stat[s, q] = boot.statistic[q]
    master = cfg.run.master_seed
    return CalibrationResult(
        index=int(index),
        seed_words=np.concatenate([seeds.seed_words(master, "calibration_field", index),
                                   seeds.seed_words(master, "calibration_counts", index)]),
        statistic=stat, null_pvalue=np.asarray(null.pvalue, dtype=float),
        bootstrap_a=np.asarray(points.a, dtype=float),
        bootstrap_b=np.asarray(points.b, dtype=float),
        seconds=time.perf_counter() - t0)
