"""Figure: likelihood-ratio statistics against the chi-square law (Berlfein+24 Eq. 19).

One panel per test (null model / alternative) and likelihood: histograms of
``lambda = 2 (lnL_alt - lnL_null)`` over the realisations of every scenario in
which the test's null model is true, the chi-square density with the test's
degrees of freedom (Wilks), and the critical values at ``alpha``: Wilks' and
the mock-calibrated one (empirical quantile over the run's calibration set, per scenario).
On a spatially correlated sky the measured lambda is much wider than the
chi-square law (docs/correlated_pixels.rst). Writes ``lrt_histograms.{png,pdf}``.

Usage: ``python analysis/fig_lrt.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import color_for, main, save_figure
from scipy import stats

from hpcsys.io import ResultsFile


def null_holds(null_model: str, scenario: str) -> bool:
    """Whether ``null_model`` contains the true model of ``scenario`` (Eqs. 11-13 nesting)."""
    return scenario == "null" or null_model in (scenario, "combined")


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the LRT histograms."""
    pairs, liks = res.lrt_pairs, res.likelihoods
    data = {s: res.scenario(s) for s in res.scenarios}
    t2 = res.table2()
    alpha = t2.alpha if t2 is not None else 0.05
    fig, axes = plt.subplots(len(liks), len(pairs), figsize=(3.2 * len(pairs), 2.8 * len(liks)),
                             squeeze=False, layout="constrained")
    for q, pair in enumerate(pairs):
        null_model = pair.split("/")[0]
        for li, lk in enumerate(liks):
            ax = axes[li, q]
            held = [s for s in data if null_holds(null_model, s)]
            dof = None
            lam_all = []
            for s in held:
                lam = data[s].lrt.statistic[:, q, li]
                dof = int(data[s].lrt.dof[0, q])
                lam_all.append(lam[np.isfinite(lam)])
            if dof is None:
                ax.text(0.5, 0.5, "no scenario with\nthis null model true", ha="center",
                        va="center", transform=ax.transAxes)
                ax.set_title(f"{pair}, {lk}")
                continue
            pooled = np.concatenate(lam_all)
            crit_w = stats.chi2.ppf(1 - alpha, dof)
            hi = max(crit_w * 2.0, np.quantile(pooled, 0.95) if pooled.size else 0.0)
            bins = np.linspace(0.0, hi, 25)
            for s, lam in zip(held, lam_all):
                over = int(np.count_nonzero(lam > hi))
                ax.hist(np.clip(lam, 0, hi), bins=bins, density=True, histtype="step", lw=1.5,
                        color=color_for(s), label=f"{s} (N={lam.size}" +
                        (f", {over} beyond axis)" if over else ")"))
            xx = np.linspace(1e-3, hi, 300)
            ax.plot(xx, stats.chi2.pdf(xx, dof), "k-", lw=1.2, label=rf"$\chi^2_{{{dof}}}$")
            ax.axvline(crit_w, color="k", ls="--", lw=1, label=f"Wilks, α={alpha:g}")
            if t2 is not None and pair in t2.lrt_pairs and lk in t2.likelihoods:
                for s in held:  # per scenario: the bootstrap point is the scenario's fit
                    if s not in t2.scenarios:
                        continue
                    crit_c = t2.critical_lambda[t2.scenarios.index(s), t2.lrt_pairs.index(pair),
                                                t2.likelihoods.index(lk)]
                    if np.isfinite(crit_c):
                        ax.axvline(min(crit_c, hi), color=color_for(s), ls=":", lw=1.5,
                                   label=f"mock-calibrated ({s})")
            ax.set_title(f"{pair} ({dof} dof), {lk}")
            ax.set_xlabel(r"$\lambda = 2\,\Delta\ln L$")
            if q == 0:
                ax.set_ylabel("density")
            ax.legend(fontsize=6.5)
    fig.suptitle("Likelihood-ratio statistics where the null model is true, vs Wilks' law")
    return save_figure(fig, out, "lrt_histograms")


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
