"""Figure: population posterior width on shared (a, b) against the number of realisations.

``N_max = min(16, N)`` observed maps of the ``combined`` scenario (or the last
scenario of the run) are regenerated from the stored configuration, and the
shared ``(a, b)`` of the combined model are fitted jointly on disjoint groups
of ``N = 1, 2, 4, ...`` maps (:func:`hpcsys.population.population_convergence`,
Gaussian likelihood). Left, the test: the scatter of the joint estimates
between disjoint groups over their width, for the Laplace width (assumes
independent pixels: above 1 on a spatially correlated sky,
docs/correlated_pixels.rst) and the delete-one-realisation jackknife width
(honest for independent realisations), with the scatter's standard error.
Right, a side note: the Laplace width against ``N`` and the ``N^-1/2`` law,
which holds by construction. Writes ``population.{png,pdf}`` and
``population.csv`` (the ratios and the slope in its header).

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
    med = {}
    for kind, colour, marker in (("laplace", OKABE_ITO[5], "o"), ("jackknife", OKABE_ITO[1], "s")):
        ratio = c.honesty(kind)
        has = np.isfinite(ratio).any(axis=1)
        med[kind] = np.full(n.size, np.nan)
        med[kind][has] = np.nanmedian(ratio[has], axis=1)
        ax.errorbar(n[has], med[kind][has], yerr=med[kind][has] * c.scatter_rel_err[has],
                    fmt=marker + "-", color=colour, capsize=3, ms=4,
                    label=f"{kind} width (median over parameters)")
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xscale="log", xlabel="realisations fitted jointly, N",
           ylabel="scatter between disjoint groups / width",
           title=f"{scenario}: is the width honest? (1 = yes)")
    ax.legend(fontsize=7)
    plain_log_ticks(ax, "x")
    ax = axes[1]
    for i, lab in enumerate(c.labels):
        ax.plot(n, c.mean_width[:, i] / c.mean_width[0, i], "-o", ms=3,
                color=OKABE_ITO[1 + i % 7], lw=1,
                label=f"${lab}$" if len(c.labels) <= 12 else None)
    ax.plot(n, np.sqrt(n[0] / n), "k--", lw=2, label=r"$N^{-1/2}$")
    ax.set(xscale="log", yscale="log", xlabel="N",
           ylabel=f"Laplace width / width at N = {int(n[0])}",
           title=f"side note: slope {c.slope:.3f} ± {c.slope_err:.3f} (−0.5 by construction)")
    ax.legend(fontsize=6.5, ncol=2)
    plain_log_ticks(ax, "x")
    plain_log_ticks(ax, "y")
    fig.suptitle("Population view: shared (a, b) fitted jointly over N realisations")
    paths = save_figure(fig, out, "population")

    def at(kind: str, j: int) -> str:
        v = med[kind][j]
        return "n/a" if not np.isfinite(v) else f"{v:.2f} ± {v * c.scatter_rel_err[j]:.2f}"

    j2 = int(np.flatnonzero(n >= 2)[0]) if np.any(n >= 2) else 0
    header = [
        f"# scenario {scenario}, combined model, Gaussian likelihood, groups of N = "
        f"{', '.join(str(int(x)) for x in n)} realisations",
        f"# scatter between groups / Laplace width at N = {int(n[0])}: {at('laplace', 0)} "
        "(1 for an honest width; the Laplace width assumes independent pixels)",
        f"# scatter between groups / jackknife width at N = {int(n[j2])}: {at('jackknife', j2)} "
        "(delete-one-realisation jackknife: honest for independent realisations)",
        f"# side note, slope of log(Laplace width) vs log(N): {c.slope:.4f} ± {c.slope_err:.4f} "
        "(-0.5 by construction for independent realisations)",
    ]
    cols = ["N", "n_groups", *[f"width_{lab}" for lab in c.labels],
            *[f"jackknife_width_{lab}" for lab in c.labels],
            *[f"scatter_{lab}" for lab in c.labels]]
    rows = [",".join([str(int(n[j])), str(int(c.n_groups[j])),
                      *[f"{v:.6g}" for v in c.mean_width[j]],
                      *[f"{v:.6g}" for v in c.mean_jackknife_width[j]],
                      *[f"{v:.6g}" for v in c.scatter[j]]])
            for j in range(n.size)]
    paths.append(write_text(out, "population.csv", "\n".join([*header, ",".join(cols), *rows])))
    return paths


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
