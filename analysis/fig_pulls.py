"""Figure: parameter pulls and interval coverage per method.

Top row: for every method, the histogram of pulls ``(estimate - truth)/error``
with the method's own 1-sigma errors, pooled over scenarios, realisations and
the parameters the method estimates, against the unit normal. Bottom: the
68 % and 95 % interval coverage per method (binomial errors) and the ratio of
the mock-to-mock scatter to the mean likelihood error (1 for honest errors;
larger on spatially correlated skies, docs/correlated_pixels.rst). Writes
``pulls_coverage.{png,pdf}``.

Usage: ``python analysis/fig_pulls.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import color_for, main, save_figure
from scipy import stats

from hpcsys.io import ResultsFile

Z95 = stats.norm.ppf(0.975)


@dataclass(frozen=True)
class MethodPulls:
    """Pooled pulls of one method and its per-(scenario, parameter) error ratios."""

    name: str
    pulls: np.ndarray
    error_ratio: np.ndarray


def method_pulls(res: ResultsFile) -> list[MethodPulls]:
    """Pulls ``(est - truth)/err`` per method, pooled over scenarios and parameters.

    A parameter counts for a method when its error is finite and positive in
    a realisation. The error ratio is ``std(est) / mean(err)`` per scenario and
    parameter (at least 3 realisations).
    """
    out = []
    scen = [res.scenario(s) for s in res.scenarios]
    for m in res.method_names:
        pulls, ratios = [], []
        for sc in scen:
            ma = sc.methods[m]
            est = np.concatenate([ma.a, ma.b], axis=1)
            err = np.concatenate([ma.a_err, ma.b_err], axis=1)
            truth = np.concatenate([sc.a_true, sc.b_true], axis=1)
            ok = np.isfinite(err) & (err > 0) & np.isfinite(est)
            pulls.append(((est - truth) / np.where(ok, err, 1.0))[ok])
            for p in range(est.shape[1]):
                sel = ok[:, p]
                if sel.sum() >= 3:
                    ratios.append(est[sel, p].std(ddof=1) / err[sel, p].mean())
        out.append(MethodPulls(m, np.concatenate(pulls), np.asarray(ratios)))
    return out


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the pulls and coverage figure."""
    mp = method_pulls(res)
    M = len(mp)
    fig = plt.figure(figsize=(2.4 * max(M, 4), 6.0), layout="constrained")
    gs = fig.add_gridspec(2, M)
    xx = np.linspace(-5, 5, 200)
    for i, p in enumerate(mp):
        ax = fig.add_subplot(gs[0, i])
        if p.pulls.size:
            ax.hist(np.clip(p.pulls, -5, 5), bins=np.linspace(-5, 5, 21), density=True,
                    color=color_for(p.name), alpha=0.7)
            ax.set_title(f"{p.name}\nstd {p.pulls.std():.2f}, n={p.pulls.size}", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no errors\nreported", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_title(p.name, fontsize=8)
        ax.plot(xx, stats.norm.pdf(xx), "k-", lw=1)
        ax.set_xlabel("pull")
        if i == 0:
            ax.set_ylabel("density")
    half = max(M // 2, 1)
    ax_c = fig.add_subplot(gs[1, :half])
    ax_r = fig.add_subplot(gs[1, half:])
    x = np.arange(M)
    for level, z, mk, dx in ((0.68, 1.0, "o", -0.12), (0.95, Z95, "s", 0.12)):
        cov, err = [], []
        for p in mp:
            n = p.pulls.size
            f = np.mean(np.abs(p.pulls) < z) if n else np.nan
            cov.append(f)
            err.append(np.sqrt(level * (1 - level) / n) if n else np.nan)
        ax_c.errorbar(x + dx, cov, err, fmt=mk, color="k" if level == 0.68 else "#D55E00",
                      capsize=2, label=f"{int(level * 100)} % interval")
        ax_c.axhline(level, color="k" if level == 0.68 else "#D55E00", ls="--", lw=0.8)
    ax_c.set_xticks(x, [p.name for p in mp], rotation=30, ha="right")
    ax_c.set_ylim(0, 1.05)
    ax_c.set_ylabel("coverage")
    ax_c.legend(fontsize=7)
    ax_c.set_title("interval coverage with the methods' own errors")
    for i, p in enumerate(mp):
        if p.error_ratio.size:
            ax_r.plot(np.full(p.error_ratio.size, i), p.error_ratio, "o", mfc="none",
                      color=color_for(p.name))
            ax_r.plot(i, np.median(p.error_ratio), "_", ms=18, mew=2, color="k")
    ax_r.axhline(1.0, color="k", ls="--", lw=0.8)
    ax_r.set_yscale("log")
    ax_r.set_xticks(x, [p.name for p in mp], rotation=30, ha="right")
    ax_r.set_ylabel("mock scatter / likelihood error")
    ax_r.set_title("per scenario and parameter (bar: median)")
    fig.suptitle("Parameter pulls and interval coverage per method")
    return save_figure(fig, out, "pulls_coverage")


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
