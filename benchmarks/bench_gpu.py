"""One paper-settings task with the device-resident sampler on the GPU, the CPU stages beside it.

Builds the map of one task (default ``configs/paper.yaml``, scenario ``combined``,
realisation 0; the run context from ``--cache-dir`` when cached, else a
timing-only context as in ``benchmarks/bench_task.py``), then

* runs MCMC-add and MCMC-comb with ``methods.mcmc_backend = jax`` (the whole
  chain one compiled program) on the GPU, when JAX sees one, and on one CPU
  core, timing each (wall; CPU time for the CPU run; a first call compiles,
  so each sampler is timed on a second call with the compiled program);
* times the stages that stay on the host (mock, OLS, ElasticNet, ISD, MLE
  fits, w(theta)) on one core;
* checks that the GPU and CPU posteriors agree within Monte Carlo error: for
  every parameter, ``|mean_gpu - mean_cpu| < 5 sqrt(var_gpu/ESS_gpu + var_cpu/ESS_cpu)``
  with the effective sample sizes of the chains (different devices draw
  different random numbers: the two are independent chains of the same posterior).

Without a GPU it says so, runs the CPU part only and leaves the GPU row
unmeasured (nothing is estimated).

    python benchmarks/bench_gpu.py [--config C] [--scenario S] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def _gpu_devices():
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


def _agree(a, b) -> tuple[bool, float]:
    """Posterior means of (a, b, s) agree within Monte Carlo error; the largest z."""
    za = []
    for name in ("a", "b"):
        ma, mb = getattr(a, f"{name}_mean"), getattr(b, f"{name}_mean")
        if ma is None or mb is None or np.size(ma) == 0:
            continue
        sa, sb = getattr(a, f"{name}_std"), getattr(b, f"{name}_std")
        ess_a, ess_b = a.diagnostics.effective_samples, b.diagnostics.effective_samples
        err = np.sqrt(sa**2 / ess_a + sb**2 / ess_b)
        za.append(np.abs(ma - mb) / err)
    z = float(np.max(np.concatenate(za)))
    return z < 5.0, z


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "paper.yaml"))
    ap.add_argument("--scenario", default="combined")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--cache-dir", default=str(REPO / "runs" / "bench_task"))
    ap.add_argument("--xi-sample", type=int, default=2,
                    help="TreeCorr runs of xi_ij to time when the context is not cached")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args(argv)

    from hpcsys.config import METHOD_NAMES, SCENARIOS, load_config

    cfg = load_config(args.config, [*args.overrides, "parallel.threads_per_rank=1",
                                    "methods.mcmc_backend=jax"])
    from hpcsys.parallel.comm import SerialComm, node_layout
    from hpcsys.parallel.resources import configure_rank, enable_precision

    configure_rank(cfg.parallel, node_layout(SerialComm()))
    enable_precision(cfg.run.precision, cfg.parallel.compilation_cache_dir)
    import jax

    from hpcsys import seeds
    from hpcsys.core.fit import fit_mle
    from hpcsys.methods import MapData, run_method
    from hpcsys.parallel.prepare import (
        CACHE_FILE,
        context_key,
        load_context_cache,
        prepare_context,
    )
    from hpcsys.pipeline import FIT_MODELS, make_mock

    gpus = _gpu_devices()
    print(f"# bench_gpu: {Path(args.config).name} {' '.join(args.overrides)}, task "
          f"{args.scenario}[{args.index}]; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    if gpus:
        print(f"GPU: {gpus[0].device_kind} ({len(gpus)} visible)")
    else:
        print("GPU: none visible to JAX (jax.devices(): "
              f"{', '.join(sorted({d.platform for d in jax.devices()}))}); the GPU row is "
              "not measured")
    if load_context_cache(Path(args.cache_dir) / CACHE_FILE, context_key(cfg)) is None \
            and args.xi_sample:
        from bench_task import _timing_context

        ctx, _ = _timing_context(cfg, args.xi_sample)
    else:
        ctx, _ = prepare_context(cfg, cache_dir=args.cache_dir)
    cpu = jax.devices("cpu")[0]
    rows: list[tuple[str, str, float, float]] = []

    with jax.default_device(cpu):
        tset = ctx.templates_for(args.index)
        mock, w, c = _timed(make_mock, ctx, args.scenario, args.index, tset)
        rows.append(("mock", "cpu", w, c))
        data = MapData(delta=mock.delta_obs, templates=tset.templates,
                       pixels=ctx.footprint.pixels, nside=cfg.sky.nside, names=ctx.template_names)
        s_idx = SCENARIOS.index(args.scenario)

        def seed(name):
            return seeds.seed_sequence(cfg.run.master_seed, "method", s_idx, args.index,
                                       METHOD_NAMES.index(name))

        for name in cfg.methods.names:
            if not name.startswith("MCMC"):
                _, w, c = _timed(run_method, name, data, cfg.methods, seed(name))
                rows.append((name, "cpu", w, c))

        def mle_all():
            for model in FIT_MODELS:
                for lik in cfg.methods.likelihoods:
                    fit_mle(mock.delta_obs, tset.templates, model, lik,
                            max_iter=cfg.methods.mle_max_iter, tol=cfg.methods.mle_tol)

        mle_all()  # compiles the Newton kernels (part of the first task of a rank)
        _, w, c = _timed(mle_all)
        rows.append(("MLE fits", "cpu", w, c))
        maps = np.stack([mock.delta_true, mock.delta_obs, *([mock.delta_obs] * len(
            cfg.methods.names))])
        _, w, c = _timed(ctx.correlator.w_many, maps)
        rows.append(("w(theta)", "cpu", w, c))

    samplers = [n for n in ("MCMC-add", "MCMC-comb") if n in cfg.methods.names]
    results: dict[tuple[str, str], object] = {}
    for device in ([("gpu", gpus[0])] if gpus else []) + [("cpu", cpu)]:
        with jax.default_device(device[1]):
            for name in samplers:
                # the first call compiles; time the second (the program is cached)
                short = dataclasses.replace(cfg.methods, mcmc_steps=cfg.methods.mcmc_burn_in + 2)
                run_method(name, data, short, seed(name))
                res, w, c = _timed(run_method, name, data, cfg.methods, seed(name))
                results[(name, device[0])] = res
                rows.append((name, device[0], w, c))
    if not gpus:
        for name in samplers:
            rows.append((name, "gpu", float("nan"), float("nan")))

    print(f"\n{'stage':<12} {'device':<6} {'wall s':>8} {'CPU s':>8}")
    for stage, dev, w, c in rows:
        wt = "not measured (no GPU)" if dev == "gpu" and not gpus else f"{w:8.2f} {c:8.2f}"
        print(f"{stage:<12} {dev:<6} {wt}")
    host = sum(w for s, d, w, _ in rows if d == "cpu" and not s.startswith("MCMC"))
    print(f"host stages (one core): {host:.1f} s wall")
    ok = True
    if gpus:
        for name in samplers:
            agree, z = _agree(results[(name, "gpu")], results[(name, "cpu")])
            ok &= agree
            print(f"{name}: GPU vs CPU posterior means, max |z| = {z:.2f} "
                  f"({'agree' if agree else 'DISAGREE'} within Monte Carlo error, |z| < 5)")
    else:
        print("GPU vs CPU agreement: not checked (no GPU)")
    for name in samplers:
        d = results[(name, "cpu")].diagnostics
        print(f"{name} on CPU: tau {d.autocorr_time:.1f} steps, ESS {d.effective_samples:.0f}, "
              f"acceptance {d.acceptance_fraction:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
