"""Compare a schema-1 results.h5 with a schema-2 one, dataset by dataset.

Every dataset of the old file is mapped to its place in the new layout: the
renamed paths are listed explicitly in :data:`RENAMES` (applied in order,
first match wins); every other path is expected unchanged. An old dataset with
no counterpart in the new file fails the comparison (nothing is skipped
silently), and so does a new numerical dataset that no old one maps onto,
apart from the new dimension-scale datasets listed in :data:`NEW_ONLY`.

Values must be equal exactly (NaN equal to NaN, same dtype and shape), except
for the datasets matching a ``--rtol PATTERN=RTOL`` option, which are compared
with that relative tolerance (use it only where a restructure legitimately
reassociates floating point, and say why). Timings, memory, host and
provenance data are exempt (:data:`EXEMPT`): they differ between any two runs.

Usage::

    python benchmarks/compare_results.py OLD.h5 NEW.h5 [--rtol 'mle/a_err=1e-12']

Prints one row per dataset (status, max |a - b|, max |a - b| / |a|) and exits
with status 1 on any mismatch or missing dataset.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from typing import Any

import h5py
import numpy as np

#: Old path (regular expression over the whole path) -> new path, in order.
RENAMES: tuple[tuple[str, str], ...] = (
    # method diagnostics: flat in methods/<name>/ -> methods/<name>/diagnostics/
    (r"^(scenarios/[^/]+/methods/[^/]+)/(converged|n_iterations|acceptance_fraction|"
     r"autocorr_time|effective_samples|hit_pole|wall_time|message)$", r"\1/diagnostics/\2"),
    # the LRT statistic: lrt/lambda -> lrt/statistic (field name of LRTMatrix)
    (r"^(scenarios/[^/]+/lrt)/lambda$", r"\1/statistic"),
    # axis labels: /coords/<axis> -> root dimension scales /<axis>
    (r"^coords/([^/]+)$", r"\1"),
)
#: Datasets only in the new layout (dimension scales without an old counterpart).
NEW_ONLY: tuple[str, ...] = ("word", "template2", "parameter2")
#: Exempt from comparison (glob patterns): wall times, memory, messages quoting times.
#: (Old and new paths; a message equal in every realisation is an attribute, not a dataset,
#: so the same message can be a dataset in one run and not in the other.)
EXEMPT: tuple[str, ...] = ("scenarios/*/timings/*", "scenarios/*/methods/*/wall_time",
                           "scenarios/*/methods/*/message",
                           "scenarios/*/methods/*/diagnostics/wall_time",
                           "scenarios/*/methods/*/diagnostics/message")


def new_path(old: str) -> str:
    """Where the old dataset ``old`` lives in the new layout."""
    for pattern, repl in RENAMES:
        if re.match(pattern, old):
            return re.sub(pattern, repl, old)
    return old


def _datasets(path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj.asstr()[()] if h5py.check_string_dtype(obj.dtype) else obj[()]
        f.visititems(visit)
    return out


def _compare(a: np.ndarray, b: np.ndarray, rtol: float | None) -> tuple[bool, float, float, str]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False, np.nan, np.nan, f"shape {a.shape} != {b.shape}"
    if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":
        return bool(np.array_equal(a.astype(str), b.astype(str))), np.nan, np.nan, "strings"
    if a.dtype != b.dtype:
        return False, np.nan, np.nan, f"dtype {a.dtype} != {b.dtype}"
    if a.dtype.kind not in "fc":
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64)) if a.size else np.zeros(0)
        return bool(np.array_equal(a, b)), float(diff.max(initial=0.0)), np.nan, ""
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    ok = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a[ok] - b[ok])
    scale = np.abs(a[ok])
    rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), diff)
    max_abs, max_rel = float(diff.max(initial=0.0)), float(rel.max(initial=0.0))
    if rtol is None:
        equal = same_nan and np.array_equal(a[~np.isnan(a)], b[~np.isnan(b)])
        return bool(equal), max_abs, max_rel, ""
    return bool(same_nan and max_rel <= rtol), max_abs, max_rel, f"rtol {rtol:g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="schema-1 results.h5")
    ap.add_argument("new", help="schema-2 results.h5")
    ap.add_argument("--rtol", action="append", default=[], metavar="PATTERN=RTOL",
                    help="compare new paths matching the glob PATTERN with this relative "
                         "tolerance instead of exactly (repeatable)")
    args = ap.parse_args(argv)
    tolerances = []
    for item in args.rtol:
        pattern, _, value = item.rpartition("=")
        tolerances.append((pattern, float(value)))

    old, new = _datasets(args.old), _datasets(args.new)
    rows, failures, exempt, tolerated = [], 0, [], []
    mapped: set[str] = set()
    for path in sorted(old):
        if any(fnmatch.fnmatch(path, pat) for pat in EXEMPT):
            exempt.append(path)
            mapped.add(new_path(path))
            continue
        target = new_path(path)
        mapped.add(target)
        if target not in new:
            rows.append(("MISSING", path, target, np.nan, np.nan, "no counterpart"))
            failures += 1
            continue
        rtol = next((r for pat, r in tolerances if fnmatch.fnmatch(target, pat)), None)
        ok, max_abs, max_rel, note = _compare(old[path], new[target], rtol)
        if rtol is not None:
            tolerated.append(target)
        rows.append(("ok" if ok else "DIFFERS", path, target, max_abs, max_rel, note))
        failures += not ok
    unmatched = sorted(p for p in new if p not in mapped and p not in NEW_ONLY
                       and not any(fnmatch.fnmatch(p, pat) for pat in EXEMPT))
    for path in unmatched:
        rows.append(("NEW-ONLY", "-", path, np.nan, np.nan, "no old dataset maps here"))
        failures += 1

    width = max((len(r[2]) for r in rows), default=10)
    print(f"old: {args.old}\nnew: {args.new}\n")
    print(f"{'status':8} {'path in the new file':{width}}  {'max|d|':>9} {'max|d|/|a|':>10}  note")
    for status, path, target, max_abs, max_rel, note in rows:
        if path not in (target, "-"):
            note = f"{note}; was {path}" if note else f"was {path}"
        print(f"{status:8} {target:{width}}  {max_abs:9.3g} {max_rel:10.3g}  {note}")
    print(f"\n{len(rows)} datasets compared, {failures} mismatched or missing; "
          f"{len(tolerated)} compared with a tolerance"
          + (f" ({', '.join(tolerated)})" if tolerated else " (all others exactly)"))
    print(f"exempt (timings, memory, wall times, messages quoting them; provenance attributes "
          f"are not datasets and are not compared): {len(exempt)} datasets")
    print("RESULT:", "IDENTICAL" if failures == 0 else "MISMATCH")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
