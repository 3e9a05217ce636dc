"""One task at the sizes of a config (default ``configs/paper.yaml``): per-stage wall and CPU time.

Builds (or loads from ``--cache-dir``) the run context with
:func:`hpcsys.parallel.prepare.prepare_context` and times it, then runs
:func:`hpcsys.pipeline.run_realisation` for each ``--scenario`` on one core
(``parallel.threads_per_rank = 1``), recording for every stage and every
method both the wall time and the CPU time of the process
(:func:`time.process_time`: on a shared machine the wall time includes time
spent waiting for a core, the CPU time does not). The method, MLE and w(theta)
calls are timed by wrapping the pipeline's references to them; nothing is
replaced. ``--json`` writes the numbers for :mod:`hpcsys.parallel.estimate`
(``benchmarks/calibrate.py`` turns them into cost constants).

    python benchmarks/bench_task.py [--config C] [--scenario combined] [--index 0]
                                    [--cache-dir DIR] [--set KEY=VALUE ...] [--json OUT]

The first task of a process includes JIT compilation (printed separately as
``compile``: the first task's time minus a repeat, when ``--repeat`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class _Clock:
    """Wall and CPU seconds accumulated per label."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def wrap(self, fn, label_of):
        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                label = label_of(*args, **kwargs)
                self.wall[label] += time.perf_counter() - w
                self.cpu[label] += time.process_time() - c
        return timed


def _timing_context(cfg, n_sample: int):
    """A run context whose template xi_ij is zero, timing ``n_sample`` of its TreeCorr runs.

    For timing tasks at paper size on a crowded machine without paying for the whole
    xi_ij (157 TreeCorr runs at K = 25): everything else is the real context.
    """
    import dataclasses

    import numpy as np

    from hpcsys import seeds
    from hpcsys.config import parse_config
    from hpcsys.core.pca import pca_rotation
    from hpcsys.pipeline import TemplateSet, attach_fixed_templates, prepare_run
    from hpcsys.sims.templates import draw_templates

    w0, c0 = time.perf_counter(), time.process_time()
    d = cfg.to_dict()
    d["templates"]["redraw"] = True
    ctx = prepare_run(parse_config(d))
    T = draw_templates(cfg.templates, cfg.sky.nside, ctx.footprint.pixels,
                       seeds.rng(cfg.run.master_seed, "templates"))
    K = T.shape[0]
    V = np.asarray(pca_rotation(T).V, dtype=float) if cfg.methods.pca else np.eye(K)
    base_w, base_c = time.perf_counter() - w0, time.process_time() - c0
    w1, c1 = time.perf_counter(), time.process_time()
    for i in range(n_sample):
        ctx.correlator.w_pair(T[(2 * i) % K], T[(2 * i + 1) % K])
    per_w = (time.perf_counter() - w1) / n_sample
    per_c = (time.process_time() - c1) / n_sample
    p, single = divmod(K, 2)
    n_full = p + single + p * (p - 1) + p * single
    B = cfg.twopoint.n_bins
    zero = np.zeros((B, K, K))
    # the fixed templates with their sandwich transform, as a real run's context has them
    ctx = attach_fixed_templates(dataclasses.replace(ctx, config=cfg),
                                 TemplateSet(T, V, zero, zero))
    return ctx, {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                 "cache_hit": False, "treecorr_runs": n_sample,
                 "n_pixels": int(ctx.footprint.n_pixels), "xi_sampled": n_sample,
                 "xi_runs_full": n_full, "xi_cpu_per_run": per_c, "xi_wall_per_run": per_w,
                 "base_cpu": base_c, "base_wall": base_w,
                 "cpu_full_estimate": base_c + n_full * per_c}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "paper.yaml"))
    ap.add_argument("--scenario", action="append", default=None,
                    help="scenario(s) to time (default: combined)")
    ap.add_argument("--index", type=int, default=0, help="realisation index")
    ap.add_argument("--repeat", action="store_true",
                    help="run the first scenario twice (the difference is compilation)")
    ap.add_argument("--cache-dir", default=str(REPO / "runs" / "bench_task"),
                    help="where the run context is cached (context.h5)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--xi-sample", type=int, default=0,
                    help="without a cached context: time only this many xi_ij TreeCorr runs "
                         "and leave xi_ij zero (timing-only context; 0 = the real prepare)")
    ap.add_argument("--json", default="", help="write the measurements here")
    args = ap.parse_args(argv)
    scenarios = args.scenario or ["combined"]

    from hpcsys.config import load_config

    cfg = load_config(args.config, [*args.overrides, "parallel.threads_per_rank=1"])
    from hpcsys.parallel.comm import SerialComm, node_layout
    from hpcsys.parallel.resources import configure_rank, enable_precision

    configure_rank(cfg.parallel, node_layout(SerialComm()))
    enable_precision(cfg.run.precision, cfg.parallel.compilation_cache_dir)
    import hpcsys.pipeline as pipeline
    from hpcsys.parallel.prepare import prepare_context

    load = os.getloadavg()[0]
    print(f"# bench_task: {Path(args.config).name} {' '.join(args.overrides)}; one core; "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at start")
    from hpcsys.parallel.prepare import CACHE_FILE, context_key, load_context_cache

    w0, c0 = time.perf_counter(), time.process_time()
    cached = load_context_cache(Path(args.cache_dir) / CACHE_FILE, context_key(cfg))
    if args.xi_sample and cached is None:
        ctx, prep = _timing_context(cfg, args.xi_sample)
    else:
        ctx, info = prepare_context(cfg, cache_dir=args.cache_dir, interval=60.0)
        prep = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                "cache_hit": info.cache_hit, "treecorr_runs": info.n_treecorr_runs,
                "n_pixels": int(ctx.footprint.n_pixels)}
    how = "cache hit" if prep["cache_hit"] else f"{prep['treecorr_runs']} TreeCorr runs"
    print(f"prepare: wall {prep['wall']:.1f} s, CPU {prep['cpu']:.1f} s, {how}, "
          f"{prep['n_pixels']} pixels")
    if "xi_cpu_per_run" in prep:
        print(f"  timing-only context: {prep['xi_sampled']} of {prep['xi_runs_full']} TreeCorr "
              f"runs of xi_ij measured, CPU {prep['xi_cpu_per_run']:.2f} s per run (wall "
              f"{prep['xi_wall_per_run']:.2f} s); full prepare ~{prep['cpu_full_estimate']:.0f} "
              f"CPU s. xi_ij left zero: the task's corrected w are not science values")

    clock = _Clock()
    pipeline.run_method = clock.wrap(pipeline.run_method, lambda name, *a, **k: name)
    pipeline.compare_models = clock.wrap(pipeline.compare_models, lambda *a, **k: "mle")
    pipeline.make_mock = clock.wrap(pipeline.make_mock, lambda *a, **k: "mock")
    corr = ctx.correlator
    corr.w_many = clock.wrap(corr.w_many, lambda *a, **k: "w(theta)")

    runs = [(s, False) for s in scenarios]
    if args.repeat:
        runs.insert(1, (scenarios[0], True))
    records = []
    for scenario, repeat in runs:
        clock.wall.clear()
        clock.cpu.clear()
        w, c = time.perf_counter(), time.process_time()
        res = pipeline.run_realisation(ctx, scenario, args.index)
        total_w, total_c = time.perf_counter() - w, time.process_time() - c
        rec = {"scenario": scenario, "index": args.index, "repeat": repeat,
               "wall": total_w, "cpu": total_c,
               "stage_wall": dict(zip(pipeline.STAGES, map(float, res.timings.stage_seconds))),
               "part_wall": dict(clock.wall), "part_cpu": dict(clock.cpu),
               "mcmc": {m.name: {"tau": m.diagnostics.autocorr_time,
                                 "acceptance": m.diagnostics.acceptance_fraction,
                                 "message": m.diagnostics.message}
                        for m in res.methods if m.name.startswith("MCMC")},
               "load_after": os.getloadavg()[0]}
        records.append(rec)
        tag = f"{scenario}[{args.index}]" + (" (repeat)" if repeat else "")
        print(f"\ntask {tag}: wall {total_w:.1f} s, CPU {total_c:.1f} s "
              f"(load average {rec['load_after']:.1f})")
        print(f"  {'part':<12} {'wall s':>8} {'CPU s':>8}")
        for label in sorted(clock.wall, key=lambda k: -clock.cpu[k]):
            print(f"  {label:<12} {clock.wall[label]:>8.2f} {clock.cpu[label]:>8.2f}")
        print("  stages (wall s): " + ", ".join(f"{k} {v:.2f}"
                                               for k, v in rec["stage_wall"].items()))
        for name, d in rec["mcmc"].items():
            print(f"  {name}: tau {d['tau']:.1f} steps, acceptance {d['acceptance']:.3f}")
        sys.stdout.flush()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"config": args.config, "overrides": args.overrides,
                                               "prepare": prep, "tasks": records}, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
