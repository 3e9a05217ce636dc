"""Time and peak memory of the mock-sky stages; calibration of the default amplitudes.

Usage::

    python benchmarks/bench_sims.py                       # NSIDE 128, 256, 512, K = 25, kids
    python benchmarks/bench_sims.py --nside 128 --templates 5
    python benchmarks/bench_sims.py --nside 512 --calibrate 60
    python benchmarks/bench_sims.py --config configs/quick.yaml --calibrate 60

Each NSIDE runs in a fresh interpreter so that its peak resident memory
(``ru_maxrss``) is its own. Stages:

``prepare``
    footprint, spectra, Gaussian spectrum of the lognormal field, template
    draw (K GLASS maps) and the template correlation matrix xi_ij(theta)
    (:meth:`~hpcsys.measure.twopoint.PixelCorrelator.xi_matrix`), once per run.
``mock``
    one realisation: lognormal field (GLASS) and Poisson counts, combined scenario.
``w(theta)``
    the 8 correlation functions of a realisation with six methods (true,
    observed, six corrected maps), two maps per TreeCorr run.

``--calibrate N`` draws N realisations, estimates the covariance of w_true,
and prints the amplitude bias dA/sigma_A of the uncorrected w in the
additive, multiplicative and combined scenarios for the configured
amplitudes (Berlfein+24 Eqs. 25-26, forward model Eqs. 15-16), and the
amplitudes that give 0.75 sigma_A for each term (1.5 sigma_A combined).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(nside: int, K: int, footprint: str, threads: int, n_cal: int,
            skip_xi: bool = False, config: str | None = None) -> dict:
    """Benchmark one NSIDE in this process; returns a JSON-able dict.

    With ``config`` (a YAML run configuration) its sky, templates, contamination
    and twopoint sections are used instead, and ``nside, K, footprint`` are ignored.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    from hpcsys import seeds
    from hpcsys.config import load_config, parse_config
    from hpcsys.core.correction import contaminate_w
    from hpcsys.core.stats import amplitude_fit, hartlap_inverse, sample_covariance
    from hpcsys.measure.twopoint import PixelCorrelator, angular_bins
    from hpcsys.pipeline import make_mock
    from hpcsys.sims.fields import lognormal_gaussian_cl
    from hpcsys.sims.footprint import make_footprint
    from hpcsys.sims.spectra import target_cl
    from hpcsys.sims.templates import draw_templates

    if config:
        cfg = load_config(config, [f"twopoint.n_threads={threads}"])
        nside, K, footprint = cfg.sky.nside, cfg.templates.n_templates, cfg.sky.footprint
    else:
        cfg = parse_config({"sky": {"nside": nside, "footprint": footprint},
                            "templates": {"n_templates": K},
                            "twopoint": {"n_threads": threads},
                            "methods": {"mcmc_walkers": 4 * (2 * K + 1)}})
    out: dict = {"nside": nside, "K": K, "footprint": footprint, "threads": threads}
    t = time.perf_counter()
    fp = make_footprint(footprint, nside, cap_radius_deg=cfg.sky.cap_radius_deg,
                        mask_file=cfg.sky.mask_file)
    gl = lognormal_gaussian_cl(target_cl(cfg.sky.spectrum, cfg.sky.galaxy_bias, 3 * nside - 1))
    out["npix"] = fp.n_pixels
    out["spectra_s"] = time.perf_counter() - t
    t = time.perf_counter()
    T = draw_templates(cfg.templates, nside, fp.pixels, seeds.rng(cfg.run.master_seed, "templates"))
    out["templates_s"] = time.perf_counter() - t
    tp = cfg.twopoint
    corr = PixelCorrelator(nside, fp.pixels, angular_bins(nside, tp.theta_min_arcmin,
                           tp.theta_max_arcmin, tp.n_bins, tp.bin_slop), tp.n_threads)
    t, c = time.perf_counter(), time.process_time()
    xi = np.zeros((tp.n_bins, K, K)) if skip_xi else corr.xi_matrix(T)
    out["xi_matrix_s"] = float("nan") if skip_xi else time.perf_counter() - t
    out["xi_matrix_cpu_s"] = float("nan") if skip_xi else time.process_time() - c

    # a RunContext without redoing the expensive parts
    from hpcsys.pipeline import RunContext, TemplateSet
    from hpcsys.sims.mock import mean_count_per_pixel
    from hpcsys.sims.templates import correlation_matrix, template_names
    from hpcsys.sims.truth import draw_truth

    ctx = RunContext(
        config=cfg, footprint=fp, target_cl=np.empty(0), gaussian_cl=gl,
        nbar_pixel=mean_count_per_pixel(cfg.sky.number_density, nside),
        template_names=template_names(cfg.templates), correlation=correlation_matrix(cfg.templates),
        truth=draw_truth(cfg.contamination, K, seeds.rng(cfg.run.master_seed, "truth")),
        correlator=corr, fixed=TemplateSet(T, np.eye(K), xi, xi), prepare_seconds=0.0,
    )
    t, c = time.perf_counter(), time.process_time()
    mock = make_mock(ctx, "combined", 0)
    out["mock_s"] = time.perf_counter() - t
    out["mock_cpu_s"] = time.process_time() - c
    maps = np.stack([mock.delta_true, mock.delta_obs]
                    + [mock.delta_obs - 0.01 * (i + 1) * T[i % K] for i in range(6)])
    t, c = time.perf_counter(), time.process_time()
    corr.w_many(maps)
    out["w8_s"] = time.perf_counter() - t
    out["w8_cpu_s"] = time.process_time() - c
    out["peak_mb"] = _rss_mb()

    if n_cal:
        w_true = []
        for i in range(n_cal):
            m = make_mock(ctx, "null", 1000 + i)
            w_true.append(corr.w(m.delta_true))
        w_true = np.array(w_true)
        cov_inv = np.asarray(hartlap_inverse(np.asarray(sample_covariance(w_true)), n_cal))
        w_ref = w_true.mean(0)
        a, b = ctx.truth.a, ctx.truth.b
        zero = np.zeros(K)
        sig = float(amplitude_fit(w_ref, w_ref, cov_inv).sigma_A)
        res = {}
        for name, (aa, bb) in {"additive": (a, zero), "multiplicative": (zero, b),
                               "combined": (a, b)}.items():
            w_c = np.asarray(contaminate_w(w_ref, aa, bb, xi))
            res[name] = (float(amplitude_fit(w_c, w_ref, cov_inv).A) - 1.0) / sig
        amp = cfg.contamination
        out["calibration"] = {
            "n_realisations": n_cal, "sigma_A": sig, "dA_over_sigma": res,
            "additive_amplitude": amp.additive_amplitude,
            "multiplicative_amplitude": amp.multiplicative_amplitude,
            "additive_amplitude_for_0.75sigma":
                amp.additive_amplitude * np.sqrt(0.75 / abs(res["additive"])),
            "multiplicative_amplitude_for_0.75sigma":
                amp.multiplicative_amplitude * np.sqrt(0.75 / abs(res["multiplicative"])),
            "theta_arcmin": corr.theta_arcmin.tolist(), "w_ref": w_ref.tolist(),
        }
        out["peak_mb"] = _rss_mb()
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark table (each NSIDE in a fresh process)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nside", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--templates", type=int, default=25)
    ap.add_argument("--footprint", default="kids")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calibrate", type=int, default=0, metavar="N",
                    help="also calibrate amplitudes with N realisations (largest NSIDE only)")
    ap.add_argument("--skip-xi", action="store_true",
                    help="skip the template xi_ij matrix (the slow once-per-run stage)")
    ap.add_argument("--config", default=None, metavar="YAML",
                    help="take sky, templates, contamination and twopoint from a run config "
                         "(one NSIDE: the config's); e.g. configs/quick.yaml")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_one(args.nside[0], args.templates, args.footprint, args.threads,
                                 args.calibrate, args.skip_xi, args.config)))
        return
    rows = []
    for nside in args.nside[:1] if args.config else args.nside:
        cal = args.calibrate if args.config or nside == max(args.nside) else 0
        cmd = [sys.executable, __file__, "--worker", "--nside", str(nside), "--templates",
               str(args.templates), "--footprint", args.footprint, "--threads",
               str(args.threads), "--calibrate", str(cal)] + (["--skip-xi"] if args.skip_xi else [])
        cmd += ["--config", args.config] if args.config else []
        res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"footprint {rows[0]['footprint']}, K = {rows[0]['K']}, TreeCorr threads = {args.threads}; "
          "seconds (wall, and CPU of this process for xi_ij, mock, w)")
    head = ("NSIDE", "Npix", "spectra", "templates", "xi_ij", "xi_ij CPU", "mock", "mock CPU",
            "8 x w", "8xw CPU", "mock+w", "peak MB")
    print("  ".join(f"{h:>9}" for h in head))
    for r in rows:
        vals = (r["nside"], r["npix"], r["spectra_s"], r["templates_s"], r["xi_matrix_s"],
                r["xi_matrix_cpu_s"], r["mock_s"], r["mock_cpu_s"], r["w8_s"], r["w8_cpu_s"],
                r["mock_s"] + r["w8_s"], r["peak_mb"])
        print("  ".join(f"{v:>9}" if isinstance(v, int) else f"{v:>9.2f}" for v in vals))
    for r in rows:
        if "calibration" in r:
            print(json.dumps(r["calibration"], indent=1))


if __name__ == "__main__":
    main()
