"""Shared plumbing of the methods: input checks, the fitting basis, result assembly.

Private to :mod:`hpcsys.methods`. The fitting basis is either the original
templates or their PCA rotation (Berlfein+24 App. A): ``T' = V^T T`` with
``C = T T^T / N = V D V^T``. A coefficient vector fitted on ``T'`` maps back
as ``c = V c'`` (because ``c'.T' = (V c').T``) and a covariance as
``V Sigma' V^T``; every method reports in the original basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult

__all__ = [
    "FitBasis",
    "MethodInputError",
    "check_map_data",
    "embed_cov",
    "fit_basis",
    "make_result",
]


class MethodInputError(ValueError):
    """A method was given unusable input (bad shapes, non-finite values, unknown name)."""


def check_map_data(data: MapData) -> None:
    """Validate a :class:`MapData` once, before any method runs.

    Raises
    ------
    MethodInputError
        Naming the offending field.
    """
    delta = np.asarray(data.delta)
    T = np.asarray(data.templates)
    pixels = np.asarray(data.pixels)
    if delta.ndim != 1 or delta.size == 0:
        raise MethodInputError(f"MapData.delta: expected a non-empty 1-D array, got shape {delta.shape}")
    if T.ndim != 2 or T.shape[1] != delta.size or T.shape[0] == 0:
        raise MethodInputError(
            f"MapData.templates: expected shape (K, {delta.size}) with K >= 1, got {T.shape}"
        )
    if pixels.shape != delta.shape:
        raise MethodInputError(
            f"MapData.pixels: expected shape {delta.shape} (one index per pixel), got {pixels.shape}"
        )
    if not np.all(np.isfinite(delta)):
        raise MethodInputError("MapData.delta: contains non-finite values")
    if not np.all(np.isfinite(T)):
        raise MethodInputError("MapData.templates: contains non-finite values")
    nside = int(data.nside)
    if nside < 1 or nside & (nside - 1):
        raise MethodInputError(f"MapData.nside: must be a power of two, got {data.nside}")
    if pixels.size and (pixels.min() < 0 or pixels.max() >= 12 * nside * nside):
        raise MethodInputError(f"MapData.pixels: indices outside [0, 12 nside^2) for nside {nside}")
    if data.names and len(data.names) != T.shape[0]:
        raise MethodInputError(
            f"MapData.names: expected {T.shape[0]} names (one per template), got {len(data.names)}"
        )
    if T.shape[0] >= delta.size:
        raise MethodInputError(
            f"MapData.templates: need more pixels ({delta.size}) than templates ({T.shape[0]})"
        )


@dataclass(frozen=True)
class FitBasis:
    """The template basis a method fits in, and the map back to the original one.

    Attributes
    ----------
    templates : ndarray, shape (K, Npix)
        Templates in the fitting basis (``V^T T`` when rotated).
    V : ndarray, shape (K, K) or None
        Eigenvectors of the template covariance; ``None`` for the original basis.
    """

    templates: np.ndarray
    V: np.ndarray | None

    @property
    def rotated(self) -> bool:
        """Whether the fitting basis is the PCA rotation."""
        return self.V is not None

    def coef_to_original(self, coef: np.ndarray) -> np.ndarray:
        """``c = V c'`` for coefficient vectors ``(..., K)``."""
        coef = np.asarray(coef, dtype=float)
        return coef if self.V is None else coef @ self.V.T

    def cov_to_original(self, cov: np.ndarray) -> np.ndarray:
        """``V Sigma' V^T`` for a ``(K, K)`` covariance."""
        cov = np.asarray(cov, dtype=float)
        return cov if self.V is None else self.V @ cov @ self.V.T


def fit_basis(data: MapData, pca: bool) -> FitBasis:
    """The fitting basis of Berlfein+24 App. A (PCA) or the original templates.

    Uses :func:`hpcsys.core.pca.pca_rotation` and
    :func:`hpcsys.core.pca.rotate_templates`.
    """
    T = np.asarray(data.templates, dtype=float)
    if not pca:
        return FitBasis(T, None)
    from hpcsys.core.pca import pca_rotation, rotate_templates

    rot = pca_rotation(T)
    return FitBasis(np.asarray(rotate_templates(T, rot), dtype=float), np.asarray(rot.V, dtype=float))


def embed_cov(K: int, cov_a: np.ndarray | None = None, cov_b: np.ndarray | None = None,
              cov_ab: np.ndarray | None = None) -> np.ndarray:
    """The ``(2K, 2K)`` covariance of ``(a, b)`` with ``nan`` blocks where not estimated."""
    out = np.full((2 * K, 2 * K), np.nan)
    if cov_a is not None:
        out[:K, :K] = cov_a
    if cov_b is not None:
        out[K:, K:] = cov_b
    if cov_ab is not None:
        out[:K, K:] = cov_ab
        out[K:, :K] = np.asarray(cov_ab).T
    return out


def make_result(
    name: str,
    model: str,
    K: int,
    npix: int,
    corrected: np.ndarray,
    diagnostics: MethodDiagnostics,
    *,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    a_err: np.ndarray | None = None,
    b_err: np.ndarray | None = None,
    cov: np.ndarray | None = None,
    sigma: float = float("nan"),
    weights: np.ndarray | None = None,
    **posterior: np.ndarray,
) -> MethodResult:
    """Fill a :class:`MethodResult` with the conventions of :mod:`hpcsys.methods.base`.

    Absent coefficients are zero with ``nan`` errors; weights default to ones.
    """
    zeros = np.zeros(K)
    nan = np.full(K, np.nan)
    return MethodResult(
        name=name,
        model=model,
        a=zeros.copy() if a is None else np.asarray(a, dtype=float),
        b=zeros.copy() if b is None else np.asarray(b, dtype=float),
        a_err=nan.copy() if a_err is None else np.asarray(a_err, dtype=float),
        b_err=nan.copy() if b_err is None else np.asarray(b_err, dtype=float),
        cov=embed_cov(K) if cov is None else np.asarray(cov, dtype=float),
        sigma=float(sigma),
        weights=np.ones(npix) if weights is None else np.asarray(weights, dtype=float),
        corrected=np.asarray(corrected, dtype=float),
        diagnostics=diagnostics,
        **{k: np.asarray(v, dtype=float) for k, v in posterior.items()},
    )
