"""Parallel throughput of ``hpcsys run``: realisations per hour on 1 and 2 ranks.

Runs a config (default ``configs/quick.yaml`` with fewer realisations) as a user
would, each rank on one core (``parallel.threads_per_rank=1``; the serial run is
pinned with ``taskset``), after a warm-up run that fills the JAX compilation
cache, and reads the task-phase wall time each run records in
``RUN_DIR/run_info.json``. Prints

* realisations per hour for 1 rank and for 2 ranks under the ``dynamic`` and
  ``cyclic`` schedules, and the parallel efficiency
  ``throughput(2) / (2 x throughput(1))`` (target >= 0.85);
* the measured mean time of each stage of one realisation;
* a paper-scale estimate (``configs/paper.yaml``): CPU core-seconds per
  realisation, each measured stage scaled by its own complexity (pixels x
  walker-steps x parameters for the samplers, pixels x parameters^2 for the
  MLE fits, N log N for w(theta)), and per GPU, where the two samplers' batched
  likelihood runs at ``--gpu-tflops`` sustained float64 TFLOP/s plus
  ``--gpu-step-ms`` latency per half-ensemble update, and the rest
  stays on 8 host cores at the measured speed (an assumption: no GPU was
  measured).

    python benchmarks/bench_parallel.py [--config C] [--realisations N] [--out DIR]

Timings are not asserted anywhere; this script only prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hpcsys.config import load_config
from hpcsys.io import open_results
from hpcsys.parallel.estimate import estimate_cost

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(config: Path, out: Path, ranks: int, overrides: list[str], cache: Path) -> dict:
    sets = [*overrides, f"run.output_dir={out}", "parallel.threads_per_rank=1",
            f"parallel.compilation_cache_dir={cache}"]
    cmd = [sys.executable, "-m", "hpcsys", "run", str(config)]
    for s in sets:
        cmd += ["--set", s]
    if ranks == 1:
        cmd = ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd
    else:
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"bench_parallel: run failed ({' '.join(cmd)}):\n{p.stderr[-3000:]}")
    info = json.loads((out / "run_info.json").read_text())
    info["wall_seconds"] = wall
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "quick.yaml"))
    ap.add_argument("--realisations", type=int, default=6,
                    help="realisations per scenario in each timed run")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_parallel"))
    ap.add_argument("--gpu-tflops", type=float, default=10.0,
                    help="sustained float64 TFLOP/s assumed for the GPU likelihood")
    ap.add_argument("--gpu-step-ms", type=float, default=1.0,
                    help="assumed GPU latency per half-ensemble update of a sampler (ms)")
    ap.add_argument("--paper", default=str(REPO / "configs" / "paper.yaml"))
    ap.add_argument("--cache", default=str(REPO / "runs" / ".jax_cache"),
                    help="JAX compilation cache shared with the runs")
    ap.add_argument("--report-only", action="store_true",
                    help="re-print the tables of runs already in --out")
    args = ap.parse_args(argv)
    config = Path(args.config)
    out = Path(args.out)
    cache = Path(args.cache)
    over = [f"run.n_realisations={args.realisations}"]

    print(f"# bench_parallel: {config.name}, {args.realisations} realisations x scenarios, "
          f"{os.cpu_count()} CPUs")
    if not args.report_only:
        _run(config, out / "warmup", 1, ["run.n_realisations=1"], cache)  # fill the cache
    rows = []
    for ranks, schedule in ((1, "dynamic"), (2, "dynamic"), (2, "cyclic")):
        if args.report_only:
            info = json.loads((out / f"r{ranks}-{schedule}" / "run_info.json").read_text())
            info["wall_seconds"] = float("nan")
        else:
            info = _run(config, out / f"r{ranks}-{schedule}", ranks,
                        [*over, f"parallel.distribution={schedule}"], cache)
        n = info["n_tasks_run"]
        phase = info["task_phase_seconds"]
        thr = n / phase * 3600.0
        busy = np.mean([r["busy_seconds"] for r in info["ranks"]]) / phase
        per_task = sum(r["busy_seconds"] for r in info["ranks"]) / n
        rows.append((ranks, schedule, n, phase, info["wall_seconds"], thr, busy, per_task))
    thr1 = rows[0][5]
    print()
    print("efficiency = throughput(R) / (R x throughput(1)); busy = mean fraction of the task")
    print("phase a rank spends in tasks (1 - scheduling and communication losses)")
    print(f"{'ranks':>5}  {'schedule':<8}  {'tasks':>5}  {'task phase s':>12}  "
          f"{'wall s':>7}  {'s/task':>6}  {'real./hour':>10}  {'efficiency':>10}  {'busy':>5}")
    for ranks, schedule, n, phase, wall, thr, busy, per_task in rows:
        eff = thr / (ranks * thr1)
        print(f"{ranks:>5}  {schedule:<8}  {n:>5}  {phase:>12.1f}  {wall:>7.1f}  {per_task:>6.2f}  "
              f"{thr:>10.0f}  {eff:>10.2f}  {busy:>5.2f}")
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    # measured stage times of one realisation (1-rank run)
    with open_results(out / "r1-dynamic" / "results.h5") as res:
        stages = res.stages
        st = np.concatenate([res.scenario(s).timings.stage_seconds for s in res.scenarios])
        mwall = {m: np.concatenate([res.scenario(s).methods[m].wall_time
                                    for s in res.scenarios]) for m in res.method_names}
    mean = st.mean(axis=0)
    print()
    print("mean seconds per realisation, one core: " + ", ".join(
        f"{s} {v:.2f}" for s, v in zip(stages, mean)))
    print("  methods: " + ", ".join(f"{m} {np.mean(v):.2f}" for m, v in mwall.items()))

    # paper-scale extrapolation: each measured stage scaled by its own complexity
    bench_cfg = load_config(config, over)
    paper_cfg = load_config(args.paper)
    e_b, e_p = estimate_cost(bench_cfg), estimate_cost(paper_cfg)
    mb, mp = bench_cfg.methods, paper_cfg.methods
    Kb, Kp = bench_cfg.n_templates, paper_cfg.n_templates
    r_pix = e_p.n_pixels / e_b.n_pixels
    r_steps = (mp.mcmc_walkers * mp.mcmc_steps) / (mb.mcmc_walkers * mb.mcmc_steps)
    s = dict(zip(stages, mean))
    mcmc_p = 0.0
    for name, P in (("MCMC-add", lambda K: K + 2), ("MCMC-comb", lambda K: 2 * K + 2)):
        if name in mwall:
            mcmc_p += float(np.mean(mwall[name])) * r_pix * r_steps * P(Kp) / P(Kb)
    mcmc_b = sum(float(np.mean(mwall[n])) for n in ("MCMC-add", "MCMC-comb") if n in mwall)
    other_methods_p = (s["methods"] - mcmc_b) * r_pix * Kp / Kb
    mle_p = s["mle"] * r_pix * ((2 * Kp + 2) / (2 * Kb + 2)) ** 2
    tc_p = s["twopoint"] * r_pix * np.log(e_p.n_pixels) / np.log(e_b.n_pixels)
    mock_p = s["mock"] * r_pix
    cpu_s = mcmc_p + other_methods_p + mle_p + tc_p + mock_p
    npix, m = e_p.n_pixels, mp
    # one walker-step: (P x Npix) template product + ~10 flops per pixel for the likelihood
    flops = 2.0 * npix * m.mcmc_walkers * m.mcmc_steps * ((Kp + 1 + 10) + (2 * Kp + 1 + 10))
    # plus a fixed latency per half-ensemble update (kernel launches, host sync) per sampler
    gpu_mcmc = flops / (args.gpu_tflops * 1e12) + 2 * 2 * m.mcmc_steps * args.gpu_step_ms / 1e3
    cores_per_gpu = 8
    rest = (cpu_s - mcmc_p) / cores_per_gpu
    per_gpu = gpu_mcmc + rest
    n_tasks = e_p.n_tasks
    print()
    print(f"paper scale ({Path(args.paper).name}: NSIDE {paper_cfg.sky.nside}, {npix} pixels, "
          f"K = {Kp}, {m.mcmc_walkers} walkers x {m.mcmc_steps} steps, {n_tasks} tasks), "
          f"measured stages scaled by pixels x walker-steps x parameters:")
    print(f"  CPU: {cpu_s:.0f} core-s per realisation (MCMC {mcmc_p:.0f}, other methods "
          f"{other_methods_p:.0f}, MLE {mle_p:.0f}, w(theta) {tc_p:.0f}, mock {mock_p:.0f}); "
          f"{n_tasks * cpu_s / 3600:.0f} core-hours in all (cost model of hpcsys check: "
          f"{e_p.core_hours:.0f})")
    print(f"  per GPU (samplers at {args.gpu_tflops:g} TFLOP/s float64 + {args.gpu_step_ms:g} ms "
          f"per half-step: {gpu_mcmc:.1f} s; "
          f"the rest on {cores_per_gpu} host cores: {rest:.0f} s): ~{per_gpu:.0f} s per "
          f"realisation, {3600 / per_gpu:.0f} realisations per GPU-hour, "
          f"{n_tasks * per_gpu / 3600:.1f} GPU-hours for the whole run")

if __name__ == "__main__":
    main()
