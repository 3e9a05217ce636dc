"""Run-directory faults under the real communicator, valid for any number of ranks.

Run with ``mpiexec -n 2 python -m pytest --with-mpi -m mpi tests`` (and ``-n 3``).
Every rank must get the same one-line refusal, and none may hang: the verdict
of rank 0's scan reaches every rank (docs/reliability.rst).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hpcsys.config import parse_config
from hpcsys.parallel import RunError, polite_barrier, run_tasks, world

pytestmark = pytest.mark.mpi

_HOLD = ("import sys, time\n"
         "from hpcsys.rundir import RunLock\n"
         "lock = RunLock(sys.argv[1])\n"
         "print('held', flush=True)\n"
         "time.sleep(600)\n")


def _shared_tmpdir(comm) -> Path:
    path = tempfile.mkdtemp(prefix="hpcsys-mpi-rel-") if comm.Get_rank() == 0 else None
    return Path(comm.bcast(path, root=0))


def _config(run_dir: Path):
    return parse_config({"run": {"output_dir": str(run_dir), "n_realisations": 1,
                                 "scenarios": ["null"]},
                         "sky": {"nside": 16, "footprint": "cap"},
                         "methods": {"names": ["OLS"]}})


def test_run_into_a_locked_directory_is_refused_on_every_rank() -> None:
    """Another live process (a real one) holds the lock: every rank raises RunError naming it."""
    comm = world()
    run_dir = _shared_tmpdir(comm) / "run"
    holder = None
    pid = 0
    if comm.Get_rank() == 0:
        run_dir.mkdir()
        holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        pid = holder.pid
    pid = comm.bcast(pid, root=0)
    try:
        with pytest.raises(RunError, match=f"in use by another hpcsys run \\(pid {pid} on host"):
            run_tasks(_config(run_dir), comm=comm, configure=False)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    assert not (run_dir / "tasks").exists()
    polite_barrier(comm)


def test_unusable_run_directory_verdict_reaches_every_rank() -> None:
    comm = world()
    top = _shared_tmpdir(comm)
    blocker = top / "not-a-dir"
    if comm.Get_rank() == 0:
        blocker.write_text("a file where the run directory should be")
    polite_barrier(comm)
    with pytest.raises(RunError, match="not-a-dir"):
        run_tasks(_config(blocker / "run"), comm=comm, configure=False)
    polite_barrier(comm)
