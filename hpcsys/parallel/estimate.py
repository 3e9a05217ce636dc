"""Cost of a run before running it (``hpcsys check``).

A simple, stated model, calibrated on measured per-realisation times
(``benchmarks/bench_parallel.py`` prints the measurement to re-calibrate):

* MCMC: ``c_mcmc * Npix * (P + 1) * walkers * steps`` per sampler
  (``P`` = free parameters: K + 1 for MCMC-add, 2K + 1 for MCMC-comb),
  the batched likelihood being a (walkers x P) @ (P x Npix) product;
* MLE fits: ``c_mle * Npix * P^2 * iterations`` over the 4 models x likelihoods;
* two-point functions: ``c_tc * Npix`` per map (true, observed, and per method
  the corrected and re-measured maps);
* a fixed overhead per task.

Memory per rank: a baseline for the Python/JAX process plus
``Npix x 8 bytes`` times the number of full-length vectors held at once
(templates and their products, walker batches, maps).
The estimate is for CPU cores; a GPU runs the MCMC part 10-100x faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hpcsys.config import Config

__all__ = ["COST_CONSTANTS", "CostEstimate", "estimate_cost"]

#: Seconds per unit of work, from measured timings (see module docstring).
COST_CONSTANTS: dict[str, float] = {
    # measured 2026-11-23 on one core of the 2-core development VM, float64, emcee backend,
    # NSIDE 128 KiDS-like footprint (5984 pixels), K = 5: MCMC-add 0.27 s and MCMC-comb
    # 0.60 s for 32 walkers x 300 steps, 8 MLE fits 0.11 s, 14 w(theta) maps 0.37 s
    "c_mcmc": 7.0e-10,  # s per (pixel x (parameters + 1) x walker-step)
    "c_mle": 1.2e-10,  # s per (pixel x (parameters + 1)^2 x iteration)
    "c_tc": 5.0e-6,  # s per pixel per TreeCorr map (one thread)
    "fixed": 0.5,  # s per task (mock, OLS, ElasticNet, ISD at small sizes)
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
        Estimated wall time of one task on one core.
    core_hours : float
        ``n_tasks x seconds_per_task / 3600``.
    memory_per_rank_mb : float
    output_dir : Path
    task_file_mb, results_file_mb : float
        Estimated sizes of one per-task file and of ``results.h5``.
    """

    n_tasks: int
    n_pixels: int
    seconds_per_task: float
    core_hours: float
    memory_per_rank_mb: float
    output_dir: Path
    task_file_mb: float
    results_file_mb: float


def estimate_cost(config: Config) -> CostEstimate:
    """Estimate the size, time and memory of a run without running it.

    Builds the footprint (cheap; validates a mask file) but draws no maps.
    """
    from hpcsys.sims.footprint import make_footprint

    sky, m = config.sky, config.methods
    fp = make_footprint(sky.footprint, sky.nside, cap_radius_deg=sky.cap_radius_deg,
                        mask_file=sky.mask_file)
    npix = fp.n_pixels
    K = config.n_templates
    c = COST_CONSTANTS
    t = c["fixed"]
    steps = m.mcmc_walkers * m.mcmc_steps
    if "MCMC-add" in m.names:
        t += c["c_mcmc"] * npix * (K + 2) * steps
    if "MCMC-comb" in m.names:
        t += c["c_mcmc"] * npix * (2 * K + 2) * steps
    n_lik = len(m.likelihoods)
    for P in (1, K + 1, K + 1, 2 * K + 1):
        t += c["c_mle"] * npix * (P + 1) ** 2 * 30 * n_lik
    n_maps = 2 + 2 * len(m.names)
    t += c["c_tc"] * npix * n_maps
    n_tasks = len(config.run.scenarios) * config.run.n_realisations
    vectors = 4 * K + 2 * min(m.mcmc_walkers, 256) + 6 * len(m.names) + 20
    mem = c["base_memory_mb"] + npix * 8 * vectors / 2**20
    M, B = len(m.names), config.twopoint.n_bins
    task_mb = (npix * 8 * 2 * M) / 2**20 + 0.05
    per_real = 8 * (M * (8 * K + 4 * K * K + 12) + 8 * n_lik * (4 * K + 5) + 5 * M * B + 40)
    results_mb = n_tasks * per_real / 2**20 + 0.1
    return CostEstimate(n_tasks, npix, t, n_tasks * t / 3600.0, mem, config.output_dir,
                        task_mb, results_mb)
