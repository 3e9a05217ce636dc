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
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run every analysis step; print the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="aggregated results file (results.h5)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    setup_style()
    failed = []
    try:
        res = open_results(args.results)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with res:
        for step in STEPS:
            name = step.__name__
            t0 = time.perf_counter()
            try:
                paths = step.run(res, args.out)
            except NotApplicable as exc:
                print(f"[{name}] skipped: {exc}", flush=True)
                continue
            except Exception as exc:  # report and go on with the other steps
                failed.append(name)
                print(f"[{name}] FAILED: {exc}", file=sys.stderr)
                traceback.print_exc()
                continue
            print(f"[{name}] {time.perf_counter() - t0:.1f} s: "
                  + ", ".join(p.name for p in paths), flush=True)
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
