"""MPI tests of the task machinery, valid for any number of ranks.

Run with ``mpiexec -n 2 python -m pytest --with-mpi -m mpi tests`` (and ``-n 3``);
without ``--with-mpi`` pytest-mpi skips them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from _results_synthetic import assert_same, coords, provenance, random_result

from hpcsys.config import parse_config
from hpcsys.io import open_results, read_task, task_path, write_results, write_task
from hpcsys.parallel import (
    configure_rank,
    iterate_tasks,
    node_layout,
    polite_barrier,
    task_list,
    world,
)
from hpcsys.pipeline import RealisationResult

pytestmark = pytest.mark.mpi


def _shared_tmpdir(comm) -> Path:
    path = tempfile.mkdtemp(prefix="hpcsys-mpi-") if comm.Get_rank() == 0 else None
    return Path(comm.bcast(path, root=0))


@pytest.mark.parametrize("distribution", ["dynamic", "cyclic"])
@pytest.mark.parametrize("n_tasks", [0, 1, 7, 20])
def test_every_task_runs_exactly_once(distribution: str, n_tasks: int) -> None:
    comm = world()
    tasks = task_list(("null",), n_tasks)
    seen: list[int] = []
    mine = [t.tid for t in iterate_tasks(tasks, comm, distribution, seen.append)]
    everyone = comm.allgather(mine)  # every rank joins, even with no work
    flat = sorted(t for share in everyone for t in share)
    assert flat == list(range(n_tasks))
    if comm.Get_rank() == 0 and n_tasks:
        assert seen[-1] == n_tasks  # rank 0 saw the final count
    polite_barrier(comm)


def test_node_layout_is_consistent() -> None:
    comm = world()
    lay = node_layout(comm)
    assert (lay.rank, lay.size) == (comm.Get_rank(), comm.Get_size())
    layouts = comm.allgather((lay.host, lay.local_rank, lay.local_size))
    for host in {h for h, _, _ in layouts}:
        local = sorted(lr for h, lr, _ in layouts if h == host)
        assert local == list(range(len(local)))
        assert all(ls == len(local) for h, _, ls in layouts if h == host)


def test_gpu_sharing_and_core_binding() -> None:
    comm = world()
    lay = node_layout(comm)
    saved_env = dict(os.environ)
    saved_aff = os.sched_getaffinity(0)
    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
        cfg = parse_config({"parallel": {"threads_per_rank": 1}})
        res = configure_rank(cfg.parallel, lay)
        gpu = str(lay.local_rank % 2)
        sharing = sum(1 for r in range(lay.local_size) if r % 2 == lay.local_rank % 2)
        assert res.gpu == gpu and os.environ["CUDA_VISIBLE_DEVICES"] == gpu
        assert res.ranks_on_gpu == sharing
        if sharing > 1:
            assert res.gpu_memory_fraction == pytest.approx(np.floor(90 / sharing) / 100)
            assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        else:
            assert res.gpu_memory_fraction is None
        n_cores = len(saved_aff)
        if lay.local_size > 1 and lay.local_size <= n_cores and n_cores == os.cpu_count():
            assert res.bound and len(res.cores) == 1
            assert comm.allgather(res.cores[0]) == sorted(set(comm.allgather(res.cores[0])))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.sched_setaffinity(0, saved_aff)
    polite_barrier(comm)


def test_concurrent_task_files_reduce_on_rank_zero() -> None:
    comm = world()
    run_dir = _shared_tmpdir(comm)
    tasks = task_list(("null", "additive"), 4)
    for t in iterate_tasks(tasks, comm, "dynamic"):
        write_task(task_path(run_dir, t.scenario, t.index), random_result(t.scenario, t.index),
                   scenario=t.scenario, index=t.index, cfg_hash="h", rank=comm.Get_rank())
    polite_barrier(comm)
    if comm.Get_rank() == 0:
        recs = {s: [read_task(task_path(run_dir, s, i), RealisationResult, cfg_hash="h")
                    for i in range(4)] for s in ("null", "additive")}
        for s, rs in recs.items():
            for r in rs:
                assert_same(r, random_result(s, r.index))
        path = write_results(run_dir / "results.h5", recs, coords=coords(),
                             provenance=provenance(8))
        with open_results(path) as res:
            np.testing.assert_array_equal(res.scenario("additive").index, np.arange(4))
        leftovers = [p.name for p in run_dir.rglob(".tmp-*")]
        assert leftovers == []
    polite_barrier(comm)
    if comm.Get_rank() == 0:
        shutil.rmtree(run_dir)
