"""Table 3: amplitude bias dA/sigma_A per method and scenario, and parameter recovery.

Table 3 (Berlfein+24 Eqs. 24-26): mean ``dA/sigma_A`` of w(theta) for the
uncorrected measurement and every method's correction, with its error over
realisations (mock covariance, Hartlap-corrected), with and without the
template cross terms of Eq. 16. The recovery table: bias of every estimator in
units of scatter/sqrt(N), likelihood errors against the mock-to-mock scatter,
pull widths and 68 %/95 % coverage. Writes ``table3.{md,csv,tex}`` and
``recovery.{md,csv,tex}``.

Usage: ``python analysis/table3.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import main, require, write_text

from hpcsys.io import ResultsFile, render_report

FORMATS = {"md": "markdown", "csv": "csv", "tex": "latex"}


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Render the stored Table 3 and recovery table in Markdown, CSV and LaTeX."""
    t3 = require(res.table3(), "Table 3 (/tables/table3)", res)
    rec = require(res.recovery(), "recovery table (/tables/recovery)", res)
    paths = []
    for ext, fmt in FORMATS.items():
        paths.append(write_text(out, f"table3.{ext}", render_report(None, t3, None, fmt)))
        paths.append(write_text(out, f"recovery.{ext}", render_report(None, None, rec, fmt)))
    return paths


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
