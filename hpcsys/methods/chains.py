"""Convergence and summaries of an ensemble chain: ESS, split-R-hat, posterior intervals.

Private building blocks of :mod:`hpcsys.methods.ensemble`; pure NumPy on the
kept samples ``(S, W, P)`` (``S`` kept steps, ``W`` walkers, ``P`` parameters).

* **Integrated autocorrelation time** ``tau_p`` per parameter, in sampler
  steps: :func:`emcee.autocorr.integrated_time` (the walker-averaged
  autocorrelation function of Goodman & Weare 2010, integrated with Sokal's
  automatic window ``c = 5``), times the thinning.
* **Effective sample size** ``ESS_p = W S thin / tau_p``: the number of
  independent draws with the Monte Carlo variance of the chain's mean, so the
  Monte Carlo error of a posterior mean is ``std_p / sqrt(ESS_p)``. The estimate
  of ``tau`` is itself unreliable on chains shorter than about ``50 tau``
  (emcee's warning); the ESS target of a converged chain (``methods.mcmc_ess_target``,
  400 by default) is met only well past that on the parameter counts used here.
* **Split-R-hat** (Gelman et al. 2013, BDA3 Sect. 11.4) over four sequences:
  the two halves of the walkers (by index; the stretch move pairs walkers at
  random, so the halves are exchangeable) times the two halves of the kept
  steps. Each sequence pools its walkers;
  ``R = sqrt(((n - 1)/n W + B/n) / W)`` with ``W`` the mean within-sequence
  variance and ``B/n`` the variance of the sequence means. It is 1 up to
  ``O(1/ESS)`` for a stationary, mixed chain and exceeds it when the first and
  second half of the chain, or the two walker groups, sample different
  regions (an unfinished burn-in, a stuck group of walkers). The walkers of an
  ensemble are not independent chains, so this is a diagnostic of drift and
  of poor mixing between walker groups, not the multi-chain R-hat of
  independent samplers.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import emcee
import numpy as np

__all__ = ["ChainSummary", "autocorr_time", "split_rhat", "summarise_samples"]

#: Percentiles of the central 68 % and 95 % intervals.
Q68 = (15.865525393145708, 84.13447460685429)
Q95 = (2.5, 97.5)


def autocorr_time(samples: np.ndarray, thin: int = 1) -> np.ndarray:
    """Integrated autocorrelation time per parameter, in steps (emcee's estimator, quiet).

    Parameters
    ----------
    samples : ndarray, shape (S, W, P)
        Kept samples.
    thin : int
        Steps between kept samples.

    Returns
    -------
    ndarray, shape (P,)
    """
    log = logging.getLogger("emcee.autocorr")
    level = log.level
    log.setLevel(logging.ERROR)  # the short-chain warning is reported via ``converged``
    try:
        tau = emcee.autocorr.integrated_time(samples, quiet=True)
    finally:
        log.setLevel(level)
    return np.asarray(tau, dtype=float) * thin


def split_rhat(samples: np.ndarray) -> np.ndarray:
    """Split-R-hat per parameter over walker halves x chain halves (module docstring).

    Parameters
    ----------
    samples : ndarray, shape (S, W, P)
        ``S >= 4`` kept steps of ``W >= 2`` walkers.

    Returns
    -------
    ndarray, shape (P,)
        ``nan`` where a sequence has zero variance.
    """
    S, W, P = samples.shape
    if S < 4 or W < 2:
        return np.full(P, np.nan)
    h, g = S // 2, W // 2
    seqs = [samples[t0:t0 + h, w0:w1].reshape(-1, P)
            for t0 in (0, S - h) for (w0, w1) in ((0, g), (g, 2 * g))]
    n = seqs[0].shape[0]
    means = np.array([s.mean(axis=0) for s in seqs])
    within = np.mean([s.var(axis=0, ddof=1) for s in seqs], axis=0)
    between = means.var(axis=0, ddof=1)  # B / n
    var_plus = (n - 1) / n * within + between
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(within > 0, np.sqrt(var_plus / within), np.nan)


class ChainSummary(NamedTuple):
    """Posterior summaries of flat samples ``(M, P)`` and chain diagnostics per parameter.

    ``mean, median, std`` (P,); ``ci68, ci95`` (P, 2) central intervals;
    ``tau`` (P,) autocorrelation times in steps, ``ess`` (P,) effective sample
    sizes, ``rhat`` (P,) split-R-hat. The chain diagnostics are those of the
    sampled parameters; ``mean`` etc. may be of a linear transform of them.
    """

    mean: np.ndarray
    median: np.ndarray
    std: np.ndarray
    ci68: np.ndarray
    ci95: np.ndarray
    tau: np.ndarray
    ess: np.ndarray
    rhat: np.ndarray


def summarise_samples(samples: np.ndarray, thin: int, flat: np.ndarray | None = None) -> ChainSummary:
    """Moments, intervals and convergence diagnostics of a chain.

    Parameters
    ----------
    samples : ndarray, shape (S, W, P)
        Kept samples of the sampled parameters (diagnostics are computed on these).
    thin : int
    flat : ndarray, shape (S W, Q), optional
        The quantities to summarise (default ``samples`` flattened), e.g. the
        coefficients rotated back to the original template basis. The ESS of a
        rotated coefficient is that of its own chain (computed on ``flat``
        reshaped to ``(S, W, Q)``).

    Returns
    -------
    ChainSummary
    """
    S, W, P = samples.shape
    x = samples.reshape(-1, P) if flat is None else np.asarray(flat, dtype=float)
    chain = x.reshape(S, W, -1)
    tau = autocorr_time(chain, thin)
    return ChainSummary(
        mean=x.mean(axis=0),
        median=np.median(x, axis=0),
        std=x.std(axis=0, ddof=1),
        ci68=np.percentile(x, Q68, axis=0).T,
        ci95=np.percentile(x, Q95, axis=0).T,
        tau=tau,
        ess=S * W * thin / tau,
        rhat=split_rhat(chain),
    )
