"""TreeCorr w(theta) on pixel maps: binning, Legendre check, cross terms by polarisation."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import treecorr

from hpcsys import seeds
from hpcsys.config import ConfigError
from hpcsys.measure.twopoint import PixelCorrelator, angular_bins, rotate_xi
from hpcsys.sims.fields import draw_gaussian
from hpcsys.sims.footprint import make_footprint
from hpcsys.sims.spectra import legendre_w, template_cl


def test_default_bins_start_at_two_pixel_sizes():
    b = angular_bins(512, None, 300.0, 12, 0.1)
    assert b.theta_min_arcmin == pytest.approx(2 * hp.nside2resol(512, arcmin=True))
    assert b.edges_arcmin.shape == (13,)
    assert b.edges_arcmin[-1] == pytest.approx(300.0)
    np.testing.assert_allclose(np.diff(np.log(b.centres_arcmin)),
                               np.log(300.0 / b.theta_min_arcmin) / 12)
    assert angular_bins(512, 20.0, 300.0, 12, 0.1).theta_min_arcmin == 20.0


def test_empty_range_raises_config_error():
    with pytest.raises(ConfigError, match=r"^twopoint\.theta_max_arcmin: .*sky\.nside = 16"):
        angular_bins(16, None, 300.0, 12, 0.1)


def test_map_shape_is_checked():
    fp = make_footprint("kids", 16)
    corr = PixelCorrelator(16, fp.pixels, angular_bins(16, None, 3000.0, 4, 0.1))
    with pytest.raises(ValueError, match="footprint pixels"):
        corr.w(np.zeros(fp.n_pixels + 1))


def test_template_w_matches_legendre_sum_of_its_cl():
    """Mean TreeCorr w of 12 full-sky template draws = pair-averaged Legendre w(theta).

    The field is sampled at pixel centres, so its covariance between two
    pixels is exactly sum_l (2l+1)/(4 pi) C_l P_l(cos theta_pq); with
    bin_slop = 0 the expectation of the estimator in a bin is the average of
    that function over the pixel pairs of the bin, computed here by brute force.
    """
    nside, n = 16, 12
    lmax = 3 * nside - 1
    cl = template_cl("power1", lmax)
    fp = make_footprint("full", nside)
    bins = angular_bins(nside, None, 4000.0, 8, 0.0)
    corr = PixelCorrelator(nside, fp.pixels, bins)
    ws = np.array([corr.w(draw_gaussian(cl, nside, seeds.rng(9, "synthetic", i)))
                   for i in range(n)])
    # expectation: pair average of the Legendre sum
    v = np.array(hp.pix2vec(nside, fp.pixels))
    cosang = np.clip(v.T @ v, -1, 1)
    sep = np.degrees(np.arccos(cosang)) * 60
    iu = np.triu_indices(fp.n_pixels, 1)
    sep, cosang = sep[iu], cosang[iu]
    which = np.digitize(sep, bins.edges_arcmin) - 1
    grid = np.linspace(0.0, np.pi, 20001)  # the Legendre sum on a fine grid, interpolated
    wl = np.interp(np.arccos(cosang), grid, legendre_w(cl, grid))
    expected = np.array([wl[which == b].mean() for b in range(bins.n_bins)])
    npairs = np.array([(which == b).sum() for b in range(bins.n_bins)])
    np.testing.assert_array_equal(corr.npairs(), npairs)
    z = (ws.mean(0) - expected) / (ws.std(0, ddof=1) / np.sqrt(n))
    assert np.all(np.abs(z) < 4.5), z
    # the signal is many sigma from zero on small scales, so the test has power
    assert expected[0] / (ws.std(0, ddof=1)[0] / np.sqrt(n)) > 10


@pytest.fixture(scope="module")
def maps():
    nside = 32
    fp = make_footprint("kids", nside)
    rng = seeds.rng(4, "synthetic")
    lmax = 3 * nside - 1
    m = np.array([draw_gaussian(template_cl(f, lmax), nside, rng)[fp.pixels]
                  for f in ("exp", "power2", "gauss", "power1", "white")])
    return nside, fp, m


@pytest.mark.parametrize("K", [4, 5])
def test_xi_matrix_equals_treecorr_auto_and_cross_correlations(maps, K):
    """Every entry of xi_matrix (pairs, pairs of pairs, unpaired last map) vs TreeCorr KK.

    With bin_slop = 0 both are sums over the same pairs; they agree to
    TreeCorr's internal rounding (~1e-7 relative), far below the sampling
    error of xi.
    """
    nside, fp, m = maps
    m = m[:K]
    bins = angular_bins(nside, None, 900.0, 5, 0.0)
    corr = PixelCorrelator(nside, fp.pixels, bins)
    xi = corr.xi_matrix(m)
    assert xi.shape == (5, K, K)
    np.testing.assert_array_equal(xi, xi.transpose(0, 2, 1))
    cats = [treecorr.Catalog(ra=corr.ra_deg, dec=corr.dec_deg, k=x, ra_units="deg",
                             dec_units="deg") for x in m]
    direct = np.empty_like(xi)
    for i in range(K):
        for j in range(i, K):
            kk = treecorr.KKCorrelation(min_sep=bins.theta_min_arcmin,
                                        max_sep=bins.theta_max_arcmin, nbins=bins.n_bins,
                                        sep_units="arcmin", bin_slop=0.0, metric="Arc")
            kk.process(cats[i]) if i == j else kk.process(cats[i], cats[j])
            direct[:, i, j] = direct[:, j, i] = kk.xi
    np.testing.assert_allclose(xi, direct, rtol=0, atol=1e-6 * np.abs(direct).max())


def test_w_many_equals_single_map_runs(maps):
    nside, fp, m = maps
    corr = PixelCorrelator(nside, fp.pixels, angular_bins(nside, None, 900.0, 5, 0.3))
    many = corr.w_many(m)
    single = np.array([corr.w(x) for x in m])
    np.testing.assert_allclose(many, single, rtol=0, atol=1e-6 * np.abs(single).max())
    # identical maps in one run give identical w (the exact null check of the pipeline)
    a, b, ab = corr.w_pair(m[0], m[0].copy())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ab, a, rtol=1e-12)


def test_rotated_xi_equals_xi_of_rotated_maps(maps):
    """Bilinearity: V^T Xi V equals Xi measured on V^T T (with TreeCorr's bin_slop > 0 too).

    Equal up to TreeCorr's internal rounding (~1e-7 relative, single-precision
    level), many orders below the sampling error of xi.
    """
    nside, fp, m = maps
    corr = PixelCorrelator(nside, fp.pixels, angular_bins(nside, None, 600.0, 5, 0.3))
    V, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))
    direct = corr.xi_matrix(V.T @ m)
    np.testing.assert_allclose(rotate_xi(corr.xi_matrix(m), V), direct, rtol=0,
                               atol=1e-6 * np.abs(direct).max())


def test_xi_matrix_does_not_depend_on_the_mapper(maps):
    from concurrent.futures import ThreadPoolExecutor

    nside, fp, m = maps
    corr = PixelCorrelator(nside, fp.pixels, angular_bins(nside, None, 900.0, 5, 0.1))
    with ThreadPoolExecutor(2) as pool:
        parallel = corr.xi_matrix(m, mapper=pool.map)
    np.testing.assert_array_equal(parallel, corr.xi_matrix(m))
