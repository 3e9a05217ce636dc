"""``map2alm`` (``iter=0``) of footprint maps restricted to the footprint's rings.

``healpy.map2alm(m, lmax, iter=0)`` is the plain quadrature
``a_lm = Omega_pix sum_p m(p) Y*_lm(p)`` over all ``12 NSIDE^2`` pixels: it
transforms every ring of the sphere, almost all of them empty for a survey
footprint (the KiDS strips at NSIDE 512 touch 223 of the 2047 rings). With
``Y_lm = lambda_lm(theta) e^{i m phi}`` and the pixels of a ring at
``phi_j = phi_0 + 2 pi j / n_phi``,

    a_lm = Omega_pix sum_rings lambda_lm(theta_r) e^{-i m phi_0r} FFT_r(m mod n_phi),

so only the touched rings are Fourier transformed, and ``lambda_lm`` is
tabulated once per footprint (``(lmax+1)(lmax+2)/2`` values per ring, by the
standard stable three-term recurrence in ``l``). The result equals healpy's to
rounding (tests/test_measure_sandwich.py); :func:`ring_alms` is used where the
table fits :data:`MAX_TABLE_BYTES`, healpy otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import healpy as hp
import numpy as np

__all__ = ["MAX_TABLE_BYTES", "RingTransform", "ring_alms", "ring_transform"]

#: Largest Legendre table (bytes) built for a footprint; above it healpy is used.
MAX_TABLE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class RingTransform:
    """Tables of the ring-restricted transform of one footprint and band.

    Attributes
    ----------
    lmax : int
    rings : list of (ndarray, ndarray, int)
        Per touched ring: positions of its footprint pixels in the footprint
        order, their index within the ring, the ring's ``n_phi``.
    phase : ndarray of complex, shape (R, lmax + 1)
        ``e^{-i m phi_0r}``.
    legendre : list of ndarray
        Per ``m``: ``lambda_lm(theta_r)`` for ``l = m .. lmax``, shape ``(lmax + 1 - m, R)``.
    omega : float
    """

    lmax: int
    rings: list[tuple[np.ndarray, np.ndarray, int]]
    phase: np.ndarray
    legendre: list[np.ndarray]
    omega: float


def _legendre(cos_theta: np.ndarray, lmax: int) -> list[np.ndarray]:
    """Normalised ``lambda_lm`` (healpy's ``Y_lm``, Condon-Shortley phase), per ``m``.

    ``lambda_mm = -sqrt((2m+1)/(2m)) sin(theta) lambda_{m-1,m-1}`` (in logs, so
    that ``sin^m`` does not underflow before it is negligible), then
    ``lambda_lm = a_lm (x lambda_{l-1,m} - b_lm lambda_{l-2,m})``.
    """
    x = np.asarray(cos_theta, dtype=float)
    log_sin = np.log(np.maximum(np.sqrt(np.maximum(1.0 - x * x, 0.0)), np.finfo(float).tiny))
    log_mm = np.full_like(x, -0.5 * np.log(4.0 * np.pi))
    out = []
    for m in range(lmax + 1):
        if m > 0:
            log_mm = log_mm + 0.5 * np.log((2.0 * m + 1.0) / (2.0 * m)) + log_sin
        block = np.empty((lmax + 1 - m, x.size))
        block[0] = (-1.0) ** m * np.exp(log_mm)
        if m < lmax:
            block[1] = x * np.sqrt(2.0 * m + 3.0) * block[0]
        for i in range(2, lmax + 1 - m):
            ell = m + i
            a_lm = np.sqrt((4.0 * ell * ell - 1.0) / (ell * ell - m * m))
            b_lm = np.sqrt(((ell - 1.0) ** 2 - m * m) / (4.0 * (ell - 1.0) ** 2 - 1.0))
            block[i] = a_lm * (x * block[i - 1] - b_lm * block[i - 2])
        out.append(block)
    return out


_CACHE: dict[tuple[int, int, bytes], RingTransform | None] = {}


def ring_transform(pixels: np.ndarray, nside: int, lmax: int) -> RingTransform | None:
    """The tables for ``pixels`` (cached per footprint); None when they would be too large."""
    pixels = np.asarray(pixels, dtype=np.int64)
    key = (int(nside), int(lmax), hashlib.sha256(pixels.tobytes()).digest())
    if key in _CACHE:
        return _CACHE[key]
    nring = 4 * nside - 1
    start, ringpix, cos_t, _, _ = hp.ringinfo(nside, np.arange(1, nring + 1))
    start = np.asarray(start, dtype=np.int64)
    ring_of = np.searchsorted(start, pixels, side="right") - 1
    touched = np.unique(ring_of)
    n_alm = (lmax + 1) * (lmax + 2) // 2
    result: RingTransform | None = None
    if n_alm * touched.size * 8 <= MAX_TABLE_BYTES:
        rings = []
        for r in touched:
            pos = np.flatnonzero(ring_of == r)
            rings.append((pos, pixels[pos] - start[r], int(ringpix[r])))
        phi0 = hp.pix2ang(nside, start[touched])[1]
        phase = np.exp(-1j * np.outer(phi0, np.arange(lmax + 1)))
        result = RingTransform(int(lmax), rings, phase, _legendre(cos_t[touched], lmax),
                               4.0 * np.pi / (12 * nside * nside))
    if len(_CACHE) > 4:
        _CACHE.clear()
    _CACHE[key] = result
    return result


def ring_alms(maps: np.ndarray, rt: RingTransform) -> np.ndarray:
    """``map2alm`` (``iter=0``, healpy ordering) of footprint maps ``(M, Npix)`` -> ``(M, n_alm)``."""
    maps = np.atleast_2d(np.asarray(maps, dtype=float))
    M, lmax = maps.shape[0], rt.lmax
    m_all = np.arange(lmax + 1)
    # real and imaginary parts side by side, contiguous per m: one real matmul per m
    G = np.empty((lmax + 1, len(rt.rings), 2 * M))
    for r, (pos, j, nphi) in enumerate(rt.rings):
        ring = np.zeros((M, nphi))
        ring[:, j] = maps[:, pos]
        F = np.fft.fft(ring, axis=1)[:, m_all % nphi] * rt.phase[r]
        G[:, r, :M] = F.real.T
        G[:, r, M:] = F.imag.T
    out = np.empty((M, (lmax + 1) * (lmax + 2) // 2), dtype=complex)
    i = 0
    for m in range(lmax + 1):
        res = rt.legendre[m] @ G[m]  # (lmax + 1 - m, 2M)
        n = res.shape[0]
        out[:, i:i + n].real = res[:, :M].T
        out[:, i:i + n].imag = res[:, M:].T
        i += n
    return rt.omega * out
