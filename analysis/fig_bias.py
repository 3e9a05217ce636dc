"""Figure: amplitude bias dA/sigma_A per method and scenario (Berlfein+24 Table 3, Eqs. 25-26).

Mean ``dA/sigma_A`` over realisations with its error, for the uncorrected
measurement and every method, one marker per scenario; left with the full
template cross-correlation correction (Eq. 16), right with autocorrelations
only. The shaded band is the paper's target ``|dA/sigma_A| < 0.1``; the dotted
line the paper's uncorrected bias (about 1.5). The axis is linear within
``|dA/sigma_A| < 1`` and logarithmic beyond when biases exceed 5. Writes
``amplitude_bias.{png,pdf}``.

Usage: ``python analysis/fig_bias.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import MARKERS, color_for, main, require, save_figure

from hpcsys.io import ResultsFile

#: Berlfein+24 headline: uncorrected bias and the target after correction.
PAPER_UNCORRECTED = 1.5
TARGET = 0.1


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the amplitude-bias figure."""
    t3 = require(res.table3(), "Table 3 (/tables/table3)", res)
    E = len(t3.estimators)
    S = len(t3.scenarios)
    x = np.arange(E)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    panels = ((t3.mean_dA_over_sigma, t3.error_dA_over_sigma, "with cross terms (Eq. 16)"),
              (t3.mean_dA_over_sigma_diag, t3.error_dA_over_sigma_diag,
               "autocorrelations only"))
    for ax, (mean, err, title) in zip(axes, panels):
        ax.axhspan(-TARGET, TARGET, color="#009E73", alpha=0.15, lw=0,
                   label=f"|dA/σ_A| < {TARGET}")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.axhline(PAPER_UNCORRECTED, color="#999999", ls=":", lw=1.2,
                   label="paper, uncorrected (~1.5)")
        for s, name in enumerate(t3.scenarios):
            off = (s - (S - 1) / 2) * 0.12
            ok = np.isfinite(mean[s])
            ax.errorbar(x[ok] + off, mean[s][ok], np.nan_to_num(err[s][ok]),
                        fmt=MARKERS[s % len(MARKERS)], color=color_for(name), capsize=2,
                        label=f"{name} (N={int(t3.n_realisations[s])})")
        ax.set_xticks(x, t3.estimators, rotation=30, ha="right")
        ax.set_title(title)
        finite = np.abs(mean[np.isfinite(mean)])
        if finite.size and finite.max() > 5:  # large biases: keep |dA/sigma| < 1 readable
            ax.set_yscale("symlog", linthresh=1.0, linscale=1.5)
    axes[0].set_ylabel(r"$\Delta A / \sigma_A$")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6),
               fontsize=8)
    fig.suptitle("Bias of the clustering amplitude before and after correction")
    return save_figure(fig, out, "amplitude_bias")


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
