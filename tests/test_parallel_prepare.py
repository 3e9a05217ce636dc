"""The run context built once per run (hpcsys.parallel.prepare): shared TreeCorr work, cache.

* serially: the context equals :func:`hpcsys.pipeline.prepare_run` bit for bit, the
  template ``xi_ij`` takes the expected number of TreeCorr runs, a second call is a cache
  hit with no TreeCorr run, a changed science configuration misses, a torn file misses;
* under MPI (``-m mpi``, any rank count): every TreeCorr run is done on exactly one rank,
  and every rank holds the serial context bit for bit;
* end to end (the session's configs/ci.yaml runs, tests/_ci_runs.py): a 2-rank
  ``hpcsys run`` builds the context once (one progress line), an aborted job keeps the
  cache, and ``--resume`` takes the context from it and equals the serial run bit for bit.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hpcsys.config import load_config
from hpcsys.io import diff_results
from hpcsys.parallel.prepare import (
    CACHE_FILE,
    context_key,
    load_context_cache,
    prepare_context,
)
from hpcsys.pipeline import prepare_run

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "configs" / "ci.yaml"
MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _cfg(*overrides: str):
    return load_config(CI, list(overrides))


def _n_runs(K: int) -> int:
    """157 for K = 25: K/2 pair runs (+1 single), two per pair of pairs, one per pair with the single."""
    p, s = divmod(K, 2)
    return p + s + p * (p - 1) + p * s


def _assert_same_context(a, b) -> None:
    for name in ("templates", "V", "xi", "xi_fit"):
        np.testing.assert_array_equal(getattr(a.fixed, name), getattr(b.fixed, name))
    np.testing.assert_array_equal(a.footprint.pixels, b.footprint.pixels)
    np.testing.assert_array_equal(a.gaussian_cl, b.gaussian_cl)
    np.testing.assert_array_equal(a.truth.a, b.truth.a)
    np.testing.assert_array_equal(a.truth.b, b.truth.b)
    assert a.config.text == b.config.text


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 25])
def test_run_count_formula(K: int) -> None:
    assert _n_runs(K) == {1: 1, 2: 1, 3: 3, 4: 4, 5: 7, 25: 157}[K]


def test_serial_context_equals_prepare_run_and_cache_round_trip(tmp_path: Path) -> None:
    cfg = _cfg("templates.n_templates=5", "methods.mcmc_walkers=24")
    ref = prepare_run(cfg)
    out = io.StringIO()
    ctx, info = prepare_context(cfg, cache_dir=tmp_path, stream=out, interval=0.0)
    assert not info.cache_hit and info.n_treecorr_runs == _n_runs(5) == info.n_treecorr_runs_here
    assert (tmp_path / CACHE_FILE).is_file() and not list(tmp_path.glob(".tmp-*"))
    _assert_same_context(ctx, ref)
    assert "building the run context" in out.getvalue() and "TreeCorr runs" in out.getvalue()

    # second run (--resume, the next array element, the reducer): a hit, no TreeCorr run
    out = io.StringIO()
    ctx2, info2 = prepare_context(cfg, cache_dir=tmp_path, stream=out)
    assert info2.cache_hit and info2.n_treecorr_runs == 0
    assert "from the cache" in out.getvalue()
    _assert_same_context(ctx2, ref)
    # settings that leave the context as is share the cache
    other = _cfg("templates.n_templates=5", "methods.mcmc_walkers=24", "run.n_realisations=7", "methods.mcmc_steps=80")
    assert context_key(other) == context_key(cfg)
    assert prepare_context(other, cache_dir=tmp_path, stream=io.StringIO())[1].cache_hit


@pytest.mark.parametrize("override", ["templates.correlation=0.5", "run.master_seed=7",
                                      "twopoint.n_bins=4", "methods.pca=false"])
def test_changed_science_config_misses_the_cache(tmp_path: Path, override: str) -> None:
    cfg = _cfg()
    prepare_context(cfg, cache_dir=tmp_path, stream=io.StringIO())
    changed = _cfg(override)
    assert context_key(changed) != context_key(cfg)
    assert load_context_cache(tmp_path / CACHE_FILE, context_key(changed)) is None
    ctx, info = prepare_context(changed, cache_dir=tmp_path, stream=io.StringIO())
    assert not info.cache_hit and info.n_treecorr_runs == _n_runs(cfg.n_templates)
    _assert_same_context(ctx, prepare_run(changed))
    # the cache now holds the changed config's context
    assert prepare_context(changed, cache_dir=tmp_path, stream=io.StringIO())[1].cache_hit


def test_torn_cache_file_is_a_miss(tmp_path: Path) -> None:
    cfg = _cfg()
    (tmp_path / CACHE_FILE).write_bytes(b"not an HDF5 file")
    ctx, info = prepare_context(cfg, cache_dir=tmp_path, stream=io.StringIO())
    assert not info.cache_hit
    _assert_same_context(ctx, prepare_run(cfg))
    assert prepare_context(cfg, cache_dir=tmp_path, stream=io.StringIO())[1].cache_hit


@pytest.mark.mpi
def test_mpi_each_treecorr_run_once_and_context_identical() -> None:
    from hpcsys.parallel import world

    comm = world()
    rank = comm.Get_rank()
    path = tempfile.mkdtemp(prefix="hpcsys-prep-") if rank == 0 else None
    cache = Path(comm.bcast(path, root=0))
    cfg = _cfg("templates.n_templates=5", "methods.mcmc_walkers=24")
    ctx, info = prepare_context(cfg, comm=comm, cache_dir=cache, stream=io.StringIO())
    assert not info.cache_hit and info.n_treecorr_runs == _n_runs(5)
    # each run on exactly one rank: the per-rank counts add up to the total
    assert comm.allreduce(info.n_treecorr_runs_here) == _n_runs(5)
    _assert_same_context(ctx, prepare_run(cfg))  # every rank: the serial context
    ctx2, info2 = prepare_context(cfg, comm=comm, cache_dir=cache, stream=io.StringIO())
    assert info2.cache_hit and comm.allreduce(info2.n_treecorr_runs_here) == 0
    _assert_same_context(ctx2, ctx)
    comm.Barrier()


@pytest.mark.slow
@pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not installed in the venv")
def test_two_rank_run_prepares_once_equals_serial_and_resume_hits_cache(ci_runs) -> None:
    """On the session's configs/ci.yaml runs (tests/_ci_runs.py, shared with
    tests/test_parallel_runs.py): the context is built once per run, on rank 0's
    progress line; a job that aborts after its prepare phase leaves the cache; a
    ``--resume`` takes the context from it and equals the serial run."""
    serial = ci_runs.serial().proc
    assert serial.returncode == 0, serial.stderr[-3000:]
    assert serial.stdout.count("building the run context") == 1

    two = ci_runs.two_ranks().proc
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("building the run context") == 1  # rank 0 only, once
    assert "TreeCorr runs on 2 rank(s)" in two.stdout

    failing = ci_runs.failing()  # a task raises on 2 ranks: the job aborts ...
    assert failing.proc.returncode != 0
    assert failing.proc.stdout.count("building the run context") == 1
    assert (failing.run_dir / CACHE_FILE).is_file()  # ... and keeps the context cache

    killed = ci_runs.killed()  # 3 ranks, one SIGKILLed mid-run
    assert killed.proc.returncode != 0 and (killed.run_dir / CACHE_FILE).is_file()
    resumed = ci_runs.killed_resumed()  # then --resume on 2 ranks
    p = resumed.proc
    assert p.returncode == 0, p.stderr[-3000:]
    assert "run context from the cache" in p.stdout and "building the run context" not in p.stdout
    assert diff_results(ci_runs.serial().results, resumed.results) == ()


def test_cost_model_prepare_and_ranks(capsys: pytest.CaptureFixture[str]) -> None:
    """The check's prepare cost counts the xi_ij runs once per run; more ranks share them."""
    from hpcsys import cli
    from hpcsys.parallel.estimate import COST_CONSTANTS, estimate_cost, prepare_treecorr_runs

    cfg = _cfg("templates.n_templates=25", "methods.mcmc_walkers=102")
    one, many = estimate_cost(cfg, 1), estimate_cost(cfg, 12)
    assert one.prepare_treecorr_runs == prepare_treecorr_runs(25) == _n_runs(25) == 157
    t_run = COST_CONSTANTS["c_tc_xi"] * one.n_pixels
    assert one.prepare_seconds == pytest.approx(one.prepare_wall_seconds)
    assert one.prepare_wall_seconds - many.prepare_wall_seconds == pytest.approx(
        (157 - 14) * t_run)  # ceil(157 / 12) = 14 runs per rank
    assert many.wall_seconds < one.wall_seconds and 0 < many.efficiency <= 1
    assert sum(one.stage_seconds.values()) == pytest.approx(one.seconds_per_task)
    assert estimate_cost(_cfg("templates.redraw=true"), 1).prepare_treecorr_runs == 0
    assert cli.main(["check", str(CI), "--ranks", "3"]) == 0
    out = capsys.readouterr().out
    assert "prepare (once per run" in out and "wall time on 3 rank(s)" in out
    with pytest.raises(SystemExit):
        cli.main(["check", str(CI), "--ranks", "0"])
