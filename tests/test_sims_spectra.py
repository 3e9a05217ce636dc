"""Target and template spectra; the lognormal field reproduces its target C_l."""

from __future__ import annotations

import itertools

import healpy as hp
import numpy as np
import pytest

from hpcsys import seeds
from hpcsys.config import TEMPLATE_FAMILIES, ConfigError
from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
from hpcsys.sims.spectra import load_cl_table, target_cl, template_cl


def test_shipped_table_is_complete_and_physical():
    ell, cl = load_cl_table("kids")
    assert ell[0] == 0 and np.array_equal(ell, np.arange(ell.size))
    assert ell[-1] >= 3 * 2048 - 1  # supports NSIDE up to 2048
    assert cl[0] == 0 and cl[1] == 0
    assert np.all(cl[2:] > 0)
    # projected galaxy clustering: C_l falls by orders of magnitude from l ~ 10 to 1000
    assert 10 < cl[10] / cl[1000] < 1e3


def test_target_cl_scales_with_bias_squared():
    c1 = target_cl("kids", 1.0, 95)
    c2 = target_cl("kids", 1.5, 95)
    assert c1.shape == (96,)
    np.testing.assert_allclose(c2, 2.25 * c1, rtol=1e-14)


def test_target_cl_from_user_file_and_errors(tmp_path):
    f = tmp_path / "cl.txt"
    ell = np.arange(0, 50)
    np.savetxt(f, np.column_stack([ell, 1e-5 / (ell + 1)]))
    cl = target_cl(str(f), 1.0, 40)
    np.testing.assert_allclose(cl[2:], 1e-5 / (ell[2:41] + 1))
    with pytest.raises(ConfigError, match=r"^sky\.spectrum: .*ends at l = 49"):
        target_cl(str(f), 1.0, 95)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n1 nope\n")
    with pytest.raises(ConfigError, match=r"^sky\.spectrum: cannot read"):
        load_cl_table(str(bad))
    with pytest.raises(ConfigError, match=r"^sky\.spectrum"):
        load_cl_table(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("family", TEMPLATE_FAMILIES)
def test_template_cl_unit_variance(family):
    lmax = 191
    cl = template_cl(family, lmax)
    ell = np.arange(lmax + 1)
    assert cl[0] == cl[1] == 0
    assert np.sum((2 * ell + 1) / (4 * np.pi) * cl) == pytest.approx(1.0, rel=1e-12)


def test_template_cl_shapes():
    lmax = 1000
    ell = np.arange(2, lmax + 1)
    for fam, shape in [("exp", np.exp(-ell / 500)), ("gauss", np.exp(-((ell / 250) ** 2))),
                       ("power2", (ell + 1.0) ** -2), ("power1", (ell + 1.0) ** -1),
                       ("white", np.ones(ell.size))]:
        r = template_cl(fam, lmax)[2:] / shape
        np.testing.assert_allclose(r, r[0], rtol=1e-12)
    with pytest.raises(ConfigError, match=r"^templates\.families"):
        template_cl("pink", 10)


def test_lognormal_field_matches_target_cl():
    """Mean anafast C_l of 24 lognormal maps vs the target, in ell bins, l <= 2 NSIDE.

    GLASS samples the band-limited field at pixel centres (no pixel window);
    aliasing of the lognormal field's power above l_max only matters near
    l_max = 3 NSIDE - 1, so the comparison stops at 2 NSIDE. The tolerance is
    the scatter of the binned C_l over the realisations (cosmic variance and
    lognormal non-Gaussianity), with a chi-square test over the bins.
    """
    nside, n_real = 32, 24
    lmax = 3 * nside - 1
    cl = target_cl("kids", 1.5, lmax)
    gl = lognormal_gaussian_cl(cl)
    edges = np.arange(2, 2 * nside + 2, 8)
    binned = np.empty((n_real, edges.size - 1))
    for i in range(n_real):
        m = draw_lognormal(gl, nside, seeds.rng(7, "synthetic", i))
        assert m.min() >= -1.0
        c = hp.anafast(m, lmax=lmax, iter=0)
        binned[i] = [c[a:b].sum() for a, b in itertools.pairwise(edges)]
    target = np.array([cl[a:b].sum() for a, b in itertools.pairwise(edges)])
    mean = binned.mean(0)
    err = binned.std(0, ddof=1) / np.sqrt(n_real)
    z = (mean - target) / err
    assert np.all(np.abs(z) < 4.0), z
    # chi-square over 8 bins: 99.99th percentile of chi2(8) is 31.8
    assert np.sum(z**2) < 31.8, z
    # and the agreement is tight in absolute terms (a few per cent)
    assert np.all(np.abs(mean / target - 1) < 0.05)


def test_gaussian_spectrum_is_lognormal_transform():
    """xi_G = ln(1 + xi) in real space (docs/science/models.rst, "The true field"), checked by Legendre sums."""
    from hpcsys.sims.spectra import legendre_w

    lmax = 95
    cl = target_cl("kids", 1.5, lmax)
    gl = lognormal_gaussian_cl(cl)
    assert np.all(gl >= 0)
    theta = np.radians(np.linspace(0.5, 30, 12))
    xi = legendre_w(cl, theta)
    xig = legendre_w(gl, theta)
    # band-limited transform: agreement to the truncation level of the series
    np.testing.assert_allclose(xig, np.log1p(xi), atol=2e-3 * np.log1p(xi[0]))


def test_shipped_table_reproduced_by_committed_script():
    """The committed CAMB script regenerates the shipped table (CAMB is optional)."""
    pytest.importorskip("camb")
    from hpcsys.sims.spectra import compute_kids_cl

    ell, cl = compute_kids_cl(lmax=400)
    ell_t, cl_t = load_cl_table("kids")
    np.testing.assert_array_equal(ell, ell_t[:401])
    np.testing.assert_allclose(cl[2:], cl_t[2:401], rtol=1e-4)
