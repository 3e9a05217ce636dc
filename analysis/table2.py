"""Table 2: fraction of realisations in which each null model is rejected (Berlfein+24 Eq. 19).

Per scenario, likelihood (Gaussian, skew-normal) and likelihood-ratio test
(additive vs combined, multiplicative vs combined, and the null model vs each)
the fraction of realisations with the null model rejected at ``alpha``, with
binomial errors, both with Wilks' chi-square law and mock-calibrated (critical
lambda from the run's calibration set of independent null mocks,
:mod:`hpcsys.calibration`); each cell marked as a size or a power. Writes ``table2.md``,
``table2.csv`` and ``table2.tex``.

Usage: ``python analysis/table2.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import main, require, write_text

from hpcsys.io import ResultsFile, render_report

FORMATS = {"md": "markdown", "csv": "csv", "tex": "latex"}


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Render the stored Table 2 in Markdown, CSV and LaTeX."""
    t2 = require(res.table2(), "Table 2 (/tables/table2)", res)
    return [write_text(out, f"table2.{ext}", render_report(t2, None, None, fmt))
            for ext, fmt in FORMATS.items()]


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
