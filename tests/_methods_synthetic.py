"""Synthetic maps for the method tests: independent Gaussian pixels, correlated templates.

Not a test module (no ``test_`` prefix); imported by ``tests/test_methods_*.py``.
"""

from __future__ import annotations

import numpy as np

from hpcsys.methods.base import MapData
from hpcsys.seeds import rng

MASTER = 20240124


def synthetic_map(index: int, *, npix: int = 20000, K: int = 5, nside: int = 64,
                  sigma: float = 0.3, rho: float = 0.3, a=None, b=None,
                  density_b=None) -> MapData:
    """A seeded synthetic map on the first ``npix`` RING pixels (a polar cap).

    ``delta`` is white Gaussian with standard deviation ``sigma``; the ``K``
    templates are Gaussian with uniform correlation ``rho``, standardised.
    ``a``, ``b`` contaminate as Berlfein+24 Eq. 13; ``density_b`` instead
    modulates the density, ``1 + delta_obs ∝ (1 + delta) exp(density_b.t)``.
    """
    g = rng(MASTER, "synthetic", index)
    corr = np.full((K, K), rho) + (1.0 - rho) * np.eye(K)
    L = np.linalg.cholesky(corr)
    T = L @ g.standard_normal((K, npix))
    T = (T - T.mean(axis=1, keepdims=True)) / T.std(axis=1, keepdims=True)
    delta = sigma * g.standard_normal(npix)
    a = np.zeros(K) if a is None else np.asarray(a, dtype=float)
    b = np.zeros(K) if b is None else np.asarray(b, dtype=float)
    obs = delta * (1.0 + b @ T) + a @ T
    if density_b is not None:
        y = (1.0 + delta) * np.exp(np.asarray(density_b) @ T)
        obs = y / y.mean() - 1.0
    return MapData(delta=obs, templates=T, pixels=np.arange(npix), nside=nside,
                   names=tuple(f"t{i}" for i in range(K)))
