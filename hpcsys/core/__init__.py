"""Pure-JAX numerics of Berlfein+24: contamination, likelihoods, fits, corrections, tests.

No I/O, no MPI, no global state; every function works under ``jit`` and
``vmap``. float64 is switched on by the entry point (``jax_enable_x64``), not here.
"""

from hpcsys.core.contamination import MODELS, contaminate, decontaminate, template_sum
from hpcsys.core.likelihood import LIKELIHOODS, loglike, n_params, pack, param_layout, unpack

__all__ = [
    "LIKELIHOODS",
    "MODELS",
    "contaminate",
    "decontaminate",
    "loglike",
    "n_params",
    "pack",
    "param_layout",
    "template_sum",
    "unpack",
]
