"""Figure: pixel histogram of the observed overdensity with Gaussian and skew-normal fits.

The observed overdensity of realisation 0 of the ``combined`` scenario (or the
last scenario of the run) is regenerated from the stored configuration. The
pixel likelihoods of Berlfein+24 Eqs. 17-18 are fitted to it under the null
model (``a = b = 0``) with :func:`hpcsys.core.fit.fit_mle`; the fitted Gaussian
and skew-normal densities (zero-mean location) are drawn over the histogram,
on a linear and a logarithmic scale (tails). Writes
``pixel_histogram.{png,pdf}``.

Usage: ``python analysis/fig_pixel_histogram.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import color_for, enable_x64, main, run_context, save_figure, showcase_scenario
from scipy import stats

from hpcsys.core.fit import fit_mle
from hpcsys.core.likelihood import skewnormal_location
from hpcsys.io import ResultsFile
from hpcsys.pipeline import make_mock


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the pixel histogram figure."""
    enable_x64()
    ctx = run_context(res)
    scenario = showcase_scenario(res)
    index = int(res.scenario(scenario).index[0])
    tset = ctx.templates_for(index)
    mock = make_mock(ctx, scenario, index, tset)
    d = mock.delta_obs
    fits = {lk: fit_mle(d, tset.templates, "null", lk) for lk in ("gaussian", "skewnormal")}
    lo, hi = np.quantile(d, [0.0005, 0.9995])
    x = np.linspace(lo, hi, 400)
    g = fits["gaussian"]
    sn = fits["skewnormal"]
    xi = float(skewnormal_location(sn.s, sn.g))
    pdf = {
        "gaussian": stats.norm.pdf(x, 0.0, g.s),
        "skewnormal": stats.skewnorm.pdf(x, sn.g, loc=xi, scale=sn.s),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, log in zip(axes, (False, True)):
        ax.hist(d, bins=60, range=(lo, hi), density=True, color="#BBBBBB",
                label=f"δ_obs, {d.size} pixels")
        ax.hist(mock.delta_true, bins=60, range=(lo, hi), density=True, histtype="step",
                color="k", lw=1, label="δ_true")
        ax.plot(x, pdf["gaussian"], color=color_for("gaussian"), lw=2,
                label=f"Gaussian fit: s = {g.s:.3f}")
        ax.plot(x, pdf["skewnormal"], "--", color=color_for("skewnormal"), lw=2,
                label=f"skew-normal fit: s = {sn.s:.3f}, g = {sn.g:.2f}")
        ax.set_xlabel("pixel overdensity δ")
        ax.set_ylabel("density")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(0.5 / (d.size * (hi - lo) / 60), None)
    dl = 2 * (sn.loglike - g.loglike)
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{scenario}, realisation {index} (skew: {stats.skew(d):.2f})")
    axes[1].set_title(f"log scale; 2 Δln L (skew-normal − Gaussian) = {dl:.1f}")
    fig.suptitle("Pixel distribution of the observed overdensity with the fitted likelihoods "
                 "(Eqs. 17-18)")
    return save_figure(fig, out, "pixel_histogram")


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
