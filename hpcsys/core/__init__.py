"""Pure-JAX numerics of Berlfein+24: contamination, likelihoods, fits, corrections, tests.

No I/O, no MPI, no global state; every array function works under ``jit`` and
``vmap``. float64 is switched on by the entry point (``jax_enable_x64``), not here.

Modules: :mod:`~hpcsys.core.contamination` (Eqs. 11-13),
:mod:`~hpcsys.core.likelihood` (Eqs. 17-18), :mod:`~hpcsys.core.fit` (MLE),
:mod:`~hpcsys.core.pca` (App. A), :mod:`~hpcsys.core.correction` (Eqs. 15-16,
21), :mod:`~hpcsys.core.stats` (Eqs. 19, 24-26).
"""

from hpcsys.core.contamination import MODELS, contaminate, decontaminate, template_sum
from hpcsys.core.correction import contaminate_w, correct_w, correct_w_diag, debias
from hpcsys.core.fit import MLEResult, fit_mle, fit_mle_many
from hpcsys.core.likelihood import LIKELIHOODS, loglike, n_params, pack, param_layout, unpack
from hpcsys.core.pca import (
    PCARotation,
    cov_to_original,
    pca_rotation,
    rotate_templates,
    to_original,
)
from hpcsys.core.stats import (
    LRTResult,
    amplitude_fit,
    binomial_fraction,
    empirical_pvalue,
    hartlap_inverse,
    likelihood_ratio_test,
    sample_covariance,
)

__all__ = [
    "LIKELIHOODS",
    "MODELS",
    "LRTResult",
    "MLEResult",
    "PCARotation",
    "amplitude_fit",
    "binomial_fraction",
    "contaminate",
    "contaminate_w",
    "correct_w",
    "correct_w_diag",
    "cov_to_original",
    "debias",
    "decontaminate",
    "empirical_pvalue",
    "fit_mle",
    "fit_mle_many",
    "hartlap_inverse",
    "likelihood_ratio_test",
    "loglike",
    "n_params",
    "pack",
    "param_layout",
    "pca_rotation",
    "rotate_templates",
    "sample_covariance",
    "template_sum",
    "to_original",
    "unpack",
]
