"""Run every benchmark in turn and print their tables (``make bench``).

Each benchmark is its own script with its own options; this runner calls them
with their defaults, one after the other, so they do not compete for the cores.
Timings belong here, never in the test-suite. ``bench_task.py`` times one paper-size
task per stage (wall and CPU time) and ``calibrate.py`` turns it into the cost
constants of ``hpcsys check`` (printed, to paste into ``hpcsys/parallel/estimate.py``);
``bench_sandwich.py`` the CPU seconds of all honest (sandwich) covariances of one task. Expect tens of minutes on two
cores (the NSIDE 512 template cross-correlations in bench_sims dominate; pass
``--quick`` to skip them and the 300k-pixel cases).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    # name: (default arguments, --quick arguments)
    "bench_core.py": ([], ["--sizes", "20000", "80000"]),
    "bench_methods.py": ([], ["--npix", "20000", "80000"]),
    "bench_sims.py": ([], ["--nside", "128", "256", "512", "--skip-xi"]),
    "bench_task.py": (["--scenario", "null", "--scenario", "combined", "--xi-sample", "4",
                       "--json", str(HERE.parent / "runs" / "bench" / "paper_task.json")],
                      ["--config", str(HERE.parent / "configs" / "quick.yaml"), "--repeat",
                       "--json", str(HERE.parent / "runs" / "bench" / "quick_task.json")]),
    "calibrate.py": ([str(HERE.parent / "runs" / "bench" / "paper_task.json")],
                     [str(HERE.parent / "runs" / "bench" / "quick_task.json")]),
    "bench_jackknife.py": ([], ["--config", str(HERE.parent / "configs" / "quick.yaml")]),
    "bench_sandwich.py": ([], ["--nside", "128", "--lmax", "128", "256"]),
    "bench_parallel.py": ([], []),
    "bench_gpu.py": ([], ["--config", str(HERE.parent / "configs" / "quick.yaml")]),
}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; return the number that failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, no template xi_ij")
    ap.add_argument("names", nargs="*", help="subset of benchmark scripts to run")
    args = ap.parse_args(argv)
    failed = 0
    for name, (full, quick) in BENCHMARKS.items():
        if args.names and name not in args.names:
            continue
        cmd = [sys.executable, str(HERE / name), *(quick if args.quick else full)]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        failed += subprocess.call(cmd) != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
