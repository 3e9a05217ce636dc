"""Run every benchmark in turn and print their tables (``make bench``).

Each benchmark is its own script with its own options; this runner calls them
with their defaults, one after the other, so they do not compete for the cores.
Timings belong here, never in the test-suite. Expect tens of minutes on two
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
    "bench_parallel.py": ([], []),
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
