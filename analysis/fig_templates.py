"""Figure: systematic templates, their angular power spectra and their maps on the footprint.

Left: the pseudo-C_l of each template measured on the footprint (divided by
the sky fraction), with the unit-variance model spectra of the five families
(docs/science/conventions.rst) in black. Right: the first templates on the footprint
(Mollweide projection of the pixel centres, centred on the footprint). The templates are regenerated
from the configuration stored in the results file (deterministic in the
config, see ``_common.run_context``). Writes ``templates.{png,pdf}``.

Usage: ``python analysis/fig_templates.py RUN/results.h5 --out DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import healpy as hp
import matplotlib.pyplot as plt
import numpy as np
from _common import OKABE_ITO, main, run_context, save_figure

from hpcsys.io import ResultsFile
from hpcsys.sims.spectra import template_cl

MAX_MAPS = 4


def centre_ra(ra: np.ndarray) -> float:
    """A central RA that puts the map edge (centre + 180 deg) in the widest RA gap."""
    occupied = np.zeros(360, dtype=bool)
    occupied[np.floor(ra).astype(int) % 360] = True
    if occupied.all():
        return 0.0
    start = int(np.argmin(occupied))  # an empty degree; scan the circle from there
    best, best_len, run_start, run_len = start, 0, start, 0
    for k in range(360):
        i = (start + k) % 360
        if not occupied[i]:
            if run_len == 0:
                run_start = i
            run_len += 1
            if run_len > best_len:
                best, best_len = run_start, run_len
        else:
            run_len = 0
    edge = best + best_len / 2.0
    return (edge + 180.0) % 360.0


def footprint_scatter(ax: plt.Axes, nside: int, pixels: np.ndarray, values: np.ndarray,
                      **kw) -> plt.Artist:
    """Pixel values at their centres on a Mollweide axis (RA increasing to the left).

    The projection is centred so that the footprint is not cut by the map edge.
    """
    ra, dec = hp.pix2ang(nside, pixels, lonlat=True)
    d = (ra - centre_ra(ra) + 180.0) % 360.0 - 180.0
    lon = -np.radians(d)
    size = max(0.2, 3.0e4 / hp.nside2npix(nside))
    return ax.scatter(lon, np.radians(dec), c=values, s=size, marker="s", linewidths=0,
                      rasterized=True, **kw)


def run(res: ResultsFile, out: Path) -> list[Path]:
    """Draw the template figure."""
    ctx = run_context(res)
    cfg = ctx.config
    nside = cfg.sky.nside
    pix = ctx.footprint.pixels
    T = ctx.templates_for(0).templates
    K = T.shape[0]
    names = ctx.template_names
    fsky = pix.size / hp.nside2npix(nside)
    lmax = 3 * nside - 1
    ell = np.arange(lmax + 1)
    n_maps = min(K, MAX_MAPS)
    fig = plt.figure(figsize=(4.5 + 3.4 * ((n_maps + 1) // 2), 6.0), layout="constrained")
    gs = fig.add_gridspec(2, 1 + (n_maps + 1) // 2, width_ratios=[1.5] + [1] * ((n_maps + 1) // 2))
    ax = fig.add_subplot(gs[:, 0])
    full = np.zeros(hp.nside2npix(nside))
    for i in range(K):
        full[:] = 0.0
        full[pix] = T[i]
        cl = hp.anafast(full, lmax=lmax, iter=0) / fsky
        ax.loglog(ell[2:], cl[2:], color=OKABE_ITO[1 + i % 7], lw=1, alpha=0.9,
                  label=names[i] if i < 8 else None)
    styles = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
    for j, fam in enumerate(dict.fromkeys(cfg.templates.families)):
        ax.loglog(ell[2:], template_cl(fam, lmax, cfg.templates.ell_scale)[2:], linestyle=styles[j % len(styles)],
                  color="k", lw=1.0, alpha=0.7, label=f"model: {fam}")
    ax.set_xlabel(r"multipole $\ell$")
    ax.set_ylabel(r"$C_\ell$ (pseudo-$C_\ell / f_{\rm sky}$)")
    ax.set_title(f"{K} templates, NSIDE {nside}, f_sky = {fsky:.3f}")
    ax.legend(fontsize=6.5, ncol=2)
    map_axes = []
    for i in range(n_maps):
        axm = fig.add_subplot(gs[i % 2, 1 + i // 2], projection="mollweide")
        sc = footprint_scatter(axm, nside, pix, T[i], cmap="viridis", vmin=-3, vmax=3)
        axm.set_xticklabels([])
        axm.set_yticklabels([])
        axm.set_title(names[i], fontsize=9)
        axm.grid(True, alpha=0.3)
        map_axes.append(axm)
    fig.colorbar(sc, ax=map_axes, orientation="horizontal", shrink=0.6, pad=0.02,
                 label="template value (standard deviations on the footprint)")
    fig.suptitle(f"Systematic templates on the '{cfg.sky.footprint}' footprint")
    return save_figure(fig, out, "templates")


if __name__ == "__main__":
    sys.exit(main(run, __doc__.splitlines()[0]))
