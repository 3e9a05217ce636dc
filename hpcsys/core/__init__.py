"""Pure-JAX numerics of Berlfein+24: contamination, likelihoods, fits, corrections, tests.

No I/O, no MPI, no global state; every array function works under ``jit`` and
``vmap``. float64 is switched on by the entry point (``jax_enable_x64``), not here.
"""

from hpcsys.core.contamination import MODELS, contaminate, decontaminate, template_sum
from hpcsys.core.fit import MLEResult, fit_mle
from hpcsys.core.likelihood import LIKELIHOODS, loglike, n_params, pack, param_layout, unpack
from hpcsys.core.pca import (
    PCARotation,
    cov_to_original,
    pca_rotation,
    rotate_templates,
    to_original,
)

__all__ = [
    "LIKELIHOODS",
    "MODELS",
    "MLEResult",
    "PCARotation",
    "contaminate",
    "cov_to_original",
    "decontaminate",
    "fit_mle",
    "loglike",
    "n_params",
    "pack",
    "param_layout",
    "pca_rotation",
    "rotate_templates",
    "template_sum",
    "to_original",
    "unpack",
]
