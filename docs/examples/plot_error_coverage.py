"""
Which error bars hold on a correlated sky?
==========================================

The least-squares (OLS) coefficients of four templates are fitted to
uncontaminated KiDS-like mock maps (lognormal field with the suite's KiDS
spectrum, Poisson counts, the ``kids`` footprint) at three resolutions, and
three 1-sigma errors of every coefficient are compared with the scatter they
should describe:

* **independent pixels**: ``s^2 (T T^T)^-1``, the textbook error (and the
  inverse Hessian of the pixel likelihoods of Berlfein+24 Eqs. 17-18);
* **jackknife**: delete-one-region over k-means regions of the footprint
  (:mod:`hpcsys.measure.jackknife`);
* **sandwich**: the harmonic sandwich with the residual's own spectrum
  (:mod:`hpcsys.measure.sandwich`).

Since the maps are uncontaminated, the true coefficients are zero, and an
honest 1-sigma error covers zero in 68.3 % of the draws. The pixels are
correlated on the scales where the templates carry power, so the
independent-pixel error is too small, more so at higher resolution (more
pixels per correlation length). This example uses few draws so that it runs
in the docs build; the test suite measures the same with more
(``tests/test_measure_sandwich.py``).
"""

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib.pyplot as plt
import numpy as np

from hpcsys.config import parse_config
from hpcsys.measure.jackknife import jackknife_covariance, jackknife_regions, ols_deletions
from hpcsys.measure.sandwich import harmonic_geometry, ols_covariance, transform_designs
from hpcsys.seeds import rng
from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
from hpcsys.sims.footprint import make_footprint
from hpcsys.sims.mock import mean_count_per_pixel, observe, true_overdensity
from hpcsys.sims.spectra import target_cl
from hpcsys.sims.templates import draw_templates

K, N_DRAWS, MASTER = 4, 60, 7
NSIDES = (32, 64, 128)
REGIONS = {32: 20, 64: 40, 128: 80}

# %%
# For each NSIDE: fixed templates with large-scale power, then N_DRAWS
# independent null mocks (streams keyed by NSIDE and draw).
coverage = {kind: [] for kind in ("independent pixels", "jackknife", "sandwich")}
for nside in NSIDES:
    cfg = parse_config({"sky": {"nside": nside, "footprint": "kids"},
                        "templates": {"n_templates": K,
                                      "families": ["exp", "gauss", "power2", "power1"]}})
    fp = make_footprint("kids", nside)
    gl = lognormal_gaussian_cl(target_cl(cfg.sky.spectrum, cfg.sky.galaxy_bias, 3 * nside - 1))
    T = draw_templates(cfg.templates, nside, fp.pixels, rng(MASTER, "synthetic", nside))
    nbar = mean_count_per_pixel(cfg.sky.number_density, nside)
    geo = harmonic_geometry(fp.pixels, nside)
    designs = transform_designs(T, geo)
    regions = jackknife_regions(fp.pixels, nside, REGIONS[nside], rng(MASTER, "synthetic", 1))
    inv_gram = np.linalg.inv(T @ T.T)
    hits = {kind: 0 for kind in coverage}
    for i in range(N_DRAWS):
        delta = draw_lognormal(gl, nside, rng(MASTER, "synthetic", nside, i, 0))
        d = observe(true_overdensity(delta[fp.pixels]), T, np.zeros(K), np.zeros(K),
                    nbar_pixel=nbar, shot_noise=True,
                    rng=rng(MASTER, "synthetic", nside, i, 1)).delta_obs
        coef, cov_sw = ols_covariance(d, T, geo, designs)
        resid = d - coef @ T
        errors = {
            "independent pixels": np.sqrt(np.diag(inv_gram) * resid.var()),
            "jackknife": np.sqrt(np.diag(jackknife_covariance(ols_deletions(d, T, regions)))),
            "sandwich": np.sqrt(np.diag(cov_sw)),
        }
        for kind, err in errors.items():
            hits[kind] += int(np.sum(np.abs(coef) < err))
    for kind in coverage:
        coverage[kind].append(hits[kind] / (K * N_DRAWS))
    print(f"NSIDE {nside:4d} ({fp.pixels.size:5d} pixels, {regions.n_regions} regions): " +
          ", ".join(f"{k} {coverage[k][-1]:.3f}" for k in coverage))

# %%
# Coverage of the 68.3 % interval against NSIDE, with the binomial error of
# K x N_DRAWS intervals (the four coefficients of one map are not independent,
# so the bars are somewhat optimistic).
n = K * N_DRAWS
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for (kind, cov), marker in zip(coverage.items(), "osD"):
    c = np.array(cov)
    ax.errorbar(NSIDES, c, yerr=np.sqrt(c * (1 - c) / n), fmt=marker + "-", capsize=3,
                label=kind)
ax.axhline(0.683, color="k", ls=":", label="honest (0.683)")
ax.set(xscale="log", xticks=NSIDES, xticklabels=[str(s) for s in NSIDES], ylim=(0, 1),
       xlabel="NSIDE", ylabel="coverage of the 1-sigma interval",
       title=f"OLS on KiDS-like null mocks ({N_DRAWS} draws, K = {K})")
ax.legend(fontsize=8)
plt.show()
