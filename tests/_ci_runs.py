"""End-to-end ``hpcsys run`` processes of configs/ci.yaml, started once per test session.

``tests/test_parallel_runs.py`` (equality across rank counts and schedules, a
killed rank, a failing task) and ``tests/test_parallel_prepare.py`` (the run
context built once per run, ``--resume`` from its cache) inspect the same runs:
each step below starts its processes the first time a test asks for it and
records what a test needs to see of the run directory *at that step* (later
steps change the directory), so every run is started once whatever the order.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import h5py

from hpcsys.io import task_status

__all__ = ["CI", "MPIEXEC", "N_TASKS", "CIRuns", "Step", "hpcsys_run", "ranks_used"]

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "configs" / "ci.yaml"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
N_TASKS = 12  # 4 scenarios x 3 realisations in configs/ci.yaml


def hpcsys_run(run_dir: Path, *args: str, ranks: int = 1, fault: str = "",
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``[mpiexec -n ranks] python -m hpcsys run ci.yaml`` into ``run_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
    env.pop("HPCSYS_FAULT", None)
    if fault:
        env["HPCSYS_FAULT"] = fault
    cmd = [sys.executable, "-m", "hpcsys", "run", str(CI), "--set",
           f"run.output_dir={run_dir}", "--set",
           f"parallel.compilation_cache_dir={os.environ['HPCSYS_TEST_JAX_CACHE']}",
           *args]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)


def ranks_used(run_dir: Path) -> set[int]:
    """The ranks that wrote the complete task files of ``run_dir``."""
    out = set()
    for t in (run_dir / "tasks").rglob("*.h5"):
        if task_status(t).complete:
            with h5py.File(t, "r") as f:
                out.add(int(f.attrs["rank"]))
    return out


@dataclasses.dataclass(frozen=True)
class Step:
    """One process (or mpiexec job) of a run and the run directory right after it."""

    run_dir: Path
    proc: subprocess.CompletedProcess[str]
    complete: tuple[Path, ...]  # complete task files after this step
    ranks: frozenset[int]  # ranks that wrote them
    has_results: bool  # results.h5 exists after this step

    @property
    def results(self) -> Path:
        return self.run_dir / "results.h5"


class CIRuns:
    """The session's configs/ci.yaml runs under ``root``, each step started at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._steps: dict[str, Step] = {}

    def _step(self, name: str, run: str, *args: str, ranks: int = 1, fault: str = "",
              timeout: float = 600) -> Step:
        if name not in self._steps:
            run_dir = self.root / run
            p = hpcsys_run(run_dir, *args, ranks=ranks, fault=fault, timeout=timeout)
            complete = tuple(sorted(t for t in (run_dir / "tasks").rglob("*.h5")
                                    if task_status(t).complete))
            self._steps[name] = Step(run_dir, p, complete, frozenset(ranks_used(run_dir)),
                                     (run_dir / "results.h5").exists())
        return self._steps[name]

    def serial(self) -> Step:
        """The reference: one process, no MPI launcher."""
        return self._step("serial", "serial")

    def two_ranks(self) -> Step:
        """2 ranks, dynamic schedule."""
        return self._step("n2-dynamic", "n2-dynamic", ranks=2)

    def killed(self) -> Step:
        """3 ranks, cyclic schedule, rank 1 SIGKILLed in its task combined[1]."""
        return self._step("n3-killed", "n3-killed", "--set", "parallel.distribution=cyclic",
                          ranks=3, fault="kill@combined:1")

    def killed_rerun(self) -> Step:
        """The killed run's directory started again on 2 ranks without ``--resume``."""
        self.killed()
        return self._step("n3-killed-rerun", "n3-killed", ranks=2)

    def killed_resumed(self) -> Step:
        """... then with ``--resume`` on 2 ranks."""
        self.killed_rerun()
        return self._step("n3-killed-resumed", "n3-killed", "--resume", ranks=2)

    def failing(self) -> Step:
        """2 ranks, task null[1] raises: the job aborts."""
        return self._step("failing", "failing", ranks=2, fault="raise@null:1", timeout=300)
