"""Mock observation: contamination, its inverse, counts and the true field."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from hpcsys import seeds
from hpcsys.config import ConfigError, TemplatesSection
from hpcsys.core.contamination import decontaminate
from hpcsys.measure.twopoint import PixelCorrelator, angular_bins
from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
from hpcsys.sims.footprint import make_footprint
from hpcsys.sims.mock import mean_count_per_pixel, observe, true_overdensity
from hpcsys.sims.spectra import target_cl
from hpcsys.sims.templates import draw_templates

NSIDE = 32


@pytest.fixture(scope="module")
def sky():
    fp = make_footprint("kids", NSIDE)
    gl = lognormal_gaussian_cl(target_cl("kids", 1.5, 3 * NSIDE - 1))
    delta = true_overdensity(draw_lognormal(gl, NSIDE, seeds.rng(1, "field", 0))[fp.pixels])
    T = draw_templates(TemplatesSection(n_templates=4), NSIDE, fp.pixels, seeds.rng(1, "templates"))
    return fp, delta, T


def test_true_overdensity_has_zero_mean(sky):
    _, delta, _ = sky
    assert abs(delta.mean()) < 1e-15
    assert delta.min() >= -1.0


@pytest.mark.parametrize("scenario", ["additive", "multiplicative", "combined"])
def test_contamination_round_trip(sky, scenario):
    _, delta, T = sky
    rng = np.random.default_rng(0)
    a = 0.05 * rng.standard_normal(4) * (scenario != "multiplicative")
    b = 0.1 * rng.standard_normal(4) * (scenario != "additive")
    m = observe(delta, T, a, b, nbar_pixel=10.0, shot_noise=False, rng=rng)
    np.testing.assert_allclose(m.delta_hat, delta * (1 + b @ T) + a @ T, rtol=0, atol=1e-14)
    back = np.asarray(decontaminate(m.delta_hat, T, a, b))
    np.testing.assert_allclose(back, delta, rtol=0, atol=1e-12)


def test_no_contamination_no_shot_noise_is_the_truth(sky):
    fp, delta, T = sky
    zero = np.zeros(4)
    m = observe(delta, T, zero, zero, nbar_pixel=10.0, shot_noise=False,
                rng=np.random.default_rng(0))
    np.testing.assert_allclose(m.delta_obs, delta, rtol=0, atol=1e-14)
    corr = PixelCorrelator(NSIDE, fp.pixels, angular_bins(NSIDE, None, 1200.0, 6, 0.1))
    np.testing.assert_allclose(corr.w(m.delta_obs), corr.w(delta), rtol=1e-12, atol=0)
    assert m.counts.size == 0 and m.n_clipped == 0


def test_additive_no_shot_noise_observes_delta_hat(sky):
    _, delta, T = sky
    a = np.array([0.03, -0.02, 0.0, 0.01])
    m = observe(delta, T, a, np.zeros(4), nbar_pixel=10.0, shot_noise=False,
                rng=np.random.default_rng(0))
    np.testing.assert_allclose(m.delta_obs, m.delta_hat, rtol=0, atol=1e-14)


def test_poisson_counts_and_shot_noise_level():
    """<N> = nbar and Var(delta_obs - delta_true) = 1/nbar within sampling error."""
    nside = 64
    fp = make_footprint("full", nside)
    delta = np.zeros(fp.n_pixels)
    nbar = mean_count_per_pixel(0.01, nside)
    assert nbar == pytest.approx(0.01 * hp.nside2pixarea(nside, degrees=True) * 3600)
    m = observe(delta, np.zeros((1, fp.n_pixels)), np.zeros(1), np.zeros(1), nbar_pixel=nbar,
                shot_noise=True, rng=seeds.rng(2, "counts", 0))
    n = fp.n_pixels
    assert m.counts.dtype == np.int64
    assert abs(m.counts.mean() - nbar) < 5 * np.sqrt(nbar / n)
    var = np.mean(m.delta_obs**2)
    # X = N/nbar - 1 has E[X^2] = 1/nbar and Var(X^2) = (2 + 1/nbar)/nbar^2 (Poisson moments)
    sd = np.sqrt((2.0 + 1.0 / nbar) / n) / nbar
    assert abs(var - 1.0 / nbar) < 5 * sd
    assert abs(m.delta_obs.mean()) < 1e-14


def test_negative_densities_are_clipped(sky):
    _, delta, T = sky
    a = np.array([2.0, 0.0, 0.0, 0.0])  # makes 1 + delta_hat < 0 on many pixels
    m = observe(delta, T, a, np.zeros(4), nbar_pixel=50.0, shot_noise=True,
                rng=np.random.default_rng(1))
    neg = 1 + m.delta_hat < 0
    assert m.n_clipped == neg.sum() > 0
    assert np.all(m.counts[neg] == 0)


def test_bad_density_raises_config_error():
    with pytest.raises(ConfigError, match=r"^sky\.number_density: must be > 0"):
        mean_count_per_pixel(-1.0, 32)
