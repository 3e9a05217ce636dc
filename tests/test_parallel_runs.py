"""End-to-end runs of configs/ci.yaml under a real ``mpiexec``, as a user would start them.

* the aggregated numbers are identical bit for bit for 1, 2 and 3 ranks and for the
  dynamic and cyclic schedules;
* a rank killed with SIGKILL mid-run (3 ranks), then ``--resume`` (on 2 ranks), gives
  the same file as an uninterrupted run;
* a task that raises aborts the whole job promptly, naming the task and the rank.

Every run uses the test session's JAX persistent compilation cache (a temporary
directory, see ``tests/conftest.py``), so only the first process of a session compiles
the kernels. All of them start ``hpcsys`` in subprocesses: marked ``slow``. The runs
are the session's ``ci_runs`` (tests/_ci_runs.py), started once and also inspected by
tests/test_parallel_prepare.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _ci_runs import MPIEXEC, N_TASKS, CIRuns, hpcsys_run

from hpcsys import cli
from hpcsys.io import diff_results, open_results, render_report

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not installed in the venv")]


@pytest.fixture(scope="module")
def serial(ci_runs: CIRuns) -> Path:
    """The reference: one process, no MPI launcher."""
    step = ci_runs.serial()
    assert step.proc.returncode == 0, step.proc.stderr[-3000:]
    return step.results


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


def test_two_ranks_dynamic_equal_serial(serial: Path, ci_runs: CIRuns) -> None:
    step = ci_runs.two_ranks()
    p = step.proc
    assert p.returncode == 0, p.stderr[-3000:]
    # rank 0 alone reports progress, as plain log lines (stdout is not a terminal)
    assert p.stdout.count(f"{N_TASKS} tasks to run on 2 rank(s)") == 1
    assert f"[hpcsys] {N_TASKS}/{N_TASKS} tasks (100%)" in p.stdout and "\r" not in p.stdout
    with open_results(step.results) as res:
        assert res.provenance.n_ranks == 2 and res.provenance.n_tasks == N_TASKS
    assert step.ranks == {0, 1}  # both ranks did work
    assert diff_results(serial, step.results) == ()


def test_three_ranks_killed_then_resumed_on_two_equal_serial(serial: Path,
                                                             ci_runs: CIRuns) -> None:
    """3 ranks (cyclic schedule), one SIGKILLed mid-run; ``--resume`` on 2 ranks finishes."""
    killed = ci_runs.killed()
    assert killed.proc.returncode != 0
    assert 0 < len(killed.complete) < N_TASKS  # killed mid-run
    # cyclic: rank 1 owns tasks 1, 4, 7, 10 and is killed on its last (combined:1), so its
    # first three are on disk; how far ranks 0 and 2 got depends on their compile times
    assert 1 in killed.ranks and killed.ranks <= {0, 1, 2}
    assert not killed.has_results
    p = ci_runs.killed_rerun().proc  # without --resume the directory is refused
    assert p.returncode == 2 and "--resume" in p.stderr
    step = ci_runs.killed_resumed()
    p = step.proc
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"({len(killed.complete)} resumed)" in p.stdout
    assert not list(step.run_dir.rglob(".tmp-*"))
    assert diff_results(serial, step.results) == ()


def test_failing_task_aborts_the_job(ci_runs: CIRuns) -> None:
    step = ci_runs.failing()  # started with a 300 s timeout: it did not hang
    p = step.proc
    assert p.returncode != 0
    assert "hpcsys: task null[1] failed on rank" in p.stderr
    assert "InjectedFault" in p.stderr and "aborting the job" in p.stderr
    assert not step.has_results


def test_failing_task_serial_exit_1(tmp_path: Path) -> None:
    p = hpcsys_run(tmp_path / "failing-serial", fault="raise@null:0", timeout=300)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("hpcsys run: hpcsys: task null[0] failed on rank 0 of 1")


def test_reduce_and_report_commands(serial: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = serial.parent
    assert cli.main(["reduce", str(run_dir)]) == 0  # in this process; `report` below is a
    assert "reduced ->" in capsys.readouterr().out  # real `python -m hpcsys` start
    p = subprocess.run([sys.executable, "-m", "hpcsys", "report", str(serial)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "Table 3" in p.stdout and "uncorrected" in p.stdout
    for fmt in ("csv", "latex", "markdown"):
        assert cli.main(["report", str(run_dir), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "Table 3" in out and "MCMC-comb" in out
