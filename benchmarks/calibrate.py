"""Cost constants of :mod:`hpcsys.parallel.estimate` from measured tasks (``make bench``).

Reads the JSON files of ``benchmarks/bench_task.py`` (one or more configs, e.g. paper
and quick sizes), divides each stage's measured CPU seconds by the work units the cost
model assigns to it at that config's size, and prints

* the constants (mean over the measured tasks and sizes), as a ``COST_CONSTANTS`` block
  to paste into ``hpcsys/parallel/estimate.py``;
* for every measured task: measured vs modelled CPU seconds per stage and in total,
  with the current constants and with the fitted ones (the +-30 % check).

    python benchmarks/calibrate.py MEASUREMENT.json [...]
    python benchmarks/calibrate.py --run RUN_DIR [--held-out INDEX ...]

``--run`` reads a finished (or running) ``hpcsys run`` directory instead: each task
file's stage times and per-method wall times (one thread per rank, so wall = CPU of
a core that the rank had to itself, shared caches and memory included). The first
task of each rank carries the JAX compilation and is reported, not fitted.
``--held-out`` keeps those realisation indices out of the fit, so the check of the
model against them is out of sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hpcsys.config import load_config
from hpcsys.parallel.estimate import COST_CONSTANTS, stage_seconds

#: stage of the cost model -> the constant it calibrates
STAGE_CONSTANT = {"mock": "c_mock", "OLS": "c_ols", "ElasticNet": "c_en", "ISD-1": "c_isd",
                  "ISD-3": "c_isd", "MCMC-add": "c_step", "MCMC-comb": "c_comb",
                  "mle": "c_mle", "twopoint": "c_tc"}
STAGE_CONSTANT["jackknife"] = "c_jk"
PART_OF_STAGE = {"mle": "mle", "twopoint": "w(theta)"}


def _units(cfg, npix: int, const: str, stage: str) -> float:
    """Work units of ``stage`` for ``const``: the model with that constant 1, all others 0."""
    zero = dict.fromkeys(COST_CONSTANTS, 0.0)
    zero[const] = 1.0
    return stage_seconds(cfg, npix, zero)[stage]


def _measured(task: dict, stage: str) -> float | None:
    part = PART_OF_STAGE.get(stage, stage)
    got = task["part_cpu"].get(part)
    if got is None and stage == "jackknife":  # a pipeline stage, not a wrapped call
        got = task.get("stage_wall", {}).get("jackknife")
    return got


def _unmodelled(task: dict) -> float:
    """Task time outside every modelled part (bookkeeping, sandwich setup, the task file)."""
    jk = task.get("stage_wall", {}).get("jackknife", 0.0)
    return task["cpu"] - sum(task["part_cpu"].values()) - jk


def _from_run(run_dir: Path) -> dict:
    """The measurements of a run directory in bench_task's JSON layout."""
    import h5py

    from hpcsys.io import read_task
    from hpcsys.pipeline import STAGES, RealisationResult
    from hpcsys.sims.footprint import make_footprint

    cfg_file = run_dir / "config.yaml"
    cfg = load_config(cfg_file)
    sky = cfg.sky
    npix = make_footprint(sky.footprint, sky.nside, cap_radius_deg=sky.cap_radius_deg,
                          mask_file=sky.mask_file).n_pixels
    files = sorted((p for s in cfg.run.scenarios for p in (run_dir / "tasks" / s).glob("*.h5")),
                   key=lambda p: p.stat().st_mtime)
    seen_rank: set[int] = set()
    tasks = []
    for p in files:
        res = read_task(p, RealisationResult)
        with h5py.File(p, "r") as f:
            rank = int(f.attrs["rank"])
        stage = dict(zip(STAGES, map(float, res.timings.stage_seconds)))
        parts = {m.name: float(m.diagnostics.wall_time) for m in res.methods}
        parts.update({"mle": stage["mle"], "w(theta)": stage["twopoint"], "mock": stage["mock"]})
        tasks.append({"scenario": res.scenario, "index": res.index,
                      "repeat": rank in seen_rank, "cpu": stage["total"],
                      "stage_wall": stage, "part_cpu": parts, "load_after": float("nan")})
        seen_rank.add(rank)
    return {"config": str(cfg_file), "overrides": [], "prepare": {"n_pixels": npix},
            "tasks": tasks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("measurements", nargs="*")
    ap.add_argument("--run", action="append", default=[], help="a run directory")
    ap.add_argument("--held-out", type=int, nargs="*", default=[],
                    help="realisation indices of --run kept out of the fit")
    args = ap.parse_args(argv)
    fits: dict[str, list[float]] = {}
    data = []
    sources = [(p, json.loads(Path(p).read_text())) for p in args.measurements]
    sources += [(d, _from_run(Path(d))) for d in args.run]
    if not sources:
        ap.error("give bench_task JSON files or --run RUN_DIR")
    held = set(args.held_out)
    for path, m in sources:
        cfg = load_config(m["config"], m["overrides"])
        npix = int(m["prepare"]["n_pixels"])
        data.append((path, m, cfg, npix))
        prep = m["prepare"]
        if "xi_cpu_per_run" in prep:
            fits.setdefault("c_tc_xi", []).append(prep["xi_cpu_per_run"] / npix)
            fits.setdefault("prep_base", []).append(prep["base_cpu"] / (12 * cfg.sky.nside**2))
        tasks = [t for t in m["tasks"] if not t["repeat"]]
        first = m["tasks"][0]
        repeats = [t for t in m["tasks"] if t["repeat"]]
        if repeats:
            fits.setdefault("compile", []).append(max(0.0, first["cpu"] - repeats[0]["cpu"]))
        for t in [t for t in repeats or tasks if t["index"] not in held]:
            S = cfg.methods.mcmc_steps
            c_step = COST_CONSTANTS["c_step"]
            if "MCMC-add" in t["part_cpu"]:  # O(K^2) per walker: per-step cost dominates
                c_step = t["part_cpu"]["MCMC-add"] / S
                fits.setdefault("c_step", []).append(c_step)
            for stage, const in STAGE_CONSTANT.items():
                if stage == "MCMC-add":
                    continue
                got = _measured(t, stage)
                if got is None:
                    continue
                if stage == "MCMC-comb":
                    got -= S * c_step
                units = _units(cfg, npix, const, stage)
                if units > 0:
                    fits.setdefault(const, []).append(max(got, 0.0) / units)
            fits.setdefault("fixed", []).append(max(_unmodelled(t), 0.0))
    fitted = dict(COST_CONSTANTS)
    fitted.update({k: float(np.mean(v)) for k, v in fits.items()})
    print("COST_CONSTANTS = {")
    for k, v in fitted.items():
        mark = "" if k in fits else "  # not measured here: unchanged"
        print(f"    {k!r}: {v:.3g},{mark}")
    print("}")
    for path, m, cfg, npix in data:
        for t in m["tasks"]:
            tag = " (held out)" if t["index"] in held else ""
            print(f"\n{Path(path).name}: {t['scenario']}[{t['index']}]"
                  f"{' (repeat)' if t['repeat'] else ' (first: compiles)'}{tag}, {npix} "
                  f"pixels; load average {t['load_after']:.1f}")
            cur = stage_seconds(cfg, npix)
            new = stage_seconds(cfg, npix, fitted)
            print(f"  {'stage':<12} {'measured CPU s':>14} {'model now':>10} {'model fitted':>12}")
            for stage in cur:
                got = _measured(t, stage) if stage != "fixed" else None
                if stage == "fixed":
                    got = _unmodelled(t)
                got_s = f"{got:14.2f}" if got is not None else f"{'-':>14}"
                print(f"  {stage:<12} {got_s} {cur[stage]:10.2f} {new[stage]:12.2f}")
            tot_c, tot_n = sum(cur.values()), sum(new.values())
            print(f"  {'total':<12} {t['cpu']:14.2f} {tot_c:10.2f} {tot_n:12.2f}   "
                  f"(model now {100 * (tot_c / t['cpu'] - 1):+.0f} %, fitted "
                  f"{100 * (tot_n / t['cpu'] - 1):+.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
