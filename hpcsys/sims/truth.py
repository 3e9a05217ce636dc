"""True contamination coefficients (a, b) of Berlfein+24 Eqs. 11-13 (docs/science/models.rst).

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
Calibrated with ``python benchmarks/bench_sims.py --calibrate 40`` at paper
settings (NSIDE 512, K = 25, kids footprint, default seed, spectra and
twopoint bins, 13.7'-300'): 40 realisations give the covariance of w_true
(Hartlap-corrected) and ``sigma_A = 0.026`` for the amplitude of
``w = A w_ref`` (Berlfein+24 Eqs. 25-26); the bias of the uncorrected w follows
from the forward model ``w_obs = w_true (1 + b^T Xi b) + a^T Xi a`` (Eqs.
15-16) with the run's template correlation matrix Xi(theta). At
``additive_amplitude = 0.02, multiplicative_amplitude = 0.05`` it gave
dA/sigma_A = 5.34 (additive term) and 0.31 (multiplicative term); both scale
as amplitude^2.

* The multiplicative amplitude stays at 0.05: the pixel values of ``b.t``
  then have a standard deviation of about 0.16 and ``min_p (1 + b.t_p) ~ 0.3``
  on the footprint, safely inside the domain of the likelihood (the Jacobian
  pole at ``1 + b.t = 0``). Raising it to reach even 0.75 sigma_A
  (0.08) puts the *true* parameters beyond the pole on some pixels.
* The additive amplitude, 0.0095, supplies the rest:
  0.0095 gives 5.34 (0.0095/0.02)^2 = 1.20 sigma_A.

So at paper settings the uncorrected amplitude is biased by about
1.5 sigma_A in the ``combined`` scenario (1.2 additive, 0.3 multiplicative).
The calibration uses the expectation of w_obs; sigma_A from 40 mocks is
uncertain by about 15 per cent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcsys.config import ConfigError, ContaminationSection
from hpcsys.core.models import MODELS, SCENARIOS

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
        if scenario not in SCENARIOS:
            raise ConfigError(
                f"run.scenarios: unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}"
            )
        has_a, has_b = MODELS[scenario]
        a = self.a.copy() if has_a else np.zeros_like(self.a)
        b = self.b.copy() if has_b else np.zeros_like(self.a)
        return a, b


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
