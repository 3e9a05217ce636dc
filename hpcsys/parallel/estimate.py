"""Cost of a run before running it (``hpcsys check``): per stage, per task, per run.

A stated model, one term per stage of a task, each constant measured on one
core at the sizes the model predicts (``benchmarks/bench_task.py`` times one
task per stage at any config's size, paper size included;
``benchmarks/calibrate.py`` turns such measurements into the constants below
and ``make bench`` re-runs both). ``N`` = footprint pixels, ``K`` templates,
``W`` walkers, ``S`` steps, ``M`` methods, ``F`` CV folds, ``L`` l1 ratios:

=============  ===============================================================
stage          CPU seconds
=============  ===============================================================
mock           ``c_mock * 12 NSIDE^2`` (lognormal field on the full sky)
OLS            ``c_ols * N K^2``
ElasticNet     ``c_en * N K (F + 1) L`` (Gram matrix per fold, paths, final fit)
ISD-1/3        ``c_isd * N K`` per iteration, K + 1 iterations at most
MCMC-add       ``S (c_step + c_add W K^2)`` (sufficient statistics: O(K^2) per walker)
MCMC-comb      ``S (c_step + c_comb N K W)`` (the ``(W x K) @ (K x N)`` products)
MLE fits       ``c_mle * N * sum_models (P + 1)^2`` per likelihood (with their
               sandwich covariances and Wald tests)
jackknife      ``c_jk * N * sum_models (P + 1)^2`` per likelihood (per-region
               derivatives of every fit, OLS downdates, method deletions)
w(theta)       ``c_tc * N`` per TreeCorr run, ``ceil((2 + M) / 2)`` runs per task
fixed          ``fixed`` per task (bookkeeping, task file)
=============  ===============================================================

Before the first task the run context is built once (:mod:`hpcsys.parallel.prepare`):
``prep_base * 12 NSIDE^2`` plus ``~K^2/4`` TreeCorr runs of ``c_tc_xi * N``
each, dealt over the ranks, then a broadcast of the templates (``K N`` doubles);
a cache hit costs only the base. Each rank also compiles the JAX kernels once
(``compile``; less with a warm ``parallel.compilation_cache_dir``).

Wall time on R ranks (one core each): the prepare (its TreeCorr runs / R),
the compilation, then the task phase of the dynamic schedule,
``max(ceil(tasks / R) * mean task, longest task)``. The constants are CPU
seconds of one core measured with the machine shared (see
``benchmarks/calibrate.py`` for the measurements); a GPU is not modelled.

Memory per rank: a baseline for the Python/JAX process plus ``N x 8 bytes``
times the number of full-length vectors held at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hpcsys.config import Config

__all__ = ["COST_CONSTANTS", "CostEstimate", "estimate_cost", "prepare_treecorr_runs"]

#: CPU seconds per unit of work (see the module docstring), from benchmarks/calibrate.py.
#: Measured 2026-12-02 (second measurement of that day, after the MCMC-comb kernel
#: change) with ``benchmarks/calibrate.py --run`` on a 2-rank run of configs/paper.yaml
#: (4 realisations x 4 scenarios, NSIDE 512 KiDS-like footprint, 95209 pixels, K = 25,
#: 250 walkers x 1500 steps, float64, jax sampler) on the 2-vCPU development VM (AMD EPYC
#: with AVX-512), one thread per rank and both cores busy: warm tasks 202-247 s, fitted
#: on realisations 0-1 of each scenario; the model is within -10 % / +10 % of the
#: held-out realisations 2-3. c_tc_xi: 3.73-3.84 s per template xi_ij TreeCorr run
#: (benchmarks/bench_task.py, same day). The VM of the first 2026-12-02 measurement ran
#: the same tasks in 497-657 s: the constants belong to a machine, and ``make bench``
#: re-measures them. c_add, prep_base and base_memory_mb: from the 2026-12-01
#: measurement; compile: the cold-cache compilation of that first 2026-12-02 run (the
#: run above found most kernels in a warm cache).
COST_CONSTANTS: dict[str, float] = {
    "c_mock": 2.2e-7,  # s per full-sky pixel
    "c_ols": 1.04e-8,  # s per (pixel x K^2), the sandwich of the residual included
    "c_en": 2.0e-7,  # s per (pixel x K x (folds + 1) x l1 ratios)
    "c_isd": 1.41e-7,  # s per (pixel x K) per iteration, harmonic binned-mean errors included
    "c_step": 2.92e-3,  # s per sampler step (MCMC-add: scan, RNG, bookkeeping, its MLE start)
    "c_add": 1.0e-9,  # s per (walker x K^2) per step
    "c_comb": 1.62e-10,  # s per (pixel x K x walker) per step
    "c_mle": 2.14e-8,  # s per (pixel x (P + 1)^2) per likelihood (fits, sandwich, Wald)
    "c_jk": 5.5e-9,  # s per (pixel x (P + 1)^2) per likelihood
    "c_tc": 4.57e-5,  # s per pixel per TreeCorr run of a task
    "c_tc_xi": 3.97e-5,  # s per pixel per TreeCorr run of the template xi_ij
    "fixed": 0.053,  # s per task (bookkeeping, task file)
    "prep_base": 9.2e-6,  # s per full-sky pixel (footprint, spectra, templates, PCA)
    "compile": 346.0,  # s per rank, first task (JAX compilation, cold cache)
    "base_memory_mb": 700.0,  # Python + JAX + healpy + TreeCorr process
}


@dataclass(frozen=True)
class CostEstimate:
    """What ``hpcsys check`` prints.

    Attributes
    ----------
    n_tasks : int
        Scenarios x realisations.
    n_pixels : int
        Footprint pixels.
    seconds_per_task : float
        Estimated CPU time of one task on one core (mean over the scenarios).
    stage_seconds : dict of str to float
        The same per stage (methods by name).
    core_hours : float
        ``n_tasks x seconds_per_task / 3600`` (tasks only).
    prepare_seconds : float
        CPU time of the run context (base + all template xi_ij TreeCorr runs), once per run.
    prepare_treecorr_runs : int
    prepare_wall_seconds : float
        Wall time of the prepare on ``n_ranks`` ranks (its TreeCorr runs shared).
    n_ranks : int
        Ranks of the wall-time estimate.
    wall_seconds : float
        Estimated wall time of the run on ``n_ranks`` ranks (one core each).
    efficiency : float
        ``(prepare + tasks) CPU seconds / (n_ranks x wall_seconds)``.
    memory_per_rank_mb : float
    output_dir : Path
    task_file_mb, results_file_mb : float
        Estimated sizes of one per-task file and of ``results.h5``.
    calibration_seconds : float
        CPU time of all calibration tasks of Table 2
        (``analysis.calibration_realisations`` x (mock + (1 + 2 S) model
        comparisons), :mod:`hpcsys.calibration`), included in the wall time.
    """

    n_tasks: int
    n_pixels: int
    seconds_per_task: float
    stage_seconds: dict[str, float]
    core_hours: float
    prepare_seconds: float
    prepare_treecorr_runs: int
    prepare_wall_seconds: float
    n_ranks: int
    wall_seconds: float
    efficiency: float
    memory_per_rank_mb: float
    output_dir: Path
    task_file_mb: float
    results_file_mb: float
    calibration_seconds: float = 0.0


def prepare_treecorr_runs(K: int) -> int:
    """TreeCorr runs of the template ``xi_ij`` (:meth:`PixelCorrelator.xi_matrix`): 157 for K = 25."""
    p, single = divmod(K, 2)
    return p + single + p * (p - 1) + p * single


def stage_seconds(config: Config, n_pixels: int, constants: dict[str, float] | None = None
                  ) -> dict[str, float]:
    """Modelled CPU seconds of one task per stage (methods by name), mean over scenarios."""
    c = COST_CONSTANTS if constants is None else constants
    sky, m = config.sky, config.methods
    N, K = float(n_pixels), config.n_templates
    W, S = m.mcmc_walkers, m.mcmc_steps
    out = {"mock": c["c_mock"] * 12 * sky.nside**2}
    for name in m.names:
        if name == "OLS":
            out[name] = c["c_ols"] * N * K * K
        elif name == "ElasticNet":
            out[name] = c["c_en"] * N * K * (m.elasticnet_folds + 1) * len(m.elasticnet_l1_ratio)
        elif name.startswith("ISD"):
            out[name] = c["c_isd"] * N * K * min(K + 1, m.isd_max_iter)
        elif name == "MCMC-add":
            out[name] = S * (c["c_step"] + c["c_add"] * W * K * K)
        elif name == "MCMC-comb":
            out[name] = S * (c["c_step"] + c["c_comb"] * N * K * W)
    out["mle"] = c["c_mle"] * N * sum((P + 1) ** 2 for P in (1, K + 1, K + 1, 2 * K + 1)) \
        * len(m.likelihoods)
    out["jackknife"] = c["c_jk"] * N * sum((P + 1) ** 2 for P in (1, K + 1, K + 1, 2 * K + 1)) \
        * len(m.likelihoods) if m.jackknife_regions else 0.0
    out["twopoint"] = c["c_tc"] * N * math.ceil((2 + len(m.names)) / 2)
    out["fixed"] = c["fixed"]
    return out


def estimate_cost(config: Config, n_ranks: int = 1) -> CostEstimate:
    """Estimate the size, time and memory of a run without running it.

    Builds the footprint (cheap; validates a mask file) but draws no maps.

    Parameters
    ----------
    config : Config
    n_ranks : int
        Ranks (one core each) of the wall-time estimate.
    """
    from hpcsys.sims.footprint import make_footprint

    sky, m = config.sky, config.methods
    fp = make_footprint(sky.footprint, sky.nside, cap_radius_deg=sky.cap_radius_deg,
                        mask_file=sky.mask_file)
    npix = fp.n_pixels
    K = config.n_templates
    c = COST_CONSTANTS
    stages = stage_seconds(config, npix)
    t = float(sum(stages.values()))
    n_tasks = len(config.run.scenarios) * config.run.n_realisations
    n_xi = 0 if config.templates.redraw else prepare_treecorr_runs(K)
    t_run = c["c_tc_xi"] * npix
    base = c["prep_base"] * 12 * sky.nside**2
    prep = base + n_xi * t_run
    R = max(1, int(n_ranks))
    # the longest task: the combined scenario runs the same stages (a few more MLE iterations)
    phase = max(math.ceil(n_tasks / R) * t, t) if n_tasks else 0.0
    prep_wall = base + math.ceil(n_xi / R) * t_run
    n_cal = config.analysis.calibration_realisations
    t_cal = stages["mock"] + (1 + 2 * len(config.run.scenarios)) * stages["mle"]
    cal = n_cal * t_cal
    phase += max(math.ceil(n_cal / R) * t_cal, t_cal) if n_cal else 0.0
    wall = prep_wall + c["compile"] + phase
    work = prep + n_tasks * t + cal
    eff = work / (R * wall) if wall > 0 else 1.0
    vectors = 4 * K + 2 * min(m.mcmc_walkers, 256) + 6 * len(m.names) + 20
    mem = c["base_memory_mb"] + npix * 8 * vectors / 2**20
    M, B = len(m.names), config.twopoint.n_bins
    task_mb = (npix * 8 * 2 * M) / 2**20 + 0.05
    n_lik = len(m.likelihoods)
    per_real = 8 * (M * (8 * K + 4 * K * K + 12) + 8 * n_lik * (4 * K + 5) + 5 * M * B + 40)
    results_mb = n_tasks * per_real / 2**20 + 0.1
    return CostEstimate(n_tasks, npix, t, stages, n_tasks * t / 3600.0, prep, n_xi, prep_wall, R,
                        wall,
                        eff, mem, config.output_dir, task_mb, results_mb, cal)
