"""CPU cost of the honest (harmonic sandwich) covariances of one task (issue 13 target: < 5 s).

One paper-size null mock (configs/paper.yaml sky and templates: NSIDE 512, KiDS
footprint, K = 25, lognormal field with Poisson counts) is fitted once by every
model under every likelihood (not timed). Then, per exact band ``lmax``, the
table gives the CPU seconds (user + sys of this process, one thread) of

* ``setup``: the per-run part, the footprint geometry and the transform of the
  fixed templates (:func:`hpcsys.measure.honest.sandwich_setup`);
* ``ols``: the OLS sandwich of one task (one transform of the residual);
* ``mle``: the sandwich of every non-null MLE fit (models x likelihoods: the
  residual fields, and the K modulated designs of each model with ``b``);
* ``task``: ``ols + mle``, the per-task cost compared with the target.

With ``--compare N`` it then checks the white tail: on N null mocks, the OLS
sandwich errors and the Wald statistic of all K coefficients at each ``lmax``
against the whole band (``3 NSIDE - 1``, healpy's transform: slow).

Run with ``OMP_NUM_THREADS=1`` (set here before NumPy is imported) so the
figure is for one core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")

import argparse

import numpy as np


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    """Print the cost table; return 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..",
                                                     "configs", "paper.yaml"))
    ap.add_argument("--nside", type=int, default=None, help="override sky.nside")
    ap.add_argument("--templates", type=int, default=None, help="override templates.n_templates")
    ap.add_argument("--lmax", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--repeat", type=int, default=2, help="repetitions (minimum reported)")
    ap.add_argument("--compare", type=int, default=0, metavar="N",
                    help="also compare with the whole band on N mocks (OLS)")
    args = ap.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    from hpcsys import seeds
    from hpcsys.config import apply_overrides, load_config
    from hpcsys.core.comparison import compare_models
    from hpcsys.measure.honest import mle_covariances, sandwich_setup
    from hpcsys.measure.sandwich import ols_covariance
    from hpcsys.methods import MapData
    from hpcsys.methods.regression import run_ols
    from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
    from hpcsys.sims.footprint import make_footprint
    from hpcsys.sims.mock import mean_count_per_pixel, observe, true_overdensity
    from hpcsys.sims.spectra import target_cl
    from hpcsys.sims.templates import draw_templates

    over = []
    if args.nside:
        over.append(f"sky.nside={args.nside}")
    if args.templates:
        over.append(f"templates.n_templates={args.templates}")
    cfg = apply_overrides(load_config(args.config), over)
    sky, nside = cfg.sky, cfg.sky.nside
    fp = make_footprint(sky.footprint, nside, cap_radius_deg=sky.cap_radius_deg,
                        mask_file=sky.mask_file)
    master = cfg.run.master_seed
    T = draw_templates(cfg.templates, nside, fp.pixels, seeds.rng(master, "templates"))
    gl = lognormal_gaussian_cl(target_cl(sky.spectrum, sky.galaxy_bias, 3 * nside - 1))
    delta = draw_lognormal(gl, nside, seeds.rng(master, "field", 0))
    K = T.shape[0]
    mock = observe(true_overdensity(delta[fp.pixels]), T, np.zeros(K), np.zeros(K),
                   nbar_pixel=mean_count_per_pixel(sky.number_density, nside),
                   shot_noise=sky.shot_noise, rng=seeds.rng(master, "counts", 0))
    d = mock.delta_obs

    def null_map(i: int) -> np.ndarray:
        field = draw_lognormal(gl, nside, seeds.rng(master, "field", i))
        return observe(true_overdensity(field[fp.pixels]), T, np.zeros(K), np.zeros(K),
                       nbar_pixel=mean_count_per_pixel(sky.number_density, nside),
                       shot_noise=sky.shot_noise, rng=seeds.rng(master, "counts", i)).delta_obs

    t0 = _cpu()
    comp = compare_models(d, T, cfg.methods.likelihoods, max_iter=cfg.methods.mle_max_iter,
                          tol=cfg.methods.mle_tol)
    fits = [f for f in comp.fits if f.model != "null"]
    print(f"NSIDE {nside}, {fp.pixels.size} footprint pixels ({sky.footprint}), K = {K}, "
          f"likelihoods {', '.join(cfg.methods.likelihoods)}: {len(fits)} non-null MLE fits "
          f"(fitted in {_cpu() - t0:.1f} CPU s, not counted)")
    print(f"{'lmax':>6} {'setup':>8} {'ols':>8} {'mle':>8} {'task':>8}   (CPU s, min of "
          f"{args.repeat})")
    warm = mle_covariances(sandwich_setup(fp.pixels, nside, 16, T), d, T)
    for fit in fits:  # JAX compilation of every model's Hessian and scores: not counted
        warm(fit)
    for lmax in args.lmax:
        best = np.full(3, np.inf)
        for _ in range(args.repeat):
            t0 = _cpu()
            setup = sandwich_setup(fp.pixels, nside, lmax, T)
            provider = mle_covariances(setup, d, T)
            provider(fits[0])  # the quadrature cache of the geometry: per run
            t1 = _cpu()
            data = MapData(delta=d, templates=T, pixels=fp.pixels, nside=nside, sandwich=setup)
            run_ols(data, cfg.methods, seeds.seed_sequence(master, "method", 0, 0, 0))
            t2 = _cpu()
            provider = mle_covariances(setup, d, T)
            for fit in fits:
                provider(fit)
            t3 = _cpu()
            best = np.minimum(best, [t1 - t0, t2 - t1, t3 - t2])
        print(f"{setup.geometry.lmax:>6} {best[0]:>8.2f} {best[1]:>8.2f} {best[2]:>8.2f} "
              f"{best[1] + best[2]:>8.2f}")
    if args.compare:
        setups = {lmax: sandwich_setup(fp.pixels, nside, lmax, T) for lmax in args.lmax}
        ref_setup = sandwich_setup(fp.pixels, nside, None, T)
        ratio = {lmax: [] for lmax in args.lmax}
        wald = {lmax: [] for lmax in args.lmax}
        for i in range(args.compare):
            di = null_map(i)
            coef, ref = ols_covariance(di, T, ref_setup.geometry, ref_setup.designs)
            w_ref = coef @ np.linalg.solve(ref, coef)
            for lmax, st in setups.items():
                _, cov = ols_covariance(di, T, st.geometry, st.designs)
                ratio[lmax].append(np.sqrt(np.diag(cov) / np.diag(ref)))
                wald[lmax].append(coef @ np.linalg.solve(cov, coef) / w_ref)
        print(f"\nwhite tail vs the whole band (lmax {3 * nside - 1}), OLS, {args.compare} null "
              f"mocks x {K} coefficients")
        print(f"{'lmax':>6} {'err ratio median':>17} {'min':>7} {'max':>7} {'W ratio mean':>13}")
        for lmax in args.lmax:
            r = np.array(ratio[lmax])
            print(f"{setups[lmax].geometry.lmax:>6} {np.median(r):>17.4f} {r.min():>7.4f} "
                  f"{r.max():>7.4f} {np.mean(wald[lmax]):>13.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
