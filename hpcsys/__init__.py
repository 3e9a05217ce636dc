"""hpcsys: an MPI-parallel validation suite for galaxy-clustering systematics mitigation.

Tests, on many lognormal mock skies, how well six decontamination methods
recover additive and multiplicative imaging systematics (Berlfein et al. 2024,
MNRAS 531, 4954) and how much bias is left in the clustering signal.

Importing :mod:`hpcsys` has no side effects: it does not initialise MPI, switch
JAX to float64 or touch a GPU. Those happen in the entry points
(:mod:`hpcsys.cli`) or when a caller asks for them.

Subpackages, lowest layer first: :mod:`hpcsys.core` (pure JAX numerics),
:mod:`hpcsys.sims`, :mod:`hpcsys.measure`, :mod:`hpcsys.methods`,
:mod:`hpcsys.pipeline`, :mod:`hpcsys.parallel` (the only MPI-aware code), with
:mod:`hpcsys.config` and :mod:`hpcsys.io` as leaves.
"""

from hpcsys._version import __version__
from hpcsys.config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "__version__", "load_config"]
