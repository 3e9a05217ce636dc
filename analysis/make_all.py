"""Every table and figure of a run: ``python analysis/make_all.py RUN/results.h5 --out DIR``.

Runs, on one open results file, the scripts of this directory in order:
tables (``table2``, ``table3``), figures from the stored measurements
(``fig_wtheta``, ``fig_lrt``, ``fig_bias``, ``fig_pulls``), figures that
regenerate maps from the stored configuration (``fig_templates``,
``fig_pixel_histogram``, ``fig_population``) and last the validation summary
(``validation``), which quotes the population slope. A failing step is
reported and the others still run; the exit status is 1 if any failed. A step
that does not apply to the run (e.g. the population view with a single
realisation) is skipped with a note.

``--jobs N`` (default: the CPUs this process may use, at most 4) runs the
steps before ``validation`` in N worker processes, each opening the results
file read-only; the outputs are the same files as with ``--jobs 1``, and the
steps are reported in the order above.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import fig_bias
import fig_lrt
import fig_pixel_histogram
import fig_population
import fig_pulls
import fig_templates
import fig_wtheta
import table2
import table3
import validation
from _common import NotApplicable, setup_style

from hpcsys.io import open_results

STEPS = (table2, table3, fig_wtheta, fig_lrt, fig_bias, fig_pulls, fig_templates,
         fig_pixel_histogram, fig_population, validation)
#: Steps that read what earlier steps wrote: run after the others, in this process.
LAST = (validation,)
_BY_NAME = {step.__name__: step for step in STEPS}


def _default_jobs() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _run_step(name: str, results: Path | None, out: Path, res=None) -> tuple[str, str, float]:
    """Run one step; ``(status, text, seconds)``: status ok (text: the files written),
    skipped (the reason) or failed (the traceback). Opens ``results`` unless given ``res``."""
    t0 = time.perf_counter()
    try:
        if res is None:
            setup_style()
            with open_results(results) as opened:
                paths = _BY_NAME[name].run(opened, out)
        else:
            paths = _BY_NAME[name].run(res, out)
    except NotApplicable as exc:
        return "skipped", str(exc), time.perf_counter() - t0
    except Exception:  # report and go on with the other steps
        return "failed", traceback.format_exc(), time.perf_counter() - t0
    return "ok", ", ".join(p.name for p in paths), time.perf_counter() - t0


def _report(name: str, status: str, text: str, seconds: float, failed: list[str]) -> None:
    if status == "skipped":
        print(f"[{name}] skipped: {text}", flush=True)
    elif status == "failed":
        failed.append(name)
        print(f"[{name}] FAILED:\n{text}", file=sys.stderr, flush=True)
    else:
        print(f"[{name}] {seconds:.1f} s: {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every analysis step; print the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="aggregated results file (results.h5)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--jobs", type=int, default=_default_jobs(),
                        help="worker processes for the steps (default: the usable CPUs, "
                             "at most 4; 1: all in this process)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        print(f"error: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    setup_style()
    failed: list[str] = []
    try:
        res = open_results(args.results)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    first = [step.__name__ for step in STEPS if step not in LAST]
    with res:
        if args.jobs == 1:
            for name in first:
                _report(name, *_run_step(name, None, args.out, res), failed)
        else:
            # spawn, not fork: the parent may hold JAX's threads
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(args.jobs, len(first)), mp_context=ctx) as pool:
                futures = [pool.submit(_run_step, name, args.results, args.out)
                           for name in first]
                for name, fut in zip(first, futures):
                    _report(name, *fut.result(), failed)
        for step in LAST:
            _report(step.__name__, *_run_step(step.__name__, None, args.out, res), failed)
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
