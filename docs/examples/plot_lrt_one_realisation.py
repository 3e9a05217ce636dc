"""
Likelihood-ratio test on one realisation
========================================

Which contamination model does a map need? Berlfein+24 (Eq. 19) compare the
maximised likelihoods of nested models: ``lambda = 2 (lnL_alt - lnL_null)``,
which Wilks' theorem says is chi-square distributed with as many degrees of
freedom as the alternative has extra parameters *if the null model is true and
the pixels are independent*. Here one realisation of the ``multiplicative``
scenario is tested: additive vs combined (should reject: the map has
multiplicative systematics) and multiplicative vs combined (should not).

On a correlated lognormal sky Wilks' law is only approximate; the suite
therefore also calibrates the test on a calibration set of independent null
mocks (see the page on the spatially-correlated-pixels trap).
"""

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from hpcsys.config import parse_config
from hpcsys.core.fit import fit_mle
from hpcsys.core.likelihood import n_params
from hpcsys.core.stats import likelihood_ratio_test
from hpcsys.pipeline import make_mock, prepare_run

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
mock = make_mock(ctx, "multiplicative", 0, tset)
K = tset.templates.shape[0]

# %%
# Maximum likelihood of every model (Gaussian likelihood, Eq. 17); the LRT must
# use the maxima, never posterior medians.
models = ("null", "additive", "multiplicative", "combined")
lnl = {m: fit_mle(mock.delta_obs, tset.templates, m, "gaussian").loglike for m in models}
for m in models:
    print(f"{m:15s} lnL_max = {lnl[m]:.2f}  ({n_params(m, 'gaussian', K)} parameters)")

tests = {}
for null in ("additive", "multiplicative"):
    dof = n_params("combined", "gaussian", K) - n_params(null, "gaussian", K)
    t = likelihood_ratio_test(lnl[null], lnl["combined"], dof)
    tests[null] = (float(t.statistic), int(dof), float(t.pvalue))
    print(f"{null} vs combined: lambda = {float(t.statistic):.2f}, dof = {dof}, "
          f"Wilks p = {float(t.pvalue):.3g}")

# %%
# The two statistics against the chi-square law and its 5 % critical value.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for ax, (null, (lam, dof, p)) in zip(axes, tests.items()):
    crit = stats.chi2.ppf(0.95, dof)
    hi = max(3 * crit, 1.15 * lam)
    x = np.linspace(1e-3, hi, 2000)
    ax.plot(x, stats.chi2.pdf(x, dof), "k-", label=rf"$\chi^2_{dof}$ (Wilks)")
    ax.axvline(crit, color="k", ls="--", lw=1, label="5 % critical value")
    ax.axvline(lam, color="#D55E00", lw=2.5, label=rf"$\lambda$ = {lam:.1f} (p = {p:.2g})")
    ax.set(title=f"{null} vs combined", xlabel=r"$\lambda = 2\,\Delta\ln L$",
           ylabel="density")
    ax.legend(fontsize=8)
plt.show()
