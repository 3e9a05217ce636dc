"""
Fit the contamination of one mock map
=====================================

One realisation of the ``combined`` scenario (Berlfein+24 Eq. 13) is drawn
with the suite's own mock generator (lognormal KiDS-like field, correlated
templates, Poisson counts), and the additive and multiplicative coefficients
are recovered by maximising the Gaussian pixel likelihood of Eq. 17
(:func:`hpcsys.core.fit.fit_mle`). The fitted ``(a, b)`` are compared with the
injected ones; the error bars are the likelihood's (inverse Hessian), which
treat pixels as independent.
"""

import jax

jax.config.update("jax_enable_x64", True)  # the entry points do this; so must a script

import healpy as hp
import matplotlib.pyplot as plt
import numpy as np

from hpcsys.config import parse_config
from hpcsys.core.contamination import decontaminate
from hpcsys.core.fit import fit_mle
from hpcsys.pipeline import make_mock, prepare_run

# %%
# A small sky: NSIDE 32 on a 40-degree polar cap, three templates. Every
# random number comes from streams keyed by the realisation index, so this is
# realisation 0 of any run with the same configuration.
cfg = parse_config({
    "run": {"master_seed": 7},
    "sky": {"nside": 32, "footprint": "cap", "cap_radius_deg": 40.0},
    "templates": {"n_templates": 3},
    "contamination": {"additive_amplitude": 0.05, "multiplicative_amplitude": 0.1,
                      "zero_fraction": 0.0},
    "twopoint": {"n_bins": 5, "theta_max_arcmin": 600.0, "n_threads": 1},
})
ctx = prepare_run(cfg)
tset = ctx.templates_for(0)
mock = make_mock(ctx, "combined", 0, tset)
a_true, b_true = ctx.truth.for_scenario("combined")
print(f"{ctx.footprint.n_pixels} pixels, K = {tset.templates.shape[0]} templates")

# %%
# Maximum-likelihood fit of the combined model (Eqs. 17, 13).
fit = fit_mle(mock.delta_obs, tset.templates, "combined", "gaussian")
print(fit.message)
print("a:", np.round(fit.a, 4), "+-", np.round(fit.a_err, 4), " true:", np.round(a_true, 4))
print("b:", np.round(fit.b, 4), "+-", np.round(fit.b_err, 4), " true:", np.round(b_true, 4))

# %%
# Observed map, the decontaminated map ``(delta_obs - a.t)/(1 + b.t)`` and the
# fitted coefficients against the truth.
npix = hp.nside2npix(cfg.sky.nside)
observed = np.full(npix, hp.UNSEEN)
cleaned = np.full(npix, hp.UNSEEN)
observed[ctx.footprint.pixels] = mock.delta_obs
cleaned[ctx.footprint.pixels] = np.asarray(
    decontaminate(mock.delta_obs, tset.templates, fit.a, fit.b))
vmax = np.quantile(np.abs(mock.delta_obs), 0.99)

fig = plt.figure(figsize=(10, 8))
for i, (m, title) in enumerate(((observed, "observed overdensity"),
                                (cleaned, "decontaminated with the MLE"))):
    hp.orthview(m, rot=(0, 90), half_sky=True, fig=fig.number, sub=(2, 2, i + 1),
                title=title, min=-vmax, max=vmax, cmap="viridis", format="%.2f",
                unit=r"$\delta$", margins=(0.01, 0.01, 0.01, 0.06))
ax = fig.add_axes((0.09, 0.06, 0.88, 0.36))
K = len(a_true)
x = np.arange(2 * K)
ax.errorbar(x, np.r_[fit.a, fit.b], np.r_[fit.a_err, fit.b_err], fmt="o", color="#0072B2",
            capsize=3, label="MLE ± likelihood error")
ax.plot(x, np.r_[a_true, b_true], "x", ms=10, mew=2, color="#D55E00", label="injected")
ax.set_xticks(x, [f"$a_{i}$" for i in range(K)] + [f"$b_{i}$" for i in range(K)])
ax.axhline(0, color="k", lw=0.8)
ax.set_ylabel("coefficient")
ax.legend()
plt.show()
