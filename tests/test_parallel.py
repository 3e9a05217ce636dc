"""Serial tests of the parallel machinery: task lists, schedules, resume logic, resources."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from _results_synthetic import random_result
from _thread_comm import ThreadComm, run_ranks

from hpcsys.config import Config, parse_config
from hpcsys.io import task_path, write_task
from hpcsys.parallel import (
    DynamicQueue,
    Progress,
    RunError,
    SerialComm,
    configure_rank,
    cyclic_tasks,
    iterate_tasks,
    node_layout,
    pending_tasks,
    polite_barrier,
    task_list,
)
from hpcsys.parallel.estimate import estimate_cost
from hpcsys.parallel.progress import format_duration
from hpcsys.parallel.resources import visible_gpus
from hpcsys.parallel.runner import _parse_faults, science_hash


def _cfg(tmp_path: Path, **over: object) -> Config:
    raw: dict = {"run": {"name": "t", "output_dir": str(tmp_path / "run"), "n_realisations": 3,
                         "scenarios": ["null", "additive"]},
                 "sky": {"nside": 16, "footprint": "cap"}, "templates": {"n_templates": 3}}
    for k, v in over.items():
        sec, key = k.split("__")
        raw.setdefault(sec, {})[key] = v
    return parse_config(raw)


def test_task_list_is_scenario_major_and_complete() -> None:
    tasks = task_list(("null", "additive"), 3)
    assert [(t.tid, t.scenario, t.index) for t in tasks] == [
        (0, "null", 0), (1, "null", 1), (2, "null", 2),
        (3, "additive", 0), (4, "additive", 1), (5, "additive", 2)]
    assert tasks[4].label == "additive[1]"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_cyclic_shares_partition_the_tasks(size: int) -> None:
    tasks = task_list(("null", "additive", "combined"), 5)
    shares = [list(cyclic_tasks(tasks, r, size)) for r in range(size)]
    flat = sorted(t for s in shares for t in s)
    assert flat == tasks
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("distribution", ["dynamic", "cyclic"])
def test_serial_schedules_run_every_task_once_and_report(distribution: str) -> None:
    tasks = task_list(("null",), 4)
    seen: list[int] = []
    got = [t.tid for t in iterate_tasks(tasks, SerialComm(), distribution, seen.append)]
    assert got == [0, 1, 2, 3]
    assert seen == [1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"parallel\.distribution"):
        iterate_tasks(tasks, SerialComm(), "random")
    assert list(DynamicQueue(SerialComm(), [])) == []


# --------------------------------------------------------------------------- fake ranks
# The task queue over several ranks, in this process: one thread per fake rank
# (tests/_thread_comm.py), so the rank-0-served queue and its server thread run for
# real without mpiexec. The same properties are checked under mpiexec in
# test_parallel_mpi.py.


@pytest.mark.parametrize("distribution", ["dynamic", "cyclic"])
@pytest.mark.parametrize("size", [2, 3, 5])
@pytest.mark.parametrize("n_tasks", [0, 1, 7, 20])
def test_thread_ranks_run_every_task_exactly_once(distribution: str, size: int,
                                                  n_tasks: int) -> None:
    if distribution == "dynamic":
        pytest.importorskip("mpi4py")  # the queue asks mpi4py for MPI.ANY_SOURCE
    tasks = task_list(("null", "additive"), n_tasks // 2 + n_tasks % 2)[:n_tasks]
    seen: list[int] = []

    def rank_main(comm: ThreadComm) -> list[int]:
        on_progress = seen.append if comm.Get_rank() == 0 else None
        mine = [t.tid for t in iterate_tasks(tasks, comm, distribution, on_progress)]
        polite_barrier(comm, poll_s=0.001)
        return mine

    shares = run_ranks(size, rank_main)
    assert sorted(t for share in shares for t in share) == list(range(n_tasks))
    if distribution == "cyclic":
        assert shares == [[t.tid for t in tasks[r::size]] for r in range(size)]
    elif n_tasks:
        assert seen == sorted(seen) and seen[-1] == n_tasks  # rank 0 counts every finish


@pytest.mark.parametrize("size", [2, 3, 4])
def test_dynamic_queue_routes_work_around_a_stalled_rank(size: int) -> None:
    """Rank 1 holds its first task until the others have finished every other task."""
    pytest.importorskip("mpi4py")
    n_tasks = 4 * size
    tasks = task_list(("null",), n_tasks)
    started = threading.Barrier(size, timeout=60)  # every rank holds one task
    lock = threading.Lock()
    finished = [0]
    released = threading.Event()

    def rank_main(comm: ThreadComm) -> list[int]:
        mine = []
        for t in iterate_tasks(tasks, comm, "dynamic"):
            if not mine:
                started.wait()
            if comm.Get_rank() == 1 and not mine:
                assert released.wait(timeout=60), "the other ranks did not drain the queue"
            mine.append(t.tid)
            with lock:
                finished[0] += 1
                if finished[0] == n_tasks - 1:
                    released.set()
        return mine

    shares = run_ranks(size, rank_main)
    assert sorted(t for share in shares for t in share) == list(range(n_tasks))
    assert len(shares[1]) == 1  # the stalled rank was given nothing more
    assert all(len(share) >= 1 for share in shares)


def test_thread_comm_collectives_match_mpi_semantics() -> None:
    """The fake communicator itself: collectives, matching by source and tag, no sharing."""

    def rank_main(comm: ThreadComm) -> tuple:
        r, n = comm.Get_rank(), comm.Get_size()
        payload = {"rank": r}
        everyone = comm.allgather(payload)
        root = comm.bcast(payload if r == 0 else None, root=0)
        gathered = comm.gather(r * r, root=1)
        comm.send(("late", r), dest=(r + 1) % n, tag=2)
        comm.send(("early", r), dest=(r + 1) % n, tag=1)
        first = comm.recv(source=(r - 1) % n, tag=1)
        second = comm.irecv(source=-1, tag=-1).wait()
        comm.Barrier()
        return everyone, root is payload, root, gathered, first, second

    out = run_ranks(3, rank_main)
    for r, (everyone, shared, root, gathered, first, second) in enumerate(out):
        assert everyone == [{"rank": 0}, {"rank": 1}, {"rank": 2}]
        assert root == {"rank": 0} and not shared
        assert gathered == ([0, 1, 4] if r == 1 else None)
        assert first == ("early", (r - 1) % 3) and second == ("late", (r - 1) % 3)


def test_progress_lines_without_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(4, interval=1e9, stream=out)
    p.update(1)  # first line is always printed
    p.update(2)  # within the interval: silent
    p.update(4)  # the final line always
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[hpcsys] 1/4 tasks (25%)") and lines[0].endswith("ETA ?")
    assert lines[1].startswith("[hpcsys] 4/4 tasks (100%)") and lines[1].endswith("ETA 0s")
    silent = io.StringIO()
    Progress(4, enabled=False, stream=silent).update(4)
    assert silent.getvalue() == ""
    assert [format_duration(s) for s in (5, 65, 3725, float("nan"))] == ["5s", "1m05s",
                                                                         "1h02m", "?"]


def test_pending_tasks_resume_rules(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    run_dir = cfg.output_dir
    pending, done = pending_tasks(cfg, run_dir, resume=False)
    assert len(pending) == 6 and done == 0
    h = science_hash(cfg)
    write_task(task_path(run_dir, "null", 1), random_result("null", 1), scenario="null",
               index=1, cfg_hash=h)
    torn = task_path(run_dir, "additive", 2)
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"\x89HDF\r\n\x1a\n")  # a file left by a killed writer
    with pytest.raises(RunError, match="--resume"):
        pending_tasks(cfg, run_dir, resume=False)
    pending, done = pending_tasks(cfg, run_dir, resume=True)
    assert done == 1
    assert [t.label for t in pending] == ["null[0]", "null[2]", "additive[0]", "additive[1]",
                                          "additive[2]"]
    # parallel settings and the output path do not change results: same hash
    assert science_hash(cfg.replace(**{"parallel.distribution": "cyclic"})) == h
    other = cfg.replace(**{"run.master_seed": 1})
    with pytest.raises(RunError, match="different configuration"):
        pending_tasks(other, run_dir, resume=True)
    (run_dir / "config.yaml").write_text(other.text)
    with pytest.raises(RunError, match="different configuration"):
        pending_tasks(cfg, run_dir, resume=True)


def test_a_run_is_extended_by_resuming_with_more_realisations(tmp_path: Path) -> None:
    """The extent keys (run.n_realisations, analysis) leave the task hash alone."""
    cfg = _cfg(tmp_path)
    run_dir = cfg.output_dir
    h = science_hash(cfg)
    for s, i in (("null", 0), ("null", 1), ("additive", 2)):
        write_task(task_path(run_dir, s, i), random_result(s, i), scenario=s, index=i,
                   cfg_hash=h)
    (run_dir / "config.yaml").write_text(cfg.text)
    longer = cfg.replace(**{"run.n_realisations": 5, "analysis.alpha": 0.1,
                            "analysis.calibration_realisations": 7})
    assert science_hash(longer) == h
    pending, done = pending_tasks(longer, run_dir, resume=True)
    assert done == 3 and len(pending) == 2 * 5 - 3
    assert {t.label for t in pending} == {"null[2]", "null[3]", "null[4]", "additive[0]",
                                          "additive[1]", "additive[3]", "additive[4]"}
    # anything a task computes with still changes the hash
    for key, value in (("run.master_seed", 1), ("sky.nside", 32),
                       ("run.scenarios", ["null"]), ("contamination.additive_amplitude", 0.031)):
        assert science_hash(cfg.replace(**{key: value})) != h, key


def test_fault_hook_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCSYS_FAULT", "raise@null:1, kill@additive:0")
    assert _parse_faults() == {("null", 1): "raise", ("additive", 0): "kill"}
    monkeypatch.setenv("HPCSYS_FAULT", "explode@null:1")
    with pytest.raises(RunError, match="HPCSYS_FAULT"):
        _parse_faults()
    monkeypatch.delenv("HPCSYS_FAULT")
    assert _parse_faults() == {}


def test_configure_rank_sets_threads_before_jax(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OMP_NUM_THREADS", "XLA_FLAGS", "CUDA_VISIBLE_DEVICES",
                "XLA_PYTHON_CLIENT_MEM_FRACTION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, and no nvidia-smi probing
    cfg = _cfg(tmp_path, parallel__threads_per_rank=1)
    res = configure_rank(cfg.parallel, node_layout(SerialComm()))
    assert res.threads == 1 and not res.bound and res.gpu == ""
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert "intra_op_parallelism_threads=1" in os.environ["XLA_FLAGS"]
    assert not res.applied_before_jax  # conftest imported JAX already
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_single_gpu_gets_no_memory_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    res = configure_rank(_cfg(tmp_path).parallel, node_layout(SerialComm()))
    assert res.gpu == "3" and res.ranks_on_gpu == 1 and res.gpu_memory_fraction is None
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ


def test_cost_estimate_scales_with_work(tmp_path: Path) -> None:
    small = estimate_cost(_cfg(tmp_path, sky__footprint="full"))
    assert small.n_tasks == 6 and small.n_pixels == 12 * 16**2
    big = estimate_cost(_cfg(tmp_path, sky__footprint="full", sky__nside=64,
                             methods__mcmc_steps=2000))
    assert big.n_pixels == 16 * small.n_pixels
    assert big.seconds_per_task > small.seconds_per_task
    assert big.memory_per_rank_mb > small.memory_per_rank_mb
    assert big.core_hours == pytest.approx(big.n_tasks * big.seconds_per_task / 3600)


def test_serial_fallback_and_missing_mpi4py(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hpcsys.parallel.comm import MPIUnavailableError, world

    for var in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALRANKID",
                "HYDRA_CONTROL_FD", "SLURM_NTASKS", "SLURM_STEP_ID"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(world(), SerialComm)  # no launcher: MPI is never initialised
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if mpi4py were not installed
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "1")
    assert isinstance(world(), SerialComm)  # one rank without mpi4py: serial is right
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(MPIUnavailableError, match="2 ranks but mpi4py is not installed"):
        world()
