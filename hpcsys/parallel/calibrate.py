"""The calibration task kind of a run: Table 2's null mocks (:mod:`hpcsys.calibration`).

After every evaluated task is written, rank 0 computes the bootstrap points
(:func:`hpcsys.calibration.bootstrap_points`: scenario-mean MLE of the free
null models, read from the task files) and the calibration tasks still to run;
both go to every rank, which then run their share exactly like evaluated tasks
(distributed by :mod:`hpcsys.parallel.distribute`, each written atomically to
``RUN_DIR/tasks/calibration/<j:05d>.h5`` by :func:`hpcsys.io.write_task`).

A calibration file counts as done on ``--resume`` when it is complete
(:func:`hpcsys.io.task_status`), of the same configuration, and was computed
at the same bootstrap points (to 1e-8 relative: a resume with other threads may
move an MLE in its last bits, which does not change the calibration). Seeds
are keyed by the calibration index ``j``, never the rank.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hpcsys.calibration import (
    CALIBRATION_KIND,
    BootstrapPoints,
    bootstrap_points,
    calibration_path,
    same_points,
)
from hpcsys.config import Config
from hpcsys.io import task_path, task_status
from hpcsys.parallel.distribute import Task

__all__ = ["calibration_plan", "run_points"]

def _done(path: Path, cfg_hash: str, points: BootstrapPoints) -> bool:
    st = task_status(path)
    if not st.complete or st.config_hash != cfg_hash:
        return False
    try:
        with h5py.File(path, "r") as f:
            return (same_points(f["result/bootstrap_a"][()], points.a)
                    and same_points(f["result/bootstrap_b"][()], points.b))
    except (OSError, KeyError):
        return False


def run_points(config: Config, run_dir: str | Path) -> BootstrapPoints:
    """Bootstrap points of a run from its evaluated task files (all must be complete)."""
    scen = config.run.scenarios
    mle_a: dict[str, np.ndarray] = {}
    mle_b: dict[str, np.ndarray] = {}
    for s in scen:
        a, b = [], []
        for i in range(config.run.n_realisations):
            with h5py.File(task_path(run_dir, s, i), "r") as f:
                a.append(f["result/mle/a"][()])
                b.append(f["result/mle/b"][()])
        mle_a[s], mle_b[s] = np.stack(a), np.stack(b)
    return bootstrap_points(scen, mle_a, mle_b, likelihood_index=0)


def calibration_plan(config: Config, run_dir: str | Path, cfg_hash: str
                     ) -> tuple[BootstrapPoints, list[Task]]:
    """Bootstrap points and the calibration tasks still to run (rank 0, after the tasks phase).

    Returns
    -------
    points : BootstrapPoints
    pending : list of Task
        ``Task(tid=j, scenario=CALIBRATION_KIND, index=j)`` for every calibration
        index whose file is not done (see the module docstring).
    """
    points = run_points(config, run_dir)
    M = config.analysis.calibration_realisations
    pending = [Task(j, CALIBRATION_KIND, j) for j in range(M)
               if not _done(calibration_path(run_dir, j), cfg_hash, points)]
    return points, pending
