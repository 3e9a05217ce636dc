"""Population fits of shared (a, b): exact identities, calibration and the 1/sqrt(N) law."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hpcsys import seeds
from hpcsys.core.contamination import contaminate
from hpcsys.core.likelihood import loglike, pack
from hpcsys.population import (
    PopulationError,
    fit_population,
    population_convergence,
    population_loglike,
)

K, NPIX, NMAX, SIGMA = 3, 1500, 16, 0.3
A_TRUE = np.array([0.02, 0.0, -0.01])
B_TRUE = np.array([0.05, -0.03, 0.0])


def _templates(rng: np.random.Generator) -> np.ndarray:
    corr = 0.3 * np.ones((K, K)) + 0.7 * np.eye(K)
    t = np.linalg.cholesky(corr) @ rng.standard_normal((K, NPIX))
    return (t - t.mean(axis=1, keepdims=True)) / t.std(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic():
    """N_max maps with independent Gaussian pixels, contaminated by shared (a, b) (Eq. 13)."""
    rng = seeds.rng(7, "synthetic", 0)
    templates = _templates(rng)
    delta = SIGMA * rng.standard_normal((NMAX, NPIX))
    maps = np.asarray(contaminate(delta, templates, A_TRUE, B_TRUE))
    return maps, templates


@pytest.fixture(scope="module")
def convergence(synthetic):
    maps, templates = synthetic
    return population_convergence(maps, templates, (1, 2, 4, 8, 16), "combined", "gaussian")


def test_joint_loglike_is_sum_of_realisations(synthetic):
    maps, templates = synthetic
    theta = pack("combined", "gaussian", A_TRUE, B_TRUE, SIGMA)
    w = np.zeros(NMAX)
    w[[1, 4, 5]] = 1.0
    joint = float(population_loglike(theta, maps, templates, w, "combined", "gaussian"))
    direct = sum(float(loglike(theta, maps[i], templates, "combined", "gaussian")) for i in (1, 4, 5))
    assert joint == pytest.approx(direct, rel=1e-12)
    # one template set per realisation gives the same value when the sets are identical
    per = np.broadcast_to(templates, (NMAX, K, NPIX))
    joint3 = float(population_loglike(theta, maps, per, w, "combined", "gaussian"))
    assert joint3 == pytest.approx(direct, rel=1e-12)


def test_width_shrinks_as_inverse_sqrt_n(convergence):
    """Slope of log(Laplace width) vs log(N) is -1/2 within its standard error."""
    c = convergence
    assert c.converged.all()
    assert c.slope_err > 0
    assert abs(c.slope + 0.5) < 3.0 * c.slope_err, (c.slope, c.slope_err)
    # the slope is measured, not assumed: a width that did not shrink would give ~0
    assert c.slope_err < 0.05


def test_laplace_width_matches_scatter_for_independent_pixels(convergence):
    """Pulls of the single-realisation fits are unit normal (chi-square band, p > 0.001)."""
    c = convergence
    truth = np.concatenate([A_TRUE, B_TRUE])
    single = c.group_n == 1
    pulls = (c.estimates[single] - truth) / c.widths[single]
    chi2 = float(np.sum(pulls**2))
    dof = pulls.size
    assert stats.chi2.sf(chi2, dof) > 1e-3 and stats.chi2.cdf(chi2, dof) > 1e-3, chi2


def test_joint_estimate_unbiased(synthetic):
    maps, templates = synthetic
    fit = fit_population(maps, templates, "combined", "gaussian")
    assert fit.converged and fit.n_realisations == NMAX
    assert np.all(np.abs(fit.a - A_TRUE) < 4.0 * fit.a_err)
    assert np.all(np.abs(fit.b - B_TRUE) < 4.0 * fit.b_err)
    assert fit.s == pytest.approx(SIGMA, rel=4.0 / np.sqrt(2 * NMAX * NPIX))


def test_bad_inputs_raise_one_clear_error(synthetic):
    maps, templates = synthetic
    with pytest.raises(PopulationError, match="null model"):
        fit_population(maps, templates, "null")
    with pytest.raises(PopulationError, match="templates"):
        fit_population(maps, templates[:, :-1])
    with pytest.raises(PopulationError, match="weights"):
        fit_population(maps, templates, weights=np.zeros(NMAX))
    with pytest.raises(PopulationError, match="n_values"):
        population_convergence(maps, templates, (4,))


def test_jackknife_width_matches_laplace_for_independent_pixels(convergence):
    """White pixels: the delete-one-realisation jackknife and Laplace widths agree.

    A jackknife width of a group of N scatters by about 1/sqrt(2 (N - 1)) of
    itself, so the mean ratio over the groups of N >= 4 and the parameters is
    tested against its own standard error.
    """
    c = convergence
    assert np.all(np.isnan(c.jackknife_widths[c.group_n == 1]))
    sel = c.group_n >= 4
    r = (c.jackknife_widths[sel] / c.widths[sel]).ravel()
    se = r.std(ddof=1) / np.sqrt(r.size)
    assert abs(r.mean() - 1.0) < 3.0 * se, (r.mean(), se)
    assert se < 0.1  # the check has power


def test_group_scatter_matches_width_for_independent_pixels(convergence):
    """The informative population check: scatter over groups / width, at N = 1 and 2."""
    c = convergence
    for j in (0, 1):  # N = 1 (16 groups), N = 2 (8 groups)
        ratio = c.honesty("laplace")[j]
        # mean over the P_ab parameters; each ratio scatters by scatter_rel_err
        se = c.scatter_rel_err[j] / np.sqrt(ratio.size)
        assert abs(ratio.mean() - 1.0) < 3.0 * se + 0.05, (c.n_values[j], ratio, se)
    assert np.isfinite(c.honesty("jackknife")[1:-1]).all()
    with pytest.raises(PopulationError, match="kind"):
        c.honesty("bootstrap")
