"""
Population view: posterior width against the number of realisations
===================================================================

If ``N`` independent skies share the same systematics (the same templates and
the same true ``(a, b)``), their likelihoods multiply and the posterior on the
shared coefficients narrows as ``1/sqrt(N)`` (docs/science/tables.rst).
:func:`hpcsys.population.population_convergence` fits the shared ``(a, b)`` of
the combined model (Berlfein+24 Eq. 13) jointly on disjoint groups of ``N``
maps and measures the slope of ``log(width)`` against ``log(N)``.

The maps here are synthetic with independent pixels, so the Laplace width is
also the true uncertainty; on lognormal mocks the pixels are correlated and
the scatter between groups exceeds the width (see the documentation page on
the spatially-correlated-pixels trap).
"""

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib.pyplot as plt
import numpy as np

from hpcsys import seeds
from hpcsys.core.contamination import contaminate
from hpcsys.population import population_convergence

# %%
# Synthetic maps: K = 3 correlated, standardised templates on 2000 pixels and
# 16 realisations of a white overdensity field, contaminated with the same
# (a, b) (Berlfein+24 Eq. 13). Random numbers come from a task-keyed stream.
rng = seeds.rng(2024, "synthetic", 0)
K, npix, n_max = 3, 2000, 16
corr = 0.3 * np.ones((K, K)) + 0.7 * np.eye(K)
templates = np.linalg.cholesky(corr) @ rng.standard_normal((K, npix))
templates = (templates - templates.mean(1, keepdims=True)) / templates.std(1, keepdims=True)
a_true = np.array([0.02, 0.0, -0.01])
b_true = np.array([0.05, -0.03, 0.0])
maps = np.asarray(contaminate(0.3 * rng.standard_normal((n_max, npix)), templates, a_true, b_true))

# %%
# Joint fits on disjoint groups of N = 1, 2, 4, 8, 16 realisations.
conv = population_convergence(maps, templates, (1, 2, 4, 8, 16), "combined", "gaussian")
print(f"slope of log(width) vs log(N): {conv.slope:.3f} +- {conv.slope_err:.3f} (expected -0.5)")

# %%
# Laplace widths (lines) and the scatter of the joint estimates between groups
# (markers) for each parameter, with the 1/sqrt(N) law through N = 1.
colors = plt.get_cmap("tab10").colors
fig, ax = plt.subplots(figsize=(6, 4.2), layout="constrained")
n = conv.n_values
for i, label in enumerate(conv.labels):
    c = colors[i % len(colors)]
    ax.plot(n, conv.mean_width[:, i], "-", color=c, label=f"${label}$ width")
    ax.plot(n, conv.scatter[:, i], "o", color=c, mfc="none")
ax.plot(n, conv.mean_width[0].mean() / np.sqrt(n), "k--", lw=2, label=r"$\propto N^{-1/2}$")
ax.set(xscale="log", yscale="log", xlabel="realisations fitted jointly, N",
       ylabel="posterior width (lines) / group scatter (circles)",
       title=f"slope {conv.slope:.3f} ± {conv.slope_err:.3f}")
ax.legend(ncol=2, fontsize="small")
plt.show()
