"""Footprints: KiDS-like strips, full sky, caps and user FITS masks."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from hpcsys.config import ConfigError
from hpcsys.sims.footprint import make_footprint


def test_kids_footprint_area_and_geometry():
    fp = make_footprint("kids", 64)
    assert fp.n_pixels == 1496  # deterministic: pixel centres inside the strips
    assert 1000 < fp.area_deg2 < 1350
    ra, dec = fp.radec_deg()
    north = dec > -10
    assert np.all((ra[north] >= 156) & (ra[north] <= 225))
    assert np.all((dec[~north] >= -35.5) & (dec[~north] <= -26.5))
    assert np.all((ra[~north] >= 330) | (ra[~north] <= 52))  # wraps through RA = 0
    assert int(north.sum()) == 742  # KiDS-North; the rest is KiDS-South
    assert np.all(np.diff(fp.pixels) > 0)


def test_kids_pixel_count_at_paper_resolution():
    """Deterministic: the exact number of NSIDE-512 pixel centres inside the two strips."""
    fp = make_footprint("kids", 512)
    assert fp.n_pixels == 95_209


def test_full_and_cap():
    full = make_footprint("full", 16)
    assert full.n_pixels == hp.nside2npix(16) and full.fsky == 1.0
    cap = make_footprint("cap", 64, cap_radius_deg=30.0)
    assert cap.n_pixels == 3280  # deterministic: pixel centres within 30 deg of the pole
    expected = 2 * np.pi * (1 - np.cos(np.radians(30.0))) * (180 / np.pi) ** 2
    # pixelisation error ~ perimeter x pixel size
    assert cap.area_deg2 == pytest.approx(expected, rel=0.03)
    assert np.all(cap.radec_deg()[1] >= 60.0 - 1e-9)


def test_mask_file_round_trip_and_regrade(tmp_path):
    nside = 32
    m = np.zeros(hp.nside2npix(nside))
    want = make_footprint("cap", nside, cap_radius_deg=40.0).pixels
    m[want] = 1.0
    path = tmp_path / "mask.fits"
    hp.write_map(path, m, dtype=np.float64)
    fp = make_footprint("file", nside, mask_file=str(path))
    np.testing.assert_array_equal(fp.pixels, want)
    up = make_footprint("file", 64, mask_file=str(path))
    assert up.n_pixels == 4 * want.size


def test_unreadable_mask_names_the_file(tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_text("this is not FITS")
    with pytest.raises(ConfigError, match=r"^sky\.mask_file: .*broken\.fits"):
        make_footprint("file", 32, mask_file=str(bad))


def test_bad_values_raise_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"^sky\.footprint: .*'stripe82'"):
        make_footprint("stripe82", 32)
    with pytest.raises(ConfigError, match=r"^sky\.nside: must be a power of two"):
        make_footprint("full", 48)
    with pytest.raises(ConfigError, match=r"^sky\.footprint: .*holds 0 pixels"):
        make_footprint("cap", 1, cap_radius_deg=1.0)
