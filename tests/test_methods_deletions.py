"""Jackknife deletions of every method (hpcsys.methods.deletions)."""

from __future__ import annotations

import numpy as np
import pytest
from _methods_synthetic import synthetic_map

from hpcsys.config import MethodsSection
from hpcsys.measure.jackknife import jackknife_regions
from hpcsys.methods import run_method
from hpcsys.methods.deletions import method_deletions, method_jackknife_covariance
from hpcsys.seeds import rng, seed_sequence

A_TRUE = np.array([0.03, -0.02, 0.0, 0.01, 0.0])


@pytest.fixture(scope="module")
def data_and_regions():
    data = synthetic_map(300, npix=12000, a=A_TRUE)
    regions = jackknife_regions(data.pixels, data.nside, 40, rng(1, "synthetic", 300))
    return data, regions


def test_elasticnet_deletions_equal_cold_refits_at_the_chosen_penalty(data_and_regions):
    """Warm-started, basis-mapped refits agree with a direct fit on the complement."""
    from sklearn.linear_model import ElasticNet

    from hpcsys.methods._shared import fit_basis

    data, regions = data_and_regions
    settings = MethodsSection(elasticnet_folds=3, elasticnet_l1_ratio=(0.5, 1.0))
    res = run_method("ElasticNet", data, settings, seed_sequence(1, "method", 0))
    assert np.isfinite(res.diagnostics.penalty) and 0 < res.diagnostics.l1_ratio <= 1
    dels = method_deletions(res, data, settings, regions)
    basis = fit_basis(data, settings.pca)
    for r in (0, 17, 39):
        keep = regions.labels != r
        m = ElasticNet(alpha=res.diagnostics.penalty, l1_ratio=res.diagnostics.l1_ratio,
                       tol=1e-10, max_iter=100000).fit(basis.templates.T[keep], data.delta[keep])
        direct = basis.coef_to_original(m.coef_)
        np.testing.assert_allclose(dels[r, :5], direct, atol=1e-5 * np.abs(A_TRUE).max())
    assert np.all(dels[:, 5:] == 0)


def test_ols_and_mcmc_jackknife_match_their_errors_on_white_pixels(data_and_regions):
    """Independent pixels: jackknife variance / reported variance is 1 within its scatter.

    With R = 40 regions one jackknife variance scatters by sqrt(2/39) = 0.23;
    the mean over the K = 5 coefficients by about 0.1: the band is 3 of those.
    """
    data, regions = data_and_regions
    settings = MethodsSection(mcmc_walkers=24, mcmc_steps=300, mcmc_burn_in=100)
    for name in ("OLS", "MCMC-add"):
        res = run_method(name, data, settings, seed_sequence(1, "method", 1))
        cov = method_jackknife_covariance(res, data, settings, regions)
        ref = res.a_std**2 if name.startswith("MCMC") else res.a_err**2
        ratio = np.diag(cov)[:5] / ref
        assert abs(ratio.mean() - 1.0) < 3.0 * np.sqrt(2 / 39) / np.sqrt(5), (name, ratio)


def test_isd_deletions_rerun_the_method(data_and_regions):
    data, regions = data_and_regions
    settings = MethodsSection()
    res = run_method("ISD-1", data, settings, seed_sequence(1, "method", 2))
    small = jackknife_regions(data.pixels, data.nside, 4, rng(1, "synthetic", 301))
    dels = method_deletions(res, data, settings, small)
    assert dels.shape == (4, 10) and np.all(np.isfinite(dels))
    # deleting a quarter of the map moves the coefficients, but by less than their size
    assert np.all(np.abs(dels - np.concatenate([res.a, res.b])).max(axis=0)
                  <= np.maximum(np.abs(np.concatenate([res.a, res.b])), 1e-12) + 0.05)
    with pytest.raises(ValueError, match="no jackknife"):
        method_deletions(res.__class__(**{**res.__dict__, "name": "PCA-magic"}), data,
                         settings, regions)
