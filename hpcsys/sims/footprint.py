"""Survey footprints on the HEALPix sphere (RING ordering, equatorial coordinates).

``kids``
    A KiDS-1000-like footprint of two strips: KiDS-North on the celestial
    equator, 156 deg <= RA <= 225 deg, -5 deg <= Dec <= +4 deg (about 620 deg^2),
    and KiDS-South, RA from 330 deg through 0 deg to 52 deg,
    -35.5 deg <= Dec <= -26.5 deg (about 630 deg^2): about 1250 deg^2 in all,
    between the 1006 deg^2 effective and 1350 deg^2 nominal KiDS-1000 areas.
    At NSIDE 512 it holds about 95 000 pixels.
``full``
    The whole sphere.
``cap``
    A spherical cap of radius ``sky.cap_radius_deg`` around the north celestial pole.
``file``
    A HEALPix FITS mask (``sky.mask_file``, read by
    :func:`hpcsys.io.maps.read_healpix`: NESTED files are reordered, files
    without an ORDERING keyword refused); pixels with a value > 0 are
    observed, NaN/UNSEEN pixels are not. A mask at another NSIDE is regraded
    and thresholded at 0.5.

A pixel belongs to a footprint when its centre does.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np

from hpcsys.config import ConfigError
from hpcsys.io.maps import MapInputError, bad_pixels, read_healpix

__all__ = ["KIDS_STRIPS", "Footprint", "make_footprint"]

#: (RA min, RA max, Dec min, Dec max) in degrees of the KiDS-like strips;
#: RA min > RA max means the strip wraps through RA = 0.
KIDS_STRIPS: tuple[tuple[float, float, float, float], ...] = (
    (156.0, 225.0, -5.0, 4.0),
    (330.0, 52.0, -35.5, -26.5),
)


@dataclass(frozen=True)
class Footprint:
    """Observed pixels of a HEALPix map.

    Attributes
    ----------
    name : str
        ``kids``, ``full``, ``cap`` or ``file``.
    nside : int
    pixels : ndarray of int64, shape (Npix,)
        Sorted RING indices of the observed pixels.
    """

    name: str
    nside: int
    pixels: np.ndarray

    @property
    def n_pixels(self) -> int:
        """Number of observed pixels."""
        return int(self.pixels.shape[0])

    @property
    def area_deg2(self) -> float:
        """Observed area in square degrees."""
        return self.n_pixels * hp.nside2pixarea(self.nside, degrees=True)

    @property
    def fsky(self) -> float:
        """Observed fraction of the sphere."""
        return self.n_pixels / hp.nside2npix(self.nside)

    def radec_deg(self) -> tuple[np.ndarray, np.ndarray]:
        """Right ascension and declination of the pixel centres in degrees."""
        ra, dec = hp.pix2ang(self.nside, self.pixels, lonlat=True)
        return ra, dec

    def mask(self) -> np.ndarray:
        """Full-sky boolean mask."""
        m = np.zeros(hp.nside2npix(self.nside), dtype=bool)
        m[self.pixels] = True
        return m


def _in_strip(ra: np.ndarray, dec: np.ndarray, strip: tuple[float, ...]) -> np.ndarray:
    ra0, ra1, dec0, dec1 = strip
    in_ra = (ra >= ra0) & (ra <= ra1) if ra0 <= ra1 else (ra >= ra0) | (ra <= ra1)
    return in_ra & (dec >= dec0) & (dec <= dec1)


def _read_mask(path: str, nside: int) -> np.ndarray:
    try:
        f = read_healpix(path)
    except MapInputError as exc:
        raise ConfigError(f"sky.mask_file: {exc}") from None
    if f.values.shape[0] != 1:
        raise ConfigError(
            f"sky.mask_file: {path}: expected one map column, found {f.values.shape[0]}"
        )
    m = f.values[0]
    observed = ((m > 0) & ~bad_pixels(m)).astype(float)
    if f.nside != nside:
        observed = hp.ud_grade(observed, nside, order_in="RING", order_out="RING")
        return observed > 0.5
    return observed > 0


def make_footprint(
    name: str,
    nside: int,
    *,
    cap_radius_deg: float = 30.0,
    mask_file: str | None = None,
) -> Footprint:
    """Build a footprint (see the module docstring).

    Parameters
    ----------
    name : str
        ``kids``, ``full``, ``cap`` or ``file``.
    nside : int
        HEALPix NSIDE (a power of two).
    cap_radius_deg : float
        Radius of the ``cap`` footprint.
    mask_file : str, optional
        FITS mask for ``file``.

    Raises
    ------
    ConfigError
        Unknown footprint (``sky.footprint``), bad NSIDE (``sky.nside``), an
        unreadable mask (``sky.mask_file``, naming the file) or an empty footprint.
    """
    if not isinstance(nside, (int, np.integer)) or nside < 1 or nside & (nside - 1):
        raise ConfigError(f"sky.nside: must be a power of two, got {nside}")
    npix = hp.nside2npix(nside)
    if name == "full":
        pixels = np.arange(npix, dtype=np.int64)
    elif name == "kids":
        ra, dec = hp.pix2ang(nside, np.arange(npix), lonlat=True)
        sel = np.zeros(npix, dtype=bool)
        for strip in KIDS_STRIPS:
            sel |= _in_strip(ra, dec, strip)
        pixels = np.flatnonzero(sel).astype(np.int64)
    elif name == "cap":
        if not 0 < cap_radius_deg <= 180:
            raise ConfigError(f"sky.cap_radius_deg: must be in (0, 180], got {cap_radius_deg}")
        pixels = hp.query_disc(nside, (0.0, 0.0, 1.0), np.radians(cap_radius_deg))
        pixels = np.sort(pixels).astype(np.int64)
    elif name == "file":
        if not mask_file:
            raise ConfigError("sky.mask_file: required when sky.footprint is 'file'")
        pixels = np.flatnonzero(_read_mask(mask_file, nside)).astype(np.int64)
    else:
        raise ConfigError(
            f"sky.footprint: must be one of kids, full, cap, file; got {name!r}"
        )
    if pixels.shape[0] < 2:
        where = f" ({mask_file})" if name == "file" else ""
        raise ConfigError(
            f"sky.footprint: footprint {name!r}{where} holds {pixels.shape[0]} pixels at "
            f"NSIDE {nside}; increase sky.nside or the footprint"
        )
    return Footprint(name=name, nside=int(nside), pixels=pixels)
