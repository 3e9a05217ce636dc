"""End-to-end runs of configs/ci.yaml under a real ``mpiexec``, as a user would start them.

* the aggregated numbers are identical bit for bit for 1, 2 and 3 ranks and for the
  dynamic and cyclic schedules;
* a rank killed with SIGKILL mid-run (3 ranks), then ``--resume`` (on 2 ranks), gives
  the same file as an uninterrupted run;
* a task that raises aborts the whole job promptly, naming the task and the rank.

Every run uses the test session's JAX persistent compilation cache (a temporary
directory, see ``tests/conftest.py``), so only the first process of a session compiles
the kernels. All of them start ``hpcsys`` in subprocesses: marked ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from hpcsys import cli
from hpcsys.io import diff_results, open_results, render_report, task_status

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "configs" / "ci.yaml"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
N_TASKS = 12  # 4 scenarios x 3 realisations in configs/ci.yaml

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not installed in the venv")]


def hpcsys(run_dir: Path, *args: str, ranks: int = 1, fault: str = "",
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def serial(runs: Path) -> Path:
    """The reference: one process, no MPI launcher."""
    p = hpcsys(runs / "serial")
    assert p.returncode == 0, p.stderr[-3000:]
    return runs / "serial" / "results.h5"


def test_serial_run_is_complete(serial: Path) -> None:
    with open_results(serial) as res:
        assert res.scenarios == ("null", "additive", "multiplicative", "combined")
        assert res.provenance.n_ranks == 1 and res.provenance.n_tasks == N_TASKS
        assert len(res.method_names) == 6
        sc = res.scenario("combined")
        assert sc.n_realisations == 3 and sc.w_corrected.shape[:2] == (3, 6)
        t2, t3, rec = res.table2(), res.table3(), res.recovery()
        assert t2 is not None and t3 is not None and rec is not None
        text = render_report(t2, t3, rec, "text")
    assert "Table 2" in text and "MCMC-comb" in text


def _ranks_used(run_dir: Path) -> set[int]:
    out = set()
    for t in (run_dir / "tasks").rglob("*.h5"):
        if task_status(t).complete:
            with h5py.File(t, "r") as f:
                out.add(int(f.attrs["rank"]))
    return out


def test_two_ranks_dynamic_equal_serial(serial: Path, runs: Path) -> None:
    out = runs / "n2-dynamic"
    p = hpcsys(out, ranks=2)
    assert p.returncode == 0, p.stderr[-3000:]
    # rank 0 alone reports progress, as plain log lines (stdout is not a terminal)
    assert p.stdout.count(f"{N_TASKS} tasks to run on 2 rank(s)") == 1
    assert f"[hpcsys] {N_TASKS}/{N_TASKS} tasks (100%)" in p.stdout and "\r" not in p.stdout
    with open_results(out / "results.h5") as res:
        assert res.provenance.n_ranks == 2 and res.provenance.n_tasks == N_TASKS
    assert _ranks_used(out) == {0, 1}  # both ranks did work
    assert diff_results(serial, out / "results.h5") == ()


def test_three_ranks_killed_then_resumed_on_two_equal_serial(serial: Path, runs: Path) -> None:
    """3 ranks (cyclic schedule), one SIGKILLed mid-run; ``--resume`` on 2 ranks finishes."""
    out = runs / "n3-killed"
    p = hpcsys(out, "--set", "parallel.distribution=cyclic", ranks=3, fault="kill@combined:1")
    assert p.returncode != 0
    complete = [t for t in (out / "tasks").rglob("*.h5") if task_status(t).complete]
    assert 0 < len(complete) < N_TASKS  # killed mid-run
    # cyclic: rank 1 owns tasks 1, 4, 7, 10 and is killed on its last (combined:1), so its
    # first three are on disk; how far ranks 0 and 2 got depends on their compile times
    assert 1 in _ranks_used(out) and _ranks_used(out) <= {0, 1, 2}
    assert not (out / "results.h5").exists()
    p = hpcsys(out, ranks=2)  # without --resume the directory is refused
    assert p.returncode == 2 and "--resume" in p.stderr
    p = hpcsys(out, "--resume", ranks=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"({len(complete)} resumed)" in p.stdout
    assert not list(out.rglob(".tmp-*"))
    assert diff_results(serial, out / "results.h5") == ()


def test_failing_task_aborts_the_job(runs: Path) -> None:
    out = runs / "failing"
    t0 = time.monotonic()
    p = hpcsys(out, ranks=2, fault="raise@null:1", timeout=300)
    assert p.returncode != 0
    assert "hpcsys: task null[1] failed on rank" in p.stderr
    assert "InjectedFault" in p.stderr and "aborting the job" in p.stderr
    assert not (out / "results.h5").exists()
    assert time.monotonic() - t0 < 300  # it did not hang


def test_failing_task_serial_exit_1(runs: Path) -> None:
    p = hpcsys(runs / "failing-serial", fault="raise@null:0", timeout=300)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("hpcsys run: hpcsys: task null[0] failed on rank 0 of 1")


def test_reduce_and_report_commands(serial: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = serial.parent
    p = subprocess.run([sys.executable, "-m", "hpcsys", "reduce", str(run_dir)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-m", "hpcsys", "report", str(serial)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "Table 3" in p.stdout and "uncorrected" in p.stdout
    for fmt in ("csv", "latex", "markdown"):
        assert cli.main(["report", str(run_dir), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "Table 3" in out and "MCMC-comb" in out
