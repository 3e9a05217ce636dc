"""One realisation end to end: mock sky, all methods, MLE fits, LRTs and w(theta).

:func:`run_realisation` is the unit of work that :mod:`hpcsys.parallel`
scatters over ranks. It is deterministic in ``(config, scenario, index)``:
every random number comes from :mod:`hpcsys.seeds` streams keyed by the
realisation (and scenario / method) index, never by the rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcsys.methods.base import MethodResult

__all__ = ["LRT_PAIRS", "FIT_MODELS", "STAGES", "RealisationResult"]

#: Models fitted by maximum likelihood for the LRT matrix (Berlfein+24 Eq. 19).
FIT_MODELS: tuple[str, ...] = ("null", "additive", "multiplicative", "combined")
#: (null model, alternative model) pairs of the likelihood-ratio tests.
LRT_PAIRS: tuple[tuple[str, str], ...] = (
    ("null", "additive"),
    ("null", "multiplicative"),
    ("null", "combined"),
    ("additive", "combined"),
    ("multiplicative", "combined"),
)
#: Timed stages of one realisation, in order.
STAGES: tuple[str, ...] = ("mock", "methods", "mle", "twopoint", "total")


@dataclass(frozen=True)
class RealisationResult:
    """Everything measured on one mock realisation of one scenario.

    Shapes: K templates, M methods (``config.methods.names`` order), L
    likelihoods (``config.methods.likelihoods`` order), F = len(FIT_MODELS),
    Q = len(LRT_PAIRS), B angular bins.

    Attributes
    ----------
    scenario, index : str, int
        Task identity.
    seed_words : ndarray of uint32, shape (4,)
        State words of the realisation's ``field`` and ``counts`` streams (provenance).
    a_true, b_true : ndarray, shape (K,)
        Injected coefficients (zeros for absent terms of the scenario).
    theta_arcmin : ndarray, shape (B,)
        Bin centres of w(theta) in arcmin.
    w_true, w_obs : ndarray, shape (B,)
        w(theta) of the true field and of the contaminated observed field.
    methods : tuple of MethodResult, length M
    w_corrected : ndarray, shape (M, B)
        Each method's corrected w: Berlfein+24 Eq. 16 with the full template
        cross-correlation matrix for coefficient methods; the re-measured
        weighted map for weighting methods (ISD).
    w_corrected_diag : ndarray, shape (M, B)
        Eq. 16 with template autocorrelations only (no cross terms), ``nan`` for ISD.
    w_remeasured : ndarray, shape (M, B)
        w(theta) of each method's corrected map.
    mle_loglike : ndarray, shape (F, L)
        Maximum log-likelihood of each model and likelihood.
    mle_converged, mle_hit_pole : ndarray of bool, shape (F, L)
    mle_a, mle_b, mle_a_err, mle_b_err : ndarray, shape (F, L, K)
    mle_s, mle_g : ndarray, shape (F, L)
    lrt_lambda, lrt_pvalue : ndarray, shape (Q, L)
        Eq. 19 statistic and its Wilks chi-square p-value.
    lrt_dof : ndarray of int, shape (Q,)
    stage_seconds : ndarray, shape (len(STAGES),)
    peak_memory_mb : float
        Peak resident memory of the process after this task.
    """

    scenario: str
    index: int
    seed_words: np.ndarray
    a_true: np.ndarray
    b_true: np.ndarray
    theta_arcmin: np.ndarray
    w_true: np.ndarray
    w_obs: np.ndarray
    methods: tuple[MethodResult, ...]
    w_corrected: np.ndarray
    w_corrected_diag: np.ndarray
    w_remeasured: np.ndarray
    mle_loglike: np.ndarray
    mle_converged: np.ndarray
    mle_hit_pole: np.ndarray
    mle_a: np.ndarray
    mle_b: np.ndarray
    mle_a_err: np.ndarray
    mle_b_err: np.ndarray
    mle_s: np.ndarray
    mle_g: np.ndarray
    lrt_lambda: np.ndarray
    lrt_pvalue: np.ndarray
    lrt_dof: np.ndarray
    stage_seconds: np.ndarray
    peak_memory_mb: float
