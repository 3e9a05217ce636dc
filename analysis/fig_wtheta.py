"""Figure: w(theta) true, contaminated and corrected, with residual panels.

One column per scenario. Top: the mean over realisations of ``theta w(theta)``
for the true field, the contaminated observation and every method's corrected
estimate (Berlfein+24 Eq. 16; ISD: re-measured weighted map). Bottom: the mean
residual ``(w_x - w_true)`` of the same realisations in units of the
per-realisation scatter ``sigma_w(theta)`` of ``w_true``, with the error of the
mean (linear within +-1 and logarithmic beyond when residuals are large). Writes ``wtheta.png`` and ``wtheta.pdf``.

Usage: ``python analysis/fig_wtheta.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _common import color_for, main, plain_log_ticks, save_figure

from hpcsys.io import ResultsFile


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the w(theta) figure."""
    scen = res.scenarios
    methods = res.method_names
    theta = np.asarray(res.theta_arcmin)
    x = theta / 60.0
    fig, axes = plt.subplots(2, len(scen), figsize=(3.6 * len(scen), 5.6), sharex=True,
                             gridspec_kw={"height_ratios": (2, 1)}, squeeze=False,
                             layout="constrained")
    for j, name in enumerate(scen):
        sc = res.scenario(name)
        n = sc.n_realisations
        sigma_w = sc.w_true.std(axis=0, ddof=1) if n > 1 else np.abs(sc.w_true[0])
        sigma_w = np.where(sigma_w > 0, sigma_w, np.nan)
        curves = [("true", sc.w_true, "-", 2.0), ("contaminated", sc.w_obs, "--", 1.5)]
        curves += [(m, sc.w_corrected[:, i], "-", 1.2) for i, m in enumerate(methods)]
        top, bot = axes[0, j], axes[1, j]
        for label, w, ls, lw in curves:
            c = color_for(label)
            top.plot(x, x * w.mean(axis=0), ls, color=c, lw=lw, label=label)
            if label == "true":
                err = w.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else 0 * x
                top.fill_between(x, x * (w.mean(0) - err), x * (w.mean(0) + err), color=c,
                                 alpha=0.15, lw=0)
                continue
            d = (w - sc.w_true) / sigma_w
            m = d.mean(axis=0)
            e = d.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else 0 * m
            bot.errorbar(x, m, e, fmt=ls, color=c, lw=lw, capsize=0)
        bot.axhline(0.0, color="k", lw=0.8)
        lim = np.nanmax(np.abs(bot.get_ylim()))
        if lim > 5:  # a large uncorrected residual: keep the corrected ones readable
            bot.set_yscale("symlog", linthresh=1.0, linscale=1.0)
        top.set_title(f"{name} (N = {n})")
        top.set_xscale("log")
        plain_log_ticks(bot)
        bot.set_xlabel(r"$\theta$ [deg]")
        if j == 0:
            top.set_ylabel(r"$\theta\,w(\theta)$ [deg]")
            bot.set_ylabel(r"$\langle w - w_{\rm true}\rangle / \sigma_w$")
    axes[0, 0].legend(loc="best", ncol=1)
    fig.suptitle(r"Angular correlation: true, contaminated and corrected (mean over realisations)")
    return save_figure(fig, out, "wtheta")


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
