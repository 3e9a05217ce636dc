"""Run every task of a configuration over MPI ranks, then reduce on rank 0.

:func:`run_tasks` is what ``hpcsys run`` calls on every rank:

1. *scan* (rank 0): takes the run directory's lock (:class:`hpcsys.rundir.RunLock`,
   held to the end of the run; a directory in use by a live run is refused),
   removes temporaries of killed writers (:func:`hpcsys.rundir.remove_litter`),
   with ``resume`` skips tasks whose file is complete (checksum, completion
   attribute, same config hash; damaged files are redone, with a note), checks
   the free space against the estimated output size
   (:func:`hpcsys.rundir.check_run_space`) and writes the resolved
   ``config.yaml``; the verdict goes to every rank;
2. *prepare*: every rank builds the same :class:`hpcsys.pipeline.RunContext` with
   :func:`hpcsys.pipeline.prepare_run` (deterministic, no communication);
3. *tasks*: distributed (:mod:`hpcsys.parallel.distribute`), each written
   atomically to ``RUN_DIR/tasks/<scenario>/<index>.h5`` by the rank that ran it;
4. *calibration* (``analysis.calibration_realisations`` > 0): after a barrier,
   rank 0 derives the bootstrap points from the evaluated task files and the
   calibration tasks still to run (:mod:`hpcsys.parallel.calibrate`); they are
   distributed like the tasks and written to ``RUN_DIR/tasks/calibration/<j>.h5``
   (:mod:`hpcsys.calibration`: own random streams, no methods, no w(theta));
5. *reduce*: after a barrier, rank 0 aggregates the task files into
   ``RUN_DIR/results.h5`` and adds the tables (:func:`hpcsys.reduction.reduce_run`).

Bad input (the run directory, the free space) is one :class:`RunError` on every
rank. Any other exception on any rank in any phase stops the whole job at once
(``comm.Abort``) after printing one line naming the phase (or the task) and
the rank, never a hang; in a serial run it raises :class:`TaskFailedError`
instead (a full disk: :class:`hpcsys.io.atomic.DiskFullError`; Ctrl-C:
``KeyboardInterrupt``). Every rank joins every collective, even a rank without
tasks. Results are bit-for-bit identical for any number of ranks at a fixed
``parallel.threads_per_rank``: seeds are keyed by task, never rank.

Fault injection (for tests and drills)
--------------------------------------
The environment variable ``HPCSYS_FAULT`` makes chosen tasks fail for real:
``raise@<scenario>:<index>`` raises :class:`InjectedFault` when that task
starts; ``kill@<scenario>:<index>`` sends SIGKILL to the process running it
(as a node failure or an out-of-memory kill would); ``stall@<scenario>:<index>``
makes that task hang until a signal ends the process (a hung node, or a run
to interrupt or to race against); calibration task ``j`` is ``calibration:<j>``.
Several entries may be separated by commas. Nothing else reads it; leave it unset in production.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpcsys.config import Config, load_config
from hpcsys.io import (
    TaskStatus,
    TemplateInfo,
    task_path,
    task_status,
    write_dataclass,
    write_task,
)
from hpcsys.io.atomic import DiskFullError, atomic_h5
from hpcsys.parallel.comm import MPIUnavailableError, node_layout, polite_barrier, world
from hpcsys.parallel.distribute import Task, iterate_tasks, task_list
from hpcsys.parallel.progress import Progress
from hpcsys.parallel.resources import RankResources, configure_rank, enable_precision
from hpcsys.rundir import (
    CONFIG_FILE,
    INFO_FILE,
    RESULTS_FILE,
    TEMPLATES_FILE,
    RunError,
    RunLock,
    check_run_space,
    remove_litter,
    science_hash,
)

__all__ = [
    "FAULT_ENV",
    "InjectedFault",
    "RunSummary",
    "TaskFailedError",
    "pending_tasks",
    "run_tasks",
    "science_hash",
]

#: Environment variable of the fault-injection hook (see the module docstring).
FAULT_ENV = "HPCSYS_FAULT"


class TaskFailedError(RuntimeError):
    """A task raised (serial runs; MPI runs abort instead)."""


class InjectedFault(RuntimeError):
    """Raised by the ``HPCSYS_FAULT`` hook."""


@dataclass(frozen=True)
class RunSummary:
    """Outcome of :func:`run_tasks` on one rank.

    Attributes
    ----------
    run_dir : Path
    results_path : Path or None
        ``RUN_DIR/results.h5`` (None when ``reduce`` was False).
    n_tasks, n_skipped, n_run_here : int
        All tasks; tasks already complete (``--resume``); tasks this rank ran.
    n_ranks : int
    seconds : float
        Wall time of the whole call on this rank.
    resources : RankResources or None
    """

    run_dir: Path
    results_path: Path | None
    n_tasks: int
    n_skipped: int
    n_run_here: int
    n_ranks: int
    seconds: float
    resources: RankResources | None


def _parse_faults() -> dict[tuple[str, int], str]:
    raw = os.environ.get(FAULT_ENV, "").strip()
    out: dict[tuple[str, int], str] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        try:
            action, _, where = item.partition("@")
            scenario, _, index = where.partition(":")
            if action not in ("raise", "kill", "stall"):
                raise ValueError
            out[(scenario, int(index))] = action
        except ValueError:
            raise RunError(f"{FAULT_ENV}: expected raise@scenario:index, "
                           f"kill@scenario:index or stall@scenario:index, got {item!r}"
                           ) from None
    return out


def _maybe_fault(faults: dict[tuple[str, int], str], task: Task) -> None:
    action = faults.get((task.scenario, task.index))
    if action == "raise":
        raise InjectedFault(f"{FAULT_ENV} asked task {task.label} to fail")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while action == "stall":  # a hung node: until a signal ends it
        time.sleep(1.0)


def pending_tasks(config: Config, run_dir: Path, resume: bool) -> tuple[list[Task], int]:
    """Tasks still to run and how many are already complete (rank 0 helper).

    A task file that exists but does not open, or lacks its completion
    attribute or result, is damaged: it counts as not done and is redone.

    Raises
    ------
    RunError
        The directory holds results but ``resume`` is False, or it holds tasks
        written under a different configuration.
    """
    pending, n_done, _ = _pending(config, run_dir, resume)
    return pending, n_done


def _pending(config: Config, run_dir: Path, resume: bool
             ) -> tuple[list[Task], int, list[TaskStatus]]:
    tasks = task_list(config.run.scenarios, config.run.n_realisations)
    h = science_hash(config)
    cfg_file = run_dir / CONFIG_FILE
    if cfg_file.exists() and _stored_hash(cfg_file) != h:
        if resume:
            raise RunError(f"{run_dir}: holds a run of a different configuration "
                           f"({cfg_file}); --resume needs the same config, or choose a new "
                           f"run.output_dir")
    statuses = [task_status(task_path(run_dir, t.scenario, t.index)) for t in tasks]
    done = [st.complete for st in statuses]
    if not resume and (any(done) or (run_dir / RESULTS_FILE).exists()):
        raise RunError(f"{run_dir}: already holds results; pass --resume to continue that "
                       f"run or set another run.output_dir")
    foreign = [st for st in statuses if st.complete and st.config_hash != h]
    if foreign:
        raise RunError(f"{foreign[0].path}: written under a different configuration; "
                       f"use a new run.output_dir")
    pending = [t for t, ok in zip(tasks, done) if not ok]
    damaged = [st for st in statuses if not st.complete and st.reason != "missing"]
    return pending, len(tasks) - len(pending), damaged


def _stored_hash(cfg_file: Path) -> str:
    try:
        return science_hash(load_config(cfg_file))
    except ValueError:
        return ""


def _template_info(ctx: Any, config: Config) -> TemplateInfo:
    """Names, footprint correlation and xi_ij(theta) of the run's templates."""
    K = config.n_templates
    names = tuple(str(n) for n in getattr(ctx, "template_names", ())) or tuple(
        f"t{i}" for i in range(K))
    fixed = getattr(ctx, "fixed", None)
    if fixed is not None:
        corr = np.corrcoef(np.asarray(fixed.templates, dtype=float)).reshape(K, K)
        xi = np.asarray(fixed.xi, dtype=float)
    else:  # redrawn per realisation: the requested correlation, no single xi
        corr = np.asarray(getattr(ctx, "correlation", np.full((K, K), np.nan)), dtype=float)
        xi = None
    return TemplateInfo(names, corr, xi)


#: Seconds between printing a failing task's message and ``comm.Abort``.
_ABORT_GRACE_S = 2.0
#: Exit status of an aborted job: a full disk is bad input (2), Ctrl-C 130, else 1.
_EXIT_CODES = ((DiskFullError, 2), (KeyboardInterrupt, 130))


def _abort_or_raise(comm: Any, msg: str, exc: BaseException) -> None:
    """End the whole job: raise in a serial run, else print ``msg`` and ``comm.Abort``."""
    if comm.Get_size() == 1:
        if isinstance(exc, (DiskFullError, KeyboardInterrupt)):
            raise exc  # the command line reports these in its own words
        raise TaskFailedError(msg) from exc
    code = next((c for t, c in _EXIT_CODES if isinstance(exc, t)), 1)
    if code == 1:
        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    # The launcher forwards a rank's output asynchronously; Abort kills the job at
    # once, so give the message a moment to reach the batch log (seen with MPICH).
    time.sleep(_ABORT_GRACE_S)
    comm.Abort(code)


@contextmanager
def _phase(comm: Any, name: str, host: str) -> Iterator[None]:
    """Any exception on this rank in phase ``name`` ends the whole job, never a hang.

    The other ranks may be waiting in a collective that this rank will never
    join, so the only safe ending is :func:`_abort_or_raise` (``comm.Abort``).
    """
    try:
        yield
    except TaskFailedError:  # a task already ended the (serial) job, with its own message
        raise
    except BaseException as exc:
        rank, size = comm.Get_rank(), comm.Get_size()
        _abort_or_raise(comm, f"hpcsys: {name} phase failed on rank {rank} of {size} ({host}): "
                              f"{type(exc).__name__}: {exc}; aborting the job", exc)


@dataclass(frozen=True)
class _Plan:
    pending: list[Task]
    n_skipped: int
    have_templates: bool
    notes: tuple[str, ...]


def _scan(config: Config, run_dir: Path, resume: bool, lock: RunLock) -> _Plan:
    """Phase 1 on rank 0, holding the lock: litter, task scan, space check, config.yaml."""
    notes = [lock.note] if lock.note else []
    litter = remove_litter(run_dir)
    if litter:
        notes.append(f"removed {len(litter)} temporary file(s) of killed runs "
                     f"({', '.join(p.name for p in litter[:3])}{', ...' if len(litter) > 3 else ''})")
    pending, n_skipped, damaged = _pending(config, run_dir, resume)
    notes += [f"{st.path}: {st.reason}; the task is redone" for st in damaged]
    if pending:
        n_pixels = _footprint_pixels(config)
        if n_pixels is not None:
            check_run_space(config, run_dir, len(pending), n_pixels)
    (run_dir / CONFIG_FILE).write_text(config.text)
    return _Plan(pending, n_skipped, (run_dir / TEMPLATES_FILE).is_file(), tuple(notes))


def _footprint_pixels(config: Config) -> int | None:
    """Footprint size for the space check (None if the footprint is bad: prepare reports it)."""
    from hpcsys.sims.footprint import make_footprint

    sky = config.sky
    try:
        return make_footprint(sky.footprint, sky.nside, cap_radius_deg=sky.cap_radius_deg,
                              mask_file=sky.mask_file).n_pixels
    except ValueError:
        return None


def run_tasks(config: Config, *, comm: Any = None, resume: bool = False,
              reduce: bool = True, configure: bool = True,
              progress_stream: Any = None) -> RunSummary:
    """Run (or resume) all tasks of ``config`` on this communicator; rank 0 reduces.

    Call on every rank. See the module docstring for the steps.

    Parameters
    ----------
    config : Config
    comm : communicator, optional
        Default: MPI world under a launcher, else serial.
    resume : bool
        Skip complete task files of the same configuration (``--resume``).
    reduce : bool
        Aggregate into ``results.h5`` at the end (rank 0).
    configure : bool
        Set per-rank threads, binding, GPU and JAX precision (the CLI does;
        in-process callers that already configured JAX may pass False).
    progress_stream : file, optional
        Where rank 0 prints progress (default stdout).

    Raises
    ------
    RunError
        Bad run directory, or the directory is in use by another run (on every rank).
    DiskFullError
        Not enough space for the outputs (serial runs; MPI runs abort with status 2).
    TaskFailedError
        A task or a phase raised (serial runs only; MPI runs abort).
    """
    t0 = time.monotonic()
    try:
        comm = world(comm)
    except MPIUnavailableError as exc:
        raise RunError(str(exc)) from None
    rank = comm.Get_rank()
    layout = node_layout(comm)
    resources = configure_rank(config.parallel, layout) if configure else None
    run_dir = config.output_dir
    faults = _parse_faults()

    # 1. scan: rank 0 locks and inspects the run directory; the verdict goes to everyone
    lock: RunLock | None = None
    plan: _Plan | str = ""
    if rank == 0:
        with _phase(comm, "scan", layout.host):
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                lock = RunLock(run_dir)
                plan = _scan(config, run_dir, resume, lock)
            except (RunError, OSError) as exc:  # bad input: one line on every rank, exit 2
                if lock is not None:
                    lock.release()
                plan = str(exc)
            except BaseException:
                if lock is not None:
                    lock.release()
                raise
    plan = comm.bcast(plan, root=0)
    if isinstance(plan, str):
        raise RunError(plan)
    try:
        return _run_phases(config, comm, plan, run_dir, layout, resources, faults,
                           configure=configure, reduce=reduce, progress_stream=progress_stream,
                           t0=t0)
    finally:
        if lock is not None:
            lock.release()


def _run_phases(config: Config, comm: Any, plan: _Plan, run_dir: Path, layout: Any,
                resources: RankResources | None, faults: dict[tuple[str, int], str], *,
                configure: bool, reduce: bool, progress_stream: Any, t0: float) -> RunSummary:
    """Phases 2-5 of :func:`run_tasks` (prepare, tasks, calibration, reduce), each guarded by
    :func:`_phase`."""
    rank, size = comm.Get_rank(), comm.Get_size()
    pending, n_skipped = plan.pending, plan.n_skipped
    if rank == 0:
        for note in plan.notes:
            sys.stderr.write(f"[hpcsys] note: {note}\n")
        sys.stderr.flush()

    # 2. prepare: JAX and the shared run context, identically on every rank
    failure = ""
    ctx = None
    with _phase(comm, "prepare", layout.host):
        if configure:
            devices = enable_precision(config.run.precision,
                                       config.parallel.compilation_cache_dir)
            device = f"{layout.host}:{devices[0].platform}:{getattr(devices[0], 'device_kind', '')}"
        else:
            device = f"{layout.host}:unconfigured"
        from hpcsys.parallel.prepare import prepare_context
        from hpcsys.pipeline import run_realisation

        if pending or not plan.have_templates:  # a finished run being re-reduced needs none
            try:
                ctx = prepare_context(config, comm=comm, cache_dir=run_dir,
                                      stream=progress_stream)[0]
            except Exception as exc:
                if size > 1:  # other ranks may wait in a collective: the phase guard aborts
                    raise
                failure = f"rank {rank}: prepare_run failed: {type(exc).__name__}: {exc}"
    failures = [f for f in comm.allgather(failure) if f]
    if failures:
        raise RunError(failures[0])
    h = science_hash(config)
    with _phase(comm, "prepare", layout.host):
        if rank == 0 and ctx is not None:
            _write_templates(run_dir / TEMPLATES_FILE, _template_info(ctx, config))

    # 3. tasks
    progress = Progress(len(pending), enabled=rank == 0,
                        interval=config.parallel.progress_interval_s, stream=progress_stream,
                        approximate=config.parallel.distribution == "cyclic" and size > 1)
    if rank == 0 and pending:
        progress.stream.write(
            f"[hpcsys] {len(pending)} tasks to run on {size} rank(s) "
            f"({n_skipped} already complete) -> {run_dir}\n")
        progress.stream.flush()
    n_here = 0
    busy = 0.0
    polite_barrier(comm)  # the task phase starts together (prepare times differ per rank)
    t_tasks = time.monotonic()
    with _phase(comm, "tasks", layout.host):
        for task in iterate_tasks(pending, comm, config.parallel.distribution, progress.update):
            t_task = time.monotonic()
            try:
                _maybe_fault(faults, task)
                result = run_realisation(ctx, task.scenario, task.index)
                write_task(task_path(run_dir, task.scenario, task.index), result,
                           scenario=task.scenario, index=task.index, cfg_hash=h, rank=rank)
            except BaseException as exc:
                msg = (f"hpcsys: task {task.label} failed on rank {rank} of {size} "
                       f"({layout.host}): {type(exc).__name__}: {exc}; aborting the job")
                _abort_or_raise(comm, msg, exc)
            n_here += 1
            busy += time.monotonic() - t_task
    polite_barrier(comm)
    if config.analysis.calibration_realisations > 0:
        ctx = _calibration_phase(config, comm, ctx, run_dir, layout, faults, h, progress_stream)
    task_phase = time.monotonic() - t_tasks

    # 5. reduce: provenance and reduction on rank 0
    info = comm.gather({"host": layout.host, "device": device,
                        "resources": resources.describe(layout.host) if resources else "",
                        "tasks": n_here, "busy_seconds": round(busy, 3),
                        "prepare_seconds": round(t_tasks - t0, 3)}, root=0)
    results_path = None
    err = ""
    if rank == 0:
        with _phase(comm, "reduce", layout.host):
            hosts = tuple(dict.fromkeys(i["host"] for i in info))
            devices_ = tuple(dict.fromkeys(i["device"] for i in info))
            (run_dir / INFO_FILE).write_text(json.dumps(
                {"n_ranks": size, "hosts": hosts, "devices": devices_,
                 "config_source": config.source, "n_tasks_run": len(pending),
                 "task_phase_seconds": round(task_phase, 3),
                 "ranks": [{k: i[k] for k in ("resources", "tasks", "busy_seconds",
                                              "prepare_seconds")} for i in info]}, indent=1))
            if reduce:
                from hpcsys.reduction import reduce_run

                try:
                    results_path = reduce_run(run_dir, lock=False)
                except DiskFullError:
                    raise
                except (RunError, OSError, ValueError) as exc:
                    err = f"reduction failed: {type(exc).__name__}: {exc}"
    err = comm.bcast(err, root=0)
    if err:
        raise RunError(err)
    if reduce:
        results_path = run_dir / RESULTS_FILE
    return RunSummary(run_dir, results_path, n_skipped + len(pending), n_skipped, n_here, size,
                      time.monotonic() - t0, resources)


def _calibration_phase(config: Config, comm: Any, ctx: Any, run_dir: Path, layout: Any,
                       faults: dict[tuple[str, int], str], cfg_hash: str,
                       progress_stream: Any) -> Any:
    """Phase 4: the calibration tasks of Table 2 (:mod:`hpcsys.parallel.calibrate`).

    Rank 0 computes the bootstrap points from the evaluated task files and the
    calibration tasks still to run; every rank then runs its share. Returns the
    (possibly newly prepared) run context.
    """
    from hpcsys.calibration import CALIBRATION_KIND, calibration_path, run_calibration
    from hpcsys.parallel.calibrate import calibration_plan

    rank, size = comm.Get_rank(), comm.Get_size()
    plan = None
    with _phase(comm, "calibration", layout.host):
        if rank == 0:
            plan = calibration_plan(config, run_dir, cfg_hash)
    points, pending = comm.bcast(plan, root=0)
    with _phase(comm, "calibration", layout.host):
        if pending and ctx is None:  # a resumed run whose evaluated tasks were all done
            from hpcsys.parallel.prepare import prepare_context

            ctx = prepare_context(config, comm=comm, cache_dir=run_dir,
                                  stream=progress_stream)[0]
    progress = Progress(len(pending), enabled=rank == 0,
                        interval=config.parallel.progress_interval_s, stream=progress_stream,
                        approximate=config.parallel.distribution == "cyclic" and size > 1,
                        label="hpcsys calibration")
    if rank == 0 and pending:
        progress.stream.write(
            f"[hpcsys] {len(pending)} calibration tasks to run on {size} rank(s) "
            f"({config.analysis.calibration_realisations - len(pending)} already complete)\n")
        progress.stream.flush()
    with _phase(comm, "calibration", layout.host):
        for task in iterate_tasks(pending, comm, config.parallel.distribution, progress.update):
            try:
                _maybe_fault(faults, task)
                result = run_calibration(ctx, task.index, points)
                write_task(calibration_path(run_dir, task.index), result,
                           scenario=CALIBRATION_KIND, index=task.index, cfg_hash=cfg_hash,
                           rank=rank)
            except BaseException as exc:
                msg = (f"hpcsys: task {task.label} failed on rank {rank} of {size} "
                       f"({layout.host}): {type(exc).__name__}: {exc}; aborting the job")
                _abort_or_raise(comm, msg, exc)
    polite_barrier(comm)
    return ctx


def _write_templates(path: Path, info: TemplateInfo) -> None:
    with atomic_h5(path) as f:
        write_dataclass(f.create_group("templates"), info)
