"""True contamination coefficients (a, b) of Berlfein+24 Eqs. 11-13 (SCIENCE.md section 3).

Drawn once per run from the ``truth`` stream of the master seed, so every
rank and every realisation uses the same values:

1. ``a_raw, b_raw ~ N(0, 1)^K`` (independent; ``a`` first, then ``b``);
2. for each of ``a`` and ``b`` separately, ``round(zero_fraction * K)``
   entries, chosen at random, are set exactly to zero (at least one entry
   stays non-zero);
3. the non-zero entries are rescaled so their root mean square is
   ``contamination.additive_amplitude`` (for ``a``) or
   ``contamination.multiplicative_amplitude`` (for ``b``).

Scenario ``null`` uses ``a = b = 0``, ``additive`` uses ``(a, 0)``,
``multiplicative`` ``(0, b)``, ``combined`` ``(a, b)``.

Default amplitudes
------------------
The defaults (``additive_amplitude`` 0.02, ``multiplicative_amplitude`` 0.05 in
:mod:`hpcsys.config`) were calibrated with ``benchmarks/bench_sims.py
--calibrate`` at paper settings (NSIDE 512, K = 25, kids footprint, default
seed and spectra): the amplitudes are chosen so that in the ``combined``
scenario the uncorrected w(theta), fitted as ``A w_ref`` with the mock
covariance of w_true (Berlfein+24 Eqs. 25-26), is biased by about 1.5 sigma_A,
the additive and multiplicative terms contributing about equally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcsys.config import SCENARIOS, ConfigError, ContaminationSection

__all__ = ["TrueCoefficients", "draw_truth"]


@dataclass(frozen=True)
class TrueCoefficients:
    """The injected (a, b) of a run.

    Attributes
    ----------
    a, b : ndarray, shape (K,)
        Coefficients of the additive and multiplicative terms.
    """

    a: np.ndarray
    b: np.ndarray

    def for_scenario(self, scenario: str) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` injected in a scenario (zeros for absent terms)."""
        zero = np.zeros_like(self.a)
        if scenario == "null":
            return zero, zero.copy()
        if scenario == "additive":
            return self.a.copy(), zero
        if scenario == "multiplicative":
            return zero, self.b.copy()
        if scenario == "combined":
            return self.a.copy(), self.b.copy()
        raise ConfigError(
            f"run.scenarios: unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}"
        )


def _sparse_scaled(rng: np.random.Generator, K: int, zero_fraction: float,
                   amplitude: float) -> np.ndarray:
    x = rng.standard_normal(K)
    n_zero = min(round(zero_fraction * K), K - 1)
    x[rng.permutation(K)[:n_zero]] = 0.0
    nz = x != 0
    return x * (amplitude / np.sqrt(np.mean(x[nz] ** 2)))


def draw_truth(section: ContaminationSection, K: int, rng: np.random.Generator) -> TrueCoefficients:
    """Draw the true coefficients (see the module docstring).

    Parameters
    ----------
    section : ContaminationSection
        Amplitudes and zero fraction.
    K : int
        Number of templates.
    rng : numpy.random.Generator
        The ``truth`` stream of :mod:`hpcsys.seeds`.
    """
    if K < 1:
        raise ConfigError(f"templates.n_templates: must be >= 1, got {K}")
    a = _sparse_scaled(rng, K, section.zero_fraction, section.additive_amplitude)
    b = _sparse_scaled(rng, K, section.zero_fraction, section.multiplicative_amplitude)
    return TrueCoefficients(a=a, b=b)
