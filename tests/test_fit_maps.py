"""Reading and validating user HEALPix maps (hpcsys.io.maps): one test per bad input."""

from __future__ import annotations

import astropy.io.fits as fits
import healpy as hp
import numpy as np
import pytest

from hpcsys.io.maps import MapInputError, load_user_maps, read_healpix
from hpcsys.io.prepare import prepare_maps
from hpcsys.seeds import rng

NSIDE = 16
NPIX = 12 * NSIDE**2


@pytest.fixture()
def sky():
    """Random overdensity, three templates and a mask (half the sky)."""
    g = rng(7, "synthetic", 0)
    delta = 0.1 * g.standard_normal(NPIX)
    tmpl = g.standard_normal((3, NPIX)) * np.array([[1.0], [2.0], [0.5]]) + np.array([[0.0], [3.0], [-1.0]])
    theta, _ = hp.pix2ang(NSIDE, np.arange(NPIX))
    mask = (theta < np.pi / 2).astype(float)
    return delta, tmpl, mask


def _write(path, maps, nest=False, **kw):
    hp.write_map(str(path), maps, nest=nest, overwrite=True, dtype=np.float64, **kw)
    return str(path)


def test_load_roundtrip_multicolumn_and_names(tmp_path, sky):
    delta, tmpl, mask = sky
    mp = _write(tmp_path / "delta.fits", delta)
    t1 = _write(tmp_path / "single.fits", tmpl[0])
    t2 = _write(tmp_path / "multi.fits", tmpl[1:], column_names=["STAR", "DUST"])
    mk = _write(tmp_path / "mask.fits", mask)
    um = load_user_maps(mp, [t1, t2], mask_path=mk)
    assert um.nside == NSIDE
    assert um.names == ("single", "multi:STAR", "multi:DUST")
    assert um.template_labels[2] == f"{t2}[DUST]"
    np.testing.assert_array_equal(um.map, delta)
    np.testing.assert_array_equal(um.templates, tmpl)
    np.testing.assert_array_equal(um.mask, mask)
    assert um.notes == ()


def test_nested_file_is_reordered_to_ring_with_a_note(tmp_path, sky):
    delta, tmpl, _ = sky
    mp = _write(tmp_path / "delta_nest.fits", hp.reorder(delta, r2n=True), nest=True)
    tp = _write(tmp_path / "t.fits", tmpl[0])
    um = load_user_maps(mp, [tp])
    np.testing.assert_array_equal(um.map, delta)
    assert any("NESTED, reordered to RING" in n and mp in n for n in um.notes)
    assert read_healpix(mp).ordering == "NESTED"


def test_nside_mismatch_is_refused_naming_the_file(tmp_path, sky):
    delta, tmpl, _ = sky
    mp = _write(tmp_path / "delta.fits", delta)
    tp = _write(tmp_path / "coarse.fits", hp.ud_grade(tmpl[0], NSIDE // 2))
    with pytest.raises(MapInputError, match=r"coarse\.fits: NSIDE 8 differs from NSIDE 16"):
        load_user_maps(mp, [tp])


def test_nside_mismatch_of_arrays_is_refused(sky):
    delta, tmpl, _ = sky
    with pytest.raises(MapInputError, match="templates: NSIDE 8 differs"):
        prepare_maps(delta, hp.ud_grade(tmpl, NSIDE // 2))


def test_missing_ordering_keyword_is_refused(tmp_path, sky):
    delta, _, _ = sky
    src = _write(tmp_path / "delta.fits", delta)
    with fits.open(src) as hdul:
        del hdul[1].header["ORDERING"]
        hdul.writeto(tmp_path / "noord.fits")
    with pytest.raises(MapInputError, match=r"noord\.fits: no ORDERING keyword"):
        read_healpix(tmp_path / "noord.fits")


def test_missing_file_is_refused(tmp_path, sky):
    _, tmpl, _ = sky
    tp = _write(tmp_path / "t.fits", tmpl[0])
    with pytest.raises(MapInputError, match=r"nothere\.fits: no such file"):
        load_user_maps(tmp_path / "nothere.fits", [tp])


def test_not_fits_is_refused(tmp_path, sky):
    delta, _, _ = sky
    mp = _write(tmp_path / "delta.fits", delta)
    bad = tmp_path / "notes.fits"
    bad.write_text("this is a text file, not FITS\n")
    with pytest.raises(MapInputError, match=r"notes\.fits: not a FITS file"):
        load_user_maps(mp, [bad])


def test_fits_without_healpix_table_is_refused(tmp_path):
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "image.fits")
    with pytest.raises(MapInputError, match=r"image\.fits: FITS file without a HEALPix"):
        read_healpix(tmp_path / "image.fits")


def test_multicolumn_map_and_counts_without_mask_are_refused(tmp_path, sky):
    delta, tmpl, _ = sky
    mp = _write(tmp_path / "iqu.fits", [delta, delta, delta])
    tp = _write(tmp_path / "t.fits", tmpl[0])
    with pytest.raises(MapInputError, match=r"iqu\.fits: expected one map column, found 3"):
        load_user_maps(mp, [tp])
    with pytest.raises(MapInputError, match="--mask: required with --counts"):
        load_user_maps(tp, [tp], counts=True)


def test_cut_sky_file_is_expanded_and_missing_pixels_masked(tmp_path, sky):
    delta, tmpl, _ = sky
    d = delta.copy()
    d[:100] = hp.UNSEEN
    mp = _write(tmp_path / "partial.fits", d, partial=True)
    um = load_user_maps(mp, [_write(tmp_path / "t.fits", tmpl[0])])
    assert any("cut-sky" in n and "100 pixels" in n for n in um.notes)
    prep = prepare_maps(um.map, um.templates)
    assert prep.n_bad_map == 100
    assert prep.n_pixels == NPIX - 100
    np.testing.assert_array_equal(prep.delta, delta[100:])


def test_nan_and_unseen_pixels_are_masked_and_counted(sky):
    delta, tmpl, mask = sky
    d, t = delta.copy(), tmpl.copy()
    inside = np.flatnonzero(mask > 0)
    outside = np.flatnonzero(mask == 0)
    d[inside[:5]] = np.nan
    d[inside[5:8]] = hp.UNSEEN
    d[outside[:4]] = np.nan  # outside the mask: not counted as bad
    t[1, inside[7:12]] = np.inf  # overlaps one bad map pixel
    m = mask.copy()
    m[inside[20:22]] = np.nan  # unobserved
    prep = prepare_maps(d, t, m, names=["a", "b", "c"])
    assert prep.n_bad_map == 8
    np.testing.assert_array_equal(prep.n_bad_templates, [0, 5, 0])
    assert prep.n_bad_mask == 2
    assert prep.n_outside_mask == outside.size + 2
    assert prep.n_pixels == inside.size - 8 - 4 - 2
    assert np.all(np.isfinite(prep.delta))
    assert any("b: 5 NaN/inf/UNSEEN pixels masked" in n for n in prep.notes)


def test_empty_footprint_is_refused(sky):
    delta, tmpl, mask = sky
    with pytest.raises(MapInputError, match=r"mask\.fits selects no pixel"):
        prepare_maps(delta, tmpl, np.zeros(NPIX), mask_label="mask.fits")
    with pytest.raises(MapInputError, match=r"delta\.fits: empty footprint"):
        prepare_maps(np.full(NPIX, hp.UNSEEN), tmpl, mask, map_label="delta.fits")


def test_templates_are_standardised_on_the_footprint(sky):
    delta, tmpl, mask = sky
    prep = prepare_maps(delta, tmpl, mask)
    np.testing.assert_allclose(prep.templates.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(prep.templates.std(axis=1), 1.0, atol=1e-12)
    raw = tmpl[:, mask > 0]
    np.testing.assert_allclose(prep.template_std, raw.std(axis=1), rtol=1e-12)
    np.testing.assert_allclose(prep.template_mean, raw.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(prep.pixels, np.flatnonzero(mask > 0))
    assert prep.dropped == ()


def test_constant_duplicate_and_dependent_templates_are_dropped(sky):
    delta, tmpl, mask = sky
    const_on_fp = np.where(mask > 0, 2.5, tmpl[0])  # varies only outside the footprint
    dup = -3.0 * tmpl[0] + 1.0
    combo = tmpl[0] + 2 * tmpl[2]
    t = np.stack([tmpl[0], const_on_fp, tmpl[1], dup, tmpl[2], combo])
    prep = prepare_maps(delta, t, mask, names=["t0", "const", "t1", "dup", "t2", "combo"])
    assert prep.names == ("t0", "t1", "t2")
    assert prep.dropped == ("const", "dup", "combo")
    assert prep.dropped_reasons[0] == "constant on the footprint"
    assert prep.dropped_reasons[1].startswith("duplicate of t0 (correlation -1.0")
    assert prep.dropped_reasons[2].startswith("linear combination of earlier templates")
    assert prep.n_input_templates == 6
    assert any("template dup dropped" in n for n in prep.notes)


def test_no_usable_template_is_refused(sky):
    delta, _, mask = sky
    with pytest.raises(MapInputError, match=r"templates: no usable template.*constant"):
        prepare_maps(delta, np.ones((2, NPIX)), mask)


def test_counts_become_overdensity(sky):
    _, tmpl, mask = sky
    counts = rng(7, "synthetic", 1).poisson(20.0, NPIX).astype(float)
    prep = prepare_maps(counts, tmpl, mask, counts=True)
    n = counts[mask > 0]
    np.testing.assert_allclose(prep.delta, n / n.mean() - 1.0, rtol=0, atol=1e-14)
    assert prep.mean_count == pytest.approx(n.mean(), rel=1e-14)
    assert abs(prep.delta.mean()) < 1e-12


def test_bad_counts_are_refused(sky):
    _, tmpl, mask = sky
    neg = np.full(NPIX, 5.0)
    neg[np.flatnonzero(mask)[0]] = -1.0
    with pytest.raises(MapInputError, match=r"counts\.fits: negative galaxy counts on 1"):
        prepare_maps(neg, tmpl, mask, counts=True, map_label="counts.fits")
    with pytest.raises(MapInputError, match=r"counts\.fits: all galaxy counts"):
        prepare_maps(np.zeros(NPIX), tmpl, mask, counts=True, map_label="counts.fits")
    with pytest.raises(MapInputError, match="mask: required with counts"):
        prepare_maps(neg, tmpl, counts=True)


def test_counts_passed_as_overdensity_get_a_note(sky):
    _, tmpl, mask = sky
    counts = rng(7, "synthetic", 2).poisson(20.0, NPIX).astype(float)
    prep = prepare_maps(counts, tmpl, mask, map_label="c.fits")
    assert any("c.fits: mean" in n and "--counts" in n for n in prep.notes)
