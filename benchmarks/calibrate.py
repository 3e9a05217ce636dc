"""Cost constants of :mod:`hpcsys.parallel.estimate` from measured tasks (``make bench``).

Reads the JSON files of ``benchmarks/bench_task.py`` (one or more configs, e.g. paper
and quick sizes), divides each stage's measured CPU seconds by the work units the cost
model assigns to it at that config's size, and prints

* the constants (mean over the measured tasks and sizes), as a ``COST_CONSTANTS`` block
  to paste into ``hpcsys/parallel/estimate.py``;
* for every measured task: measured vs modelled CPU seconds per stage and in total,
  with the current constants and with the fitted ones (the +-30 % check).

    python benchmarks/calibrate.py MEASUREMENT.json [...]
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
PART_OF_STAGE = {"mle": "mle", "twopoint": "w(theta)"}


def _units(cfg, npix: int, const: str, stage: str) -> float:
    """Work units of ``stage`` for ``const``: the model with that constant 1, all others 0."""
    zero = dict.fromkeys(COST_CONSTANTS, 0.0)
    zero[const] = 1.0
    return stage_seconds(cfg, npix, zero)[stage]


def _measured(task: dict, stage: str) -> float | None:
    part = PART_OF_STAGE.get(stage, stage)
    return task["part_cpu"].get(part)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("measurements", nargs="+")
    args = ap.parse_args(argv)
    fits: dict[str, list[float]] = {}
    data = []
    for path in args.measurements:
        m = json.loads(Path(path).read_text())
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
        for t in repeats or tasks:
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
            parts = sum(v for k, v in t["part_cpu"].items())
            fits.setdefault("fixed", []).append(max(t["cpu"] - parts, 0.0))
    fitted = dict(COST_CONSTANTS)
    fitted.update({k: float(np.mean(v)) for k, v in fits.items()})
    print("COST_CONSTANTS = {")
    for k, v in fitted.items():
        mark = "" if k in fits else "  # not measured here: unchanged"
        print(f"    {k!r}: {v:.3g},{mark}")
    print("}")
    for path, m, cfg, npix in data:
        for t in m["tasks"]:
            print(f"\n{Path(path).name}: {t['scenario']}[{t['index']}]"
                  f"{' (repeat)' if t['repeat'] else ''}, {npix} pixels; load average "
                  f"{t['load_after']:.1f}")
            cur = stage_seconds(cfg, npix)
            new = stage_seconds(cfg, npix, fitted)
            print(f"  {'stage':<12} {'measured CPU s':>14} {'model now':>10} {'model fitted':>12}")
            for stage in cur:
                got = _measured(t, stage) if stage != "fixed" else None
                if stage == "fixed":
                    got = t["cpu"] - sum(t["part_cpu"].values())
                got_s = f"{got:14.2f}" if got is not None else f"{'-':>14}"
                print(f"  {stage:<12} {got_s} {cur[stage]:10.2f} {new[stage]:12.2f}")
            tot_c, tot_n = sum(cur.values()), sum(new.values())
            print(f"  {'total':<12} {t['cpu']:14.2f} {tot_c:10.2f} {tot_n:12.2f}   "
                  f"(model now {100 * (tot_c / t['cpu'] - 1):+.0f} %, fitted "
                  f"{100 * (tot_n / t['cpu'] - 1):+.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
