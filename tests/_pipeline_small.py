"""The small pipeline configuration and the result digest shared by the pipeline tests.

Imported by ``tests/test_pipeline.py`` and by the fresh interpreter that test
starts to check bit-identical results across processes.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from hpcsys.pipeline import RealisationResult

__all__ = ["SMALL", "digest"]

#: NSIDE 32 polar cap, 3 templates, short chains: one realisation in seconds.
SMALL = {
    "run": {"master_seed": 424242},
    "sky": {"nside": 32, "footprint": "cap", "cap_radius_deg": 60.0},
    "templates": {"n_templates": 3},
    "twopoint": {"theta_max_arcmin": 1200.0, "n_bins": 6},
    "methods": {"mcmc_walkers": 16, "mcmc_steps": 30, "mcmc_burn_in": 10},
}


#: Fields that record timings (wall_time, stage_seconds, the sampler message
#: quotes its sampling time) or process memory: legitimately different between runs.
_NOT_REPRODUCIBLE = ("stage_seconds", "peak_memory_mb", "wall_time", "message")


def digest(res: RealisationResult) -> str:
    """SHA-256 over every array and number of a result (methods included)."""
    h = hashlib.sha256()

    def add(x):
        if dataclasses.is_dataclass(x):
            for f in dataclasses.fields(x):
                if f.name not in _NOT_REPRODUCIBLE:
                    add(getattr(x, f.name))
        elif isinstance(x, (tuple, list)):
            for y in x:
                add(y)
        elif isinstance(x, np.ndarray):
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            h.update(repr(x).encode())

    add(res)
    return h.hexdigest()
