"""The run directory (``run.output_dir``): its layout and its identity.

::

    RUN_DIR/config.yaml      resolved configuration (identifies the run)
    RUN_DIR/run_info.json    ranks, hosts, devices, timings of the last run
    RUN_DIR/templates.h5     template names, correlation and xi_ij(theta)
    RUN_DIR/tasks/<scenario>/<index:05d>.h5
    RUN_DIR/results.h5       written by :func:`hpcsys.reduction.reduce_run`

Shared by the run driver (:mod:`hpcsys.parallel.runner`) and the reducer
(:mod:`hpcsys.reduction`); JAX-free and MPI-free.
"""

from __future__ import annotations

import yaml

from hpcsys.config import Config
from hpcsys.io import config_hash

__all__ = [
    "CONFIG_FILE",
    "INFO_FILE",
    "RESULTS_FILE",
    "TEMPLATES_FILE",
    "RunError",
    "science_hash",
]

CONFIG_FILE = "config.yaml"
INFO_FILE = "run_info.json"
TEMPLATES_FILE = "templates.h5"
RESULTS_FILE = "results.h5"


class RunError(ValueError):
    """The run cannot start or be reduced (run directory, missing tasks, ...)."""


def science_hash(config: Config) -> str:
    """Hash of everything that changes results: the config without ``parallel`` and
    ``run.output_dir`` (so a run may be resumed with other ranks, threads or paths)."""
    d = config.to_dict()
    d.pop("parallel", None)
    d["run"].pop("output_dir", None)
    return config_hash(yaml.safe_dump(d, sort_keys=True))
