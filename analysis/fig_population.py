"""Figure: population posterior width on shared (a, b) against the number of realisations.

``N_max = min(16, N)`` observed maps of the ``combined`` scenario (or the last
scenario of the run) are regenerated from the stored configuration, and the
shared ``(a, b)`` of the combined model are fitted jointly on disjoint groups
of ``N = 1, 2, 4, ...`` maps (:func:`hpcsys.population.population_convergence`,
Gaussian likelihood, Laplace widths). Left: the mean Laplace width per
parameter and the ``N^-1/2`` law; right: the mock-to-mock scatter of the
joint estimates between groups over the Laplace width (1 for honest widths;
larger on a spatially correlated sky, docs/correlated_pixels.rst). Writes
``population.{png,pdf}`` and ``population.csv`` (the slope in its header).

Usage: ``python analysis/fig_population.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import (
    OKABE_ITO,
    NotApplicable,
    enable_x64,
    main,
    plain_log_ticks,
    run_context,
    save_figure,
    showcase_scenario,
    write_text,
)

from hpcsys.io import ResultsFile
from hpcsys.pipeline import make_mock
from hpcsys.population import PopulationConvergence, population_convergence

N_MAX = 16


def population_of_run(res: ResultsFile, n_max: int = N_MAX) -> tuple[str, PopulationConvergence]:
    """Joint fits on regenerated maps of the run (see the module docstring)."""
    enable_x64()
    ctx = run_context(res)
    scenario = showcase_scenario(res)
    index = res.scenario(scenario).index[:n_max]
    if index.size < 2:
        raise NotApplicable(f"{res.path}: population view needs >= 2 realisations of "
                            f"'{scenario}', got {index.size}")
    maps, temps = [], []
    for i in index:
        tset = ctx.templates_for(int(i))
        maps.append(make_mock(ctx, scenario, int(i), tset).delta_obs)
        temps.append(tset.templates)
    templates = temps[0] if ctx.fixed is not None else np.stack(temps)
    ns = [2**k for k in range(int(np.log2(index.size)) + 1)]
    conv = population_convergence(np.stack(maps), templates, ns, "combined", "gaussian")
    return scenario, conv


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the population figure and write ``population.csv``."""
    scenario, c = population_of_run(res)
    n = c.n_values
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    ax = axes[0]
    for i, lab in enumerate(c.labels):
        ax.plot(n, c.mean_width[:, i] / c.mean_width[0, i], "-o", ms=3,
                color=OKABE_ITO[1 + i % 7], lw=1,
                label=f"${lab}$" if len(c.labels) <= 12 else None)
    ax.plot(n, np.sqrt(n[0] / n), "k--", lw=2, label=r"$N^{-1/2}$")
    ax.set(xscale="log", yscale="log", xlabel="realisations fitted jointly, N",
           ylabel=f"Laplace posterior width / width at N = {int(n[0])}",
           title=f"{scenario}: slope {c.slope:.3f} ± {c.slope_err:.3f} (expected −0.5)")
    ax.legend(fontsize=6.5, ncol=2)
    plain_log_ticks(ax, "x")
    plain_log_ticks(ax, "y")
    ax = axes[1]
    ratio = c.scatter / c.mean_width
    has = np.isfinite(ratio).any(axis=1)
    for i in range(len(c.labels)):
        ax.plot(n, ratio[:, i], "o", mfc="none", color=OKABE_ITO[1 + i % 7])
    med = np.full(n.size, np.nan)
    med[has] = np.nanmedian(ratio[has], axis=1)
    ax.plot(n[has], med[has], "k-", lw=2, label="median over parameters")
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="N",
           ylabel="scatter between groups / Laplace width",
           title="honesty of the width (needs ≥ 2 groups per N)")
    ax.legend(fontsize=7)
    plain_log_ticks(ax, "x")
    plain_log_ticks(ax, "y")
    fig.suptitle("Population view: shared (a, b) fitted jointly over N realisations")
    paths = save_figure(fig, out, "population")
    header = [
        f"# scenario {scenario}, combined model, Gaussian likelihood, groups of N = "
        f"{', '.join(str(int(x)) for x in n)} realisations",
        f"# slope of log(Laplace width) vs log(N): {c.slope:.4f} ± {c.slope_err:.4f} "
        f"(1/sqrt(N) law: -0.5; {abs(c.slope + 0.5) / c.slope_err:.1f} standard errors away)",
        "# median scatter/width at N = 1: "
        f"{med[0]:.2f} (1 for independent pixels; > 1 on a correlated sky)",
    ]
    cols = ["N", "n_groups", *[f"width_{lab}" for lab in c.labels],
            *[f"scatter_{lab}" for lab in c.labels]]
    rows = [",".join([str(int(n[j])), str(int(c.n_groups[j])),
                      *[f"{v:.6g}" for v in c.mean_width[j]], *[f"{v:.6g}" for v in c.scatter[j]]])
            for j in range(n.size)]
    paths.append(write_text(out, "population.csv", "\n".join([*header, ",".join(cols), *rows])))
    return paths


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
