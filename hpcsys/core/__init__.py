"""Pure-JAX numerics of Berlfein+24: contamination, likelihoods, fits, corrections, tests.

No I/O, no MPI, no global state; every array function works under ``jit`` and
``vmap``. float64 is switched on by the entry point (``jax_enable_x64``), not here.

Modules: :mod:`~hpcsys.core.contamination` (Eqs. 11-13),
:mod:`~hpcsys.core.likelihood` (Eqs. 17-18), :mod:`~hpcsys.core.fit` (MLE),
:mod:`~hpcsys.core.pca` (App. A), :mod:`~hpcsys.core.correction` (Eqs. 15-16,
21), :mod:`~hpcsys.core.stats` (Eqs. 19, 24-26), :mod:`~hpcsys.core.models`
(the model vocabulary), :mod:`~hpcsys.core.comparison` (every model x likelihood
and the LRT matrix).

The names below are loaded on first access, so importing the pure-Python
vocabulary (:mod:`hpcsys.core.models`) does not import JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> submodule of :mod:`hpcsys.core` defining it.
_WHERE: dict[str, str] = {
    "FIT_MODELS": "models",
    "LIKELIHOODS": "models",
    "LRTMatrix": "comparison",
    "LRTResult": "stats",
    "LRT_PAIRS": "models",
    "MLEGrid": "comparison",
    "MLEResult": "fit",
    "MODELS": "models",
    "ModelComparison": "comparison",
    "ModelTerms": "models",
    "PCARotation": "pca",
    "SCENARIOS": "models",
    "amplitude_fit": "stats",
    "binomial_fraction": "stats",
    "compare_models": "comparison",
    "contaminate": "contamination",
    "contaminate_w": "correction",
    "correct_w": "correction",
    "correct_w_diag": "correction",
    "cov_to_original": "pca",
    "debias": "correction",
    "decontaminate": "contamination",
    "empirical_pvalue": "stats",
    "fit_mle": "fit",
    "hartlap_inverse": "stats",
    "likelihood_ratio_test": "stats",
    "loglike": "likelihood",
    "n_params": "likelihood",
    "pack": "likelihood",
    "param_layout": "likelihood",
    "pca_rotation": "pca",
    "rotate_templates": "pca",
    "sample_covariance": "stats",
    "template_sum": "contamination",
    "to_original": "pca",
    "unpack": "likelihood",
}

__all__ = [
    "FIT_MODELS",
    "LIKELIHOODS",
    "LRT_PAIRS",
    "MODELS",
    "SCENARIOS",
    "LRTMatrix",
    "LRTResult",
    "MLEGrid",
    "MLEResult",
    "ModelComparison",
    "ModelTerms",
    "PCARotation",
    "amplitude_fit",
    "binomial_fraction",
    "compare_models",
    "contaminate",
    "contaminate_w",
    "correct_w",
    "correct_w_diag",
    "cov_to_original",
    "debias",
    "decontaminate",
    "empirical_pvalue",
    "fit_mle",
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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"hpcsys.core.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hpcsys.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
