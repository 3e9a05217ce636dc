"""Delete-one-region jackknife at the sizes of a config (default ``configs/paper.yaml``).

Times, in CPU seconds of this process (:func:`time.process_time`, robust to a
crowded machine) and wall seconds, the pieces of the spatial jackknife of one
task (:mod:`hpcsys.measure.jackknife`): the k-means regions (once per run),
the OLS downdates, and the warm-started Newton deletions of every MLE fit of
the model comparison (every fitted model x likelihood) and the deletions of
the methods (:func:`hpcsys.methods.deletions.method_deletions`). The map is one
contaminated mock of the ``combined`` scenario at the config's NSIDE,
footprint and K. The issue's target: the jackknife of all methods of one
task (about 80 regions) under 25 s on one core at NSIDE 512, K = 25.

    python benchmarks/bench_jackknife.py [--config C] [--regions 80] [--steps 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "paper.yaml"))
    ap.add_argument("--regions", type=int, default=80)
    ap.add_argument("--steps", type=int, default=1, help="Newton steps per MLE deletion")
    ap.add_argument("--methods", nargs="*", default=["OLS", "ElasticNet", "ISD-1", "ISD-3"],
                    help="methods whose deletions are timed (MCMC deletions are the MLE "
                         "deletions of their model under the Gaussian likelihood)")
    args = ap.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    from hpcsys import seeds
    from hpcsys.config import load_config
    from hpcsys.core.fit import fit_mle
    from hpcsys.core.models import FIT_MODELS, MODELS
    from hpcsys.measure.jackknife import jackknife_regions, mle_deletions, ols_deletions
    from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
    from hpcsys.sims.footprint import make_footprint
    from hpcsys.sims.mock import mean_count_per_pixel, observe, true_overdensity
    from hpcsys.sims.spectra import target_cl
    from hpcsys.sims.templates import draw_templates
    from hpcsys.sims.truth import draw_truth

    cfg = load_config(args.config)
    sky, master = cfg.sky, cfg.run.master_seed
    fp = make_footprint(sky.footprint, sky.nside, cap_radius_deg=sky.cap_radius_deg,
                        mask_file=sky.mask_file)
    T = draw_templates(cfg.templates, sky.nside, fp.pixels, seeds.rng(master, "templates"))
    gl = lognormal_gaussian_cl(target_cl(sky.spectrum, sky.galaxy_bias, 3 * sky.nside - 1))
    delta = true_overdensity(draw_lognormal(gl, sky.nside, seeds.rng(master, "field", 0))[fp.pixels])
    truth = draw_truth(cfg.contamination, T.shape[0], seeds.rng(master, "truth"))
    a, b = truth.for_scenario("combined")
    mock = observe(delta, T, a, b, nbar_pixel=mean_count_per_pixel(sky.number_density, sky.nside),
                   shot_noise=sky.shot_noise, rng=seeds.rng(master, "counts", 0))
    d = mock.delta_obs

    rows: list[tuple[str, float, float]] = []

    def timed(label, fn, *a, **k):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a, **k)
        rows.append((label, time.process_time() - c0, time.perf_counter() - w0))
        return out

    regions = timed(f"regions (k-means, R = {args.regions}; once per run)", jackknife_regions,
                    fp.pixels, sky.nside, args.regions, seeds.rng(master, "synthetic", 0))
    timed("OLS downdates", ols_deletions, d, T, regions)
    per_task: list[tuple[str, float, float]] = []
    for model in FIT_MODELS:
        if not any(MODELS[model]):
            continue
        for lik in cfg.methods.likelihoods:
            fit = fit_mle(d, T, model, lik)
            theta = np.asarray(fit.theta)
            mle_deletions(theta, d, T, model, lik, regions, n_steps=args.steps)  # compile
            timed(f"MLE {model}/{lik} ({args.steps} Newton steps)", mle_deletions,
                  theta, d, T, model, lik, regions, n_steps=args.steps)
            per_task.append(rows[-1])
    from hpcsys.config import REMEASURED_METHODS
    from hpcsys.methods import MapData, run_method
    from hpcsys.methods.deletions import method_deletions

    isd_reruns = []  # ISD reruns the whole method per deletion: only with methods.jackknife_isd

    data = MapData(delta=d, templates=T, pixels=fp.pixels, nside=sky.nside,
                   names=tuple(f"t{i}" for i in range(T.shape[0])))
    for name in args.methods:
        res = run_method(name, data, cfg.methods, seeds.seed_sequence(master, "method", 0, 0, 0))
        timed(f"method {name} deletions", method_deletions, res, data, cfg.methods, regions)
        (isd_reruns if name in REMEASURED_METHODS else per_task).append(rows[-1])
    print(f"\nJackknife at NSIDE {sky.nside}, K = {T.shape[0]}, {fp.pixels.size} pixels, "
          f"R = {args.regions} regions (config {args.config})")
    print(f"{'piece':<52s} {'CPU s':>8s} {'wall s':>8s}")
    for label, cpu, wall in rows:
        print(f"{label:<52s} {cpu:8.2f} {wall:8.2f}")
    print(f"{'per task, default (methods + every MLE fit)':<52s} "
          f"{sum(r[1] for r in per_task):8.2f} {sum(r[2] for r in per_task):8.2f}")
    if isd_reruns:
        print(f"{'  + ISD reruns (only with methods.jackknife_isd)':<52s} "
              f"{sum(r[1] for r in isd_reruns):8.2f} {sum(r[2] for r in isd_reruns):8.2f}")


if __name__ == "__main__":
    sys.exit(main())
