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
* the paper-scale prediction (``configs/paper.yaml``): wall time, prepare time,
  broadcast time and parallel efficiency at 1, 16, 119 and 476 ranks from the
  per-stage cost model of :mod:`hpcsys.parallel.estimate` (constants measured on
  this machine at paper size by ``benchmarks/bench_task.py`` and
  ``benchmarks/calibrate.py``) and the measured bandwidth of a 2-rank broadcast
  of the run context; for one GPU node (1 GPU + 16 cores) only the host stages
  are predicted: the GPU samplers are measured by ``benchmarks/bench_gpu.py``
  on a GPU machine, never assumed.

    python benchmarks/bench_parallel.py [--config C] [--realisations N] [--out DIR] [--scaling-only]

Timings are not asserted anywhere; this script only prints them.
"""

from __future__ import annotations

import argparse
import json
import math
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
    ap.add_argument("--bcast-bandwidth", type=float, default=0.0,
                    help="bytes/s of the context broadcast (default: measured, 2 ranks)")
    ap.add_argument("--scaling-only", action="store_true",
                    help="only the paper-scale prediction (no throughput runs)")
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

    if args.scaling_only:
        paper_scaling(load_config(args.paper),
                      args.bcast_bandwidth or _measure_bcast(args.paper))
        return
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

    paper_scaling(load_config(args.paper), args.bcast_bandwidth or _measure_bcast(args.paper))


_BCAST_SCRIPT = """
import pickle, sys, time
import numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
obj = np.random.default_rng(0).standard_normal(int(sys.argv[1])) if comm.rank == 0 else None
comm.Barrier()
t = time.perf_counter()
for _ in range(3):
    comm.bcast(obj, root=0)
comm.Barrier()
if comm.rank == 0:
    print((time.perf_counter() - t) / 3)
"""


def _measure_bcast(paper: str) -> float:
    """Bytes per second of an mpi4py pickled bcast of the paper context, 2 ranks on this node."""
    cfg = load_config(paper)
    n = cfg.n_templates * estimate_cost(cfg).n_pixels * 2  # templates + xi/maps, doubles
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
    p = subprocess.run([str(BIN / "mpiexec"), "-n", "2", sys.executable, "-c", _BCAST_SCRIPT,
                        str(n)], capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        print(f"(bcast not measured: {p.stderr.strip()[-200:]}; assuming 1 GB/s)")
        return 1e9
    sec = float(p.stdout.strip().splitlines()[-1])
    bw = 8 * n / sec
    print(f"measured: pickled bcast of {8 * n / 2**20:.0f} MB between 2 ranks on this node in "
          f"{sec:.3f} s ({bw / 1e9:.2f} GB/s)")
    return bw


def paper_scaling(cfg, bcast_bw: float) -> None:
    """Predicted wall time and efficiency of a paper run at 16, 119, 476 ranks, one GPU node.

    From the calibrated per-stage model of :mod:`hpcsys.parallel.estimate` (constants
    measured on this machine at paper size, ``benchmarks/calibrate.py``): the prepare's
    TreeCorr runs shared by the ranks, a broadcast of the context (``log2 R`` hops of the
    measured bandwidth; an inter-node network is usually faster than this shared VM), the
    JAX compilation on every rank and the dynamic schedule's task phase.
    """
    e1 = estimate_cost(cfg, 1)
    nbytes = 8 * cfg.n_templates * e1.n_pixels * 2
    print()
    print(f"paper scale ({cfg.source}: NSIDE {cfg.sky.nside}, {e1.n_pixels} pixels, "
          f"K = {cfg.n_templates}, {cfg.methods.mcmc_walkers} walkers x "
          f"{cfg.methods.mcmc_steps} steps, {e1.n_tasks} tasks): per task "
          f"{e1.seconds_per_task:.0f} CPU s on one core, prepare {e1.prepare_seconds:.0f} CPU s "
          f"({e1.prepare_treecorr_runs} TreeCorr runs), context {nbytes / 2**20:.0f} MB")
    print(f"{'ranks':>6}  {'wall':>8}  {'prepare':>8}  {'bcast s':>7}  {'tasks/rank':>10}  "
          f"{'efficiency':>10}  {'core-hours':>10}")
    for R in (1, 16, 119, 476):
        e = estimate_cost(cfg, R)
        bcast = math.ceil(math.log2(R)) * nbytes / bcast_bw if R > 1 else 0.0
        wall = e.wall_seconds + bcast
        prep_wall = e.prepare_wall_seconds
        work = e.prepare_seconds + e.n_tasks * e.seconds_per_task
        eff = work / (R * wall)
        print(f"{R:>6}  {wall / 60:>7.1f}m  {prep_wall / 60:>7.1f}m  {bcast:>7.2f}  "
              f"{math.ceil(e.n_tasks / R):>10}  {eff:>10.2f}  {R * wall / 3600:>10.1f}")
    host = e1.seconds_per_task - sum(v for k, v in e1.stage_seconds.items()
                                     if k.startswith("MCMC"))
    print(f"one GPU node (1 GPU + 16 cores): the samplers on the GPU are NOT MEASURED (no GPU "
          f"in this session: benchmarks/bench_gpu.py measures them), so no wall time is "
          f"predicted; the host stages alone are {host:.0f} CPU s per task, "
          f"{e1.n_tasks * host / 16 / 3600:.1f} h for all tasks on 16 cores")


if __name__ == "__main__":
    main()
