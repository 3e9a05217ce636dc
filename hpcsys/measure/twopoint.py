"""Angular two-point functions w(theta) of HEALPix pixel maps with TreeCorr.

Every map is a set of values ``k_p`` at the centres of the footprint pixels.
Its correlation function is TreeCorr's KK estimator,

    w(theta_b) = sum_{pairs (p, q) in bin b} k_p k_q / N_pairs(b),

with no mean subtraction (overdensity maps have zero footprint mean by
construction) and great-circle separations (TreeCorr ``metric="Arc"``). Bins are logarithmic from ``twopoint.theta_min_arcmin``
(default: two pixel sizes, ``2 sqrt(Omega_pix)``; below that only
neighbouring pixels pair up) to ``twopoint.theta_max_arcmin``;
``theta_arcmin`` are the nominal (geometric) bin centres, identical for every map.

Several maps share one tree walk: TreeCorr's spin-0 complex correlation
(``ZZCorrelation``) of ``z = x + i y`` gives, for the same pairs, ::

    xi_+ = w(x) + w(y),    Re xi_- = w(x) - w(y),    Im xi_- = 2 w(x, y)

(``w(x, y)`` the symmetrised cross-correlation), at about the cost of one
KK run. :meth:`PixelCorrelator.w_many` therefore measures two maps per run,
and :meth:`PixelCorrelator.xi_matrix` obtains the template auto- and
cross-correlations ``xi_ij(theta)`` (Berlfein+24 Eqs. 15-16 with cross terms)
from about K^2/4 runs instead of K(K+1)/2: pairs of templates give two
autocorrelations and their cross term each, and sums of templates give the
remaining cross terms by polarisation, ``w(t_i + t_k) = xi_ii + xi_kk + 2 xi_ik``.
The estimator is bilinear in the map values for fixed positions (the tree and
its cell-pair decisions depend on the positions only), so these identities
hold to TreeCorr's internal rounding (~1e-7 relative), and the matrix in a
linearly transformed basis (e.g. the PCA rotation ``T' = V^T T``) follows as
``V^T Xi(theta) V`` (:func:`rotate_xi`) without new pair counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import healpy as hp
import numpy as np
import treecorr

from hpcsys.config import ConfigError

__all__ = ["AngularBins", "PixelCorrelator", "angular_bins", "rotate_xi"]


@dataclass(frozen=True)
class AngularBins:
    """Logarithmic angular bins.

    Attributes
    ----------
    theta_min_arcmin, theta_max_arcmin : float
        Outer bin edges.
    n_bins : int
    bin_slop : float
        TreeCorr ``bin_slop``.
    """

    theta_min_arcmin: float
    theta_max_arcmin: float
    n_bins: int
    bin_slop: float

    @property
    def edges_arcmin(self) -> np.ndarray:
        """Bin edges, shape (n_bins + 1,)."""
        return np.geomspace(self.theta_min_arcmin, self.theta_max_arcmin, self.n_bins + 1)

    @property
    def centres_arcmin(self) -> np.ndarray:
        """Nominal (geometric) bin centres, shape (n_bins,)."""
        e = self.edges_arcmin
        return np.sqrt(e[1:] * e[:-1])


def angular_bins(
    nside: int,
    theta_min_arcmin: float | None,
    theta_max_arcmin: float,
    n_bins: int,
    bin_slop: float,
) -> AngularBins:
    """Bins for a map at ``nside``; ``theta_min_arcmin=None`` means two pixel sizes.

    Raises
    ------
    ConfigError
        If the range is empty at this resolution (naming the twopoint keys).
    """
    if n_bins < 1:
        raise ConfigError(f"twopoint.n_bins: must be >= 1, got {n_bins}")
    if bin_slop < 0:
        raise ConfigError(f"twopoint.bin_slop: must be >= 0, got {bin_slop}")
    tmin = 2.0 * hp.nside2resol(nside, arcmin=True) if theta_min_arcmin is None else theta_min_arcmin
    if not 0 < tmin < theta_max_arcmin:
        raise ConfigError(
            f"twopoint.theta_max_arcmin: must exceed theta_min = {tmin:.4g} arcmin "
            f"(twopoint.theta_min_arcmin, default two pixel sizes at sky.nside = {nside}), "
            f"got {theta_max_arcmin}"
        )
    return AngularBins(float(tmin), float(theta_max_arcmin), int(n_bins), float(bin_slop))


class PixelCorrelator:
    """w(theta) of maps on a fixed set of HEALPix pixel centres.

    Parameters
    ----------
    nside : int
    pixels : ndarray of int, shape (Npix,)
        RING indices of the footprint pixels.
    bins : AngularBins
    n_threads : int, optional
        TreeCorr threads (default 1). One thread makes w bit-reproducible;
        with more, TreeCorr's OpenMP reduction adds the per-thread sums in a
        varying order and w changes at the 1e-16 relative level.

    Notes
    -----
    Holds only arrays (the positions), so it pickles cheaply; a TreeCorr
    catalogue is built per call (about 10 ms at NSIDE 512).
    """

    def __init__(self, nside: int, pixels: np.ndarray, bins: AngularBins,
                 n_threads: int | None = None) -> None:
        self.nside = int(nside)
        self.pixels = np.asarray(pixels, dtype=np.int64)
        self.bins = bins
        self.n_threads = int(n_threads) if n_threads else 1
        self.ra_deg, self.dec_deg = hp.pix2ang(self.nside, self.pixels, lonlat=True)

    @property
    def theta_arcmin(self) -> np.ndarray:
        """Nominal bin centres in arcmin."""
        return self.bins.centres_arcmin

    def _config(self) -> dict:
        b = self.bins
        return dict(min_sep=b.theta_min_arcmin, max_sep=b.theta_max_arcmin, nbins=b.n_bins,
                    sep_units="arcmin", bin_slop=b.bin_slop, angle_slop=0.1, metric="Arc")

    def _check(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.shape != self.pixels.shape:
            raise ValueError(
                f"map has shape {values.shape}, expected ({self.pixels.shape[0]},) footprint pixels"
            )
        return values

    def w(self, values: np.ndarray) -> np.ndarray:
        """Auto-correlation w(theta) of one map (values on the footprint pixels); one KK run."""
        cat = treecorr.Catalog(ra=self.ra_deg, dec=self.dec_deg, k=self._check(values),
                               ra_units="deg", dec_units="deg")
        kk = treecorr.KKCorrelation(**self._config())
        kk.process(cat, num_threads=self.n_threads)
        return np.asarray(kk.xi, dtype=float).copy()

    def w_pair(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``w(x), w(y)`` and the symmetrised cross ``w(x, y)`` from one ZZ run."""
        cat = treecorr.Catalog(ra=self.ra_deg, dec=self.dec_deg, z1=self._check(x),
                               z2=self._check(y), ra_units="deg", dec_units="deg")
        zz = treecorr.ZZCorrelation(**self._config())
        zz.process(cat, num_threads=self.n_threads)
        xip, xim = np.asarray(zz.xip, dtype=float), np.asarray(zz.xim, dtype=float)
        return 0.5 * (xip + xim), 0.5 * (xip - xim), 0.5 * np.asarray(zz.xim_im, dtype=float)

    def w_many(self, maps: np.ndarray) -> np.ndarray:
        """Auto-correlations of several maps, two per TreeCorr run.

        Parameters
        ----------
        maps : ndarray, shape (n, Npix)

        Returns
        -------
        ndarray, shape (n, B)
        """
        maps = np.asarray(maps, dtype=float)
        out = np.empty((maps.shape[0], self.bins.n_bins))
        for i in range(0, maps.shape[0] - 1, 2):
            out[i], out[i + 1], _ = self.w_pair(maps[i], maps[i + 1])
        if maps.shape[0] % 2:
            out[-1] = self.w(maps[-1])
        return out

    def npairs(self) -> np.ndarray:
        """Number of pixel pairs in each bin."""
        cat = treecorr.Catalog(ra=self.ra_deg, dec=self.dec_deg, k=np.ones(self.pixels.shape[0]),
                               ra_units="deg", dec_units="deg")
        kk = treecorr.KKCorrelation(**self._config())
        kk.process(cat, num_threads=self.n_threads)
        return np.asarray(kk.npairs, dtype=float).copy()

    def xi_matrix(self, maps: np.ndarray, *, mapper: Callable = map) -> np.ndarray:
        """Auto- and cross-correlations ``xi_ij(theta)`` of K maps.

        Parameters
        ----------
        maps : ndarray, shape (K, Npix)
        mapper : callable, optional
            ``mapper(function, iterable)`` evaluating the independent TreeCorr
            runs, like the builtin :func:`map` (the default, serial). Pass a
            pool's or an MPI executor's ``map`` to spread them over workers;
            the result does not depend on the mapper.

        Returns
        -------
        ndarray, shape (B, K, K)
            Symmetric in ``i, j``; ``xi[:, i, i]`` are the auto-correlations.

        Notes
        -----
        Templates are grouped in pairs ``(i, j)``; one ZZ run per pair gives
        ``xi_ii, xi_jj, xi_ij``. For two pairs ``(i, j), (k, n)`` the runs on
        ``(t_i + t_k, t_j + t_n)`` and ``(t_i + t_n, t_j + t_k)`` give
        ``xi_ik, xi_jn, xi_in, xi_jk`` by polarisation; an unpaired last
        template is added to both members of each pair (its autocorrelation
        is one KK run). K = 25 takes 157 runs.
        """
        maps = np.asarray(maps, dtype=float)
        K = maps.shape[0]
        B = self.bins.n_bins
        pairs = [(i, i + 1) for i in range(0, K - 1, 2)]
        single = K - 1 if K % 2 else None
        # each run: (x terms, y terms, cross-correlations it yields)
        runs: list[tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]] = []
        for i, j in pairs:
            runs.append(((i,), (j,), ()))
        if single is not None:
            runs.append(((single,), (), ()))
        for m, (i, j) in enumerate(pairs):
            for k, n in pairs[m + 1:]:
                runs.append(((i, k), (j, n), ((i, k), (j, n))))
                runs.append(((i, n), (j, k), ((i, n), (j, k))))
            if single is not None:
                runs.append(((i, single), (j, single), ((i, single), (j, single))))
        jobs = ((self, maps[list(x)].sum(axis=0), maps[list(y)].sum(axis=0) if y else None)
                for x, y, _ in runs)  # lazy: the builtin map holds one job at a time
        results = list(mapper(_pair_job, jobs))

        xi = np.empty((B, K, K))
        n_first = len(pairs) + (single is not None)
        for (x, y, _), (wx, wy, wxy) in zip(runs[:n_first], results[:n_first]):
            xi[:, x[0], x[0]] = wx
            if y:
                xi[:, y[0], y[0]] = wy
                xi[:, x[0], y[0]] = xi[:, y[0], x[0]] = wxy
        for (_, _, crosses), (qx, qy, _) in zip(runs[n_first:], results[n_first:]):
            for (i, k), q in zip(crosses, (qx, qy)):
                xi[:, i, k] = xi[:, k, i] = 0.5 * (q - xi[:, i, i] - xi[:, k, k])
        return xi


def _pair_job(job: tuple[PixelCorrelator, np.ndarray, np.ndarray | None]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One TreeCorr run of :meth:`PixelCorrelator.xi_matrix` (module level: picklable)."""
    corr, x, y = job
    if y is None:
        w = corr.w(x)
        return w, np.full_like(w, np.nan), np.full_like(w, np.nan)
    return corr.w_pair(x, y)


def rotate_xi(xi: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Template correlations in a rotated basis ``T' = V^T T``: ``V^T Xi(theta) V``.

    Parameters
    ----------
    xi : ndarray, shape (B, K, K)
    V : ndarray, shape (K, K)
    """
    return np.einsum("ki,bkl,lj->bij", V, xi, V)
