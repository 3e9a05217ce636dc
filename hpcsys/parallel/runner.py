"""Run every task of a configuration over MPI ranks, then reduce on rank 0.

:func:`run_tasks` is what ``hpcsys run`` calls on every rank:

1. rank 0 checks the run directory (``run.output_dir``), writes the resolved
   ``config.yaml``, removes temporaries of killed writers and, with
   ``resume``, skips tasks whose file is complete (opens, carries the
   completion attribute and the same config hash); torn files are redone;
2. every rank builds the same :class:`hpcsys.pipeline.RunContext` with
   :func:`hpcsys.pipeline.prepare_run` (deterministic, no communication);
3. tasks are distributed (:mod:`hpcsys.parallel.distribute`), each written
   atomically to ``RUN_DIR/tasks/<scenario>/<index>.h5`` by the rank that ran it;
4. after a barrier, rank 0 aggregates the task files into ``RUN_DIR/results.h5``
   and adds the tables (:func:`reduce_run`).

A task that raises stops the whole job at once (``comm.Abort``) after printing
one line naming the task and the rank; in a serial run it raises
:class:`TaskFailedError` instead. Every rank joins every collective, even a
rank without tasks. Results are bit-for-bit identical for any number of ranks
at a fixed ``parallel.threads_per_rank``: seeds are keyed by task, never rank.

Fault injection (for tests and drills)
--------------------------------------
The environment variable ``HPCSYS_FAULT`` makes chosen tasks fail for real:
``raise@<scenario>:<index>`` raises :class:`InjectedFault` when that task
starts; ``kill@<scenario>:<index>`` sends SIGKILL to the process running it
(as a node failure or an out-of-memory kill would). Several entries may be
separated by commas. Nothing else reads it; leave it unset in production.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from hpcsys._version import __version__
from hpcsys.config import Config, load_config
from hpcsys.io import (
    SCHEMA_VERSION,
    Coordinates,
    Provenance,
    TemplateInfo,
    clean_temporaries,
    config_hash,
    open_results,
    read_dataclass,
    read_task,
    task_path,
    task_status,
    write_dataclass,
    write_results,
    write_tables,
    write_task,
)
from hpcsys.io.results import utc_now
from hpcsys.io.schema import SKIPPED_FIELDS
from hpcsys.parallel.comm import MPIUnavailableError, node_layout, polite_barrier, world
from hpcsys.parallel.distribute import Task, iterate_tasks, task_list
from hpcsys.parallel.progress import Progress
from hpcsys.parallel.resources import RankResources, configure_rank, enable_precision

__all__ = [
    "FAULT_ENV",
    "InjectedFault",
    "RunError",
    "RunSummary",
    "TaskFailedError",
    "pending_tasks",
    "reduce_run",
    "run_tasks",
    "science_hash",
]

#: Environment variable of the fault-injection hook (see the module docstring).
FAULT_ENV = "HPCSYS_FAULT"
_CONFIG_FILE = "config.yaml"
_INFO_FILE = "run_info.json"
_TEMPLATES_FILE = "templates.h5"


class RunError(ValueError):
    """The run cannot start or be reduced (run directory, missing tasks, ...)."""


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


def science_hash(config: Config) -> str:
    """Hash of everything that changes results: the config without ``parallel`` and
    ``run.output_dir`` (so a run may be resumed with other ranks, threads or paths)."""
    d = config.to_dict()
    d.pop("parallel", None)
    d["run"].pop("output_dir", None)
    return config_hash(yaml.safe_dump(d, sort_keys=True))


def _parse_faults() -> dict[tuple[str, int], str]:
    raw = os.environ.get(FAULT_ENV, "").strip()
    out: dict[tuple[str, int], str] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        try:
            action, _, where = item.partition("@")
            scenario, _, index = where.partition(":")
            if action not in ("raise", "kill"):
                raise ValueError
            out[(scenario, int(index))] = action
        except ValueError:
            raise RunError(f"{FAULT_ENV}: expected raise@scenario:index or "
                           f"kill@scenario:index, got {item!r}") from None
    return out


def _maybe_fault(faults: dict[tuple[str, int], str], task: Task) -> None:
    action = faults.get((task.scenario, task.index))
    if action == "raise":
        raise InjectedFault(f"{FAULT_ENV} asked task {task.label} to fail")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)


def pending_tasks(config: Config, run_dir: Path, resume: bool) -> tuple[list[Task], int]:
    """Tasks still to run and how many are already complete (rank 0 helper).

    Raises
    ------
    RunError
        The directory holds results but ``resume`` is False, or it holds tasks
        written under a different configuration.
    """
    tasks = task_list(config.run.scenarios, config.run.n_realisations)
    h = science_hash(config)
    cfg_file = run_dir / _CONFIG_FILE
    if cfg_file.exists() and _stored_hash(cfg_file) != h:
        if resume:
            raise RunError(f"{run_dir}: holds a run of a different configuration "
                           f"({cfg_file}); --resume needs the same config, or choose a new "
                           f"run.output_dir")
    statuses = [task_status(task_path(run_dir, t.scenario, t.index)) for t in tasks]
    done = [st.complete for st in statuses]
    if not resume and (any(done) or (run_dir / "results.h5").exists()):
        raise RunError(f"{run_dir}: already holds results; pass --resume to continue that "
                       f"run or set another run.output_dir")
    foreign = [st for st in statuses if st.complete and st.config_hash != h]
    if foreign:
        raise RunError(f"{foreign[0].path}: written under a different configuration; "
                       f"use a new run.output_dir")
    pending = [t for t, ok in zip(tasks, done) if not ok]
    return pending, len(tasks) - len(pending)


def _stored_hash(cfg_file: Path) -> str:
    try:
        return science_hash(load_config(cfg_file))
    except ValueError:
        return ""


def _git_hash() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
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


def _abort_or_raise(comm: Any, msg: str, exc: BaseException) -> None:
    if comm.Get_size() == 1:
        raise TaskFailedError(msg) from exc
    traceback.print_exc(file=sys.stderr)
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    # The launcher forwards a rank's output asynchronously; Abort kills the job at
    # once, so give the message a moment to reach the batch log (seen with MPICH).
    time.sleep(_ABORT_GRACE_S)
    comm.Abort(1)


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
        Bad run directory (on every rank).
    TaskFailedError
        A task raised (serial runs only; MPI runs abort).
    """
    t0 = time.monotonic()
    try:
        comm = world(comm)
    except MPIUnavailableError as exc:
        raise RunError(str(exc)) from None
    rank, size = comm.Get_rank(), comm.Get_size()
    layout = node_layout(comm)
    resources = configure_rank(config.parallel, layout) if configure else None
    run_dir = config.output_dir
    faults = _parse_faults()

    # 1. rank 0 inspects the run directory; the verdict goes to everyone
    plan: tuple[list[Task], int, bool] | str
    if rank == 0:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            clean_temporaries(run_dir)
            plan = (*pending_tasks(config, run_dir, resume),
                    (run_dir / _TEMPLATES_FILE).is_file())
            (run_dir / _CONFIG_FILE).write_text(config.text)
        except (RunError, OSError) as exc:
            plan = str(exc)
    else:
        plan = ""
    plan = comm.bcast(plan, root=0)
    if isinstance(plan, str):
        raise RunError(plan)
    pending, n_skipped, have_templates = plan

    # 2. JAX and the shared run context, identically on every rank
    if configure:
        devices = enable_precision(config.run.precision, config.parallel.compilation_cache_dir)
        device = f"{layout.host}:{devices[0].platform}:{getattr(devices[0], 'device_kind', '')}"
    else:
        device = f"{layout.host}:unconfigured"
    from hpcsys.pipeline import run_realisation

    ctx = None
    failure = ""
    if pending or not have_templates:  # a finished run being re-reduced needs no context
        try:
            from hpcsys.parallel.prepare import prepare_context
            ctx = prepare_context(config, comm=comm, cache_dir=run_dir, stream=progress_stream)[0]
        except Exception as exc:  # deterministic, so normally every rank fails alike
            failure = f"rank {rank}: prepare_run failed: {type(exc).__name__}: {exc}"
    failures = [f for f in comm.allgather(failure) if f]
    if failures:
        raise RunError(failures[0])
    h = science_hash(config)
    if rank == 0 and ctx is not None:
        _write_templates(run_dir / _TEMPLATES_FILE, _template_info(ctx, config))

    # 3. the tasks
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
    task_phase = time.monotonic() - t_tasks

    # 4. provenance and reduction on rank 0
    info = comm.gather({"host": layout.host, "device": device,
                        "resources": resources.describe(layout.host) if resources else "",
                        "tasks": n_here, "busy_seconds": round(busy, 3),
                        "prepare_seconds": round(t_tasks - t0, 3)}, root=0)
    results_path = None
    err = ""
    if rank == 0:
        hosts = tuple(dict.fromkeys(i["host"] for i in info))
        devices_ = tuple(dict.fromkeys(i["device"] for i in info))
        (run_dir / _INFO_FILE).write_text(json.dumps(
            {"n_ranks": size, "hosts": hosts, "devices": devices_,
             "config_source": config.source, "n_tasks_run": len(pending),
             "task_phase_seconds": round(task_phase, 3),
             "ranks": [{k: i[k] for k in ("resources", "tasks", "busy_seconds",
                                          "prepare_seconds")} for i in info]}, indent=1))
        if reduce:
            try:
                results_path = reduce_run(run_dir)
            except (RunError, OSError, ValueError) as exc:
                err = f"reduction failed: {type(exc).__name__}: {exc}"
    err = comm.bcast(err, root=0)
    if err:
        raise RunError(err)
    if reduce:
        results_path = run_dir / "results.h5"
    return RunSummary(run_dir, results_path, n_skipped + len(pending), n_skipped, n_here, size,
                      time.monotonic() - t0, resources)


def _write_templates(path: Path, info: TemplateInfo) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        write_dataclass(f.create_group("templates"), info)
    os.replace(tmp, path)


def reduce_run(run_dir: str | Path, *, alpha: float | None = None) -> Path:
    """Aggregate the task files of ``run_dir`` into ``run_dir/results.h5`` with tables.

    Parameters
    ----------
    run_dir : str or Path
        A directory made by :func:`run_tasks` (holds ``config.yaml`` and ``tasks/``).
    alpha : float, optional
        Test level for Table 2 (default ``analysis.alpha`` of the config).

    Returns
    -------
    Path
        The results file.

    Raises
    ------
    RunError
        Not a run directory, or some tasks are missing or torn (names them).
    """
    from hpcsys.pipeline import FIT_MODELS, LRT_PAIRS, STAGES, RealisationResult
    from hpcsys.reduction import compute_tables

    run_dir = Path(run_dir)
    cfg_file = run_dir / _CONFIG_FILE
    if not cfg_file.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {_CONFIG_FILE})")
    config = load_config(cfg_file)
    text = cfg_file.read_text()
    h = science_hash(config)
    tasks = task_list(config.run.scenarios, config.run.n_realisations)
    missing = [t for t in tasks
               if not task_status(task_path(run_dir, t.scenario, t.index)).complete]
    if missing:
        names = ", ".join(t.label for t in missing[:5])
        raise RunError(f"{run_dir}: {len(missing)} of {len(tasks)} tasks missing or incomplete "
                       f"({names}{', ...' if len(missing) > 5 else ''}); run again with "
                       f"--resume")
    records: dict[str, list[Any]] = {s: [] for s in config.run.scenarios}
    hosts: list[str] = []
    for t in tasks:
        p = task_path(run_dir, t.scenario, t.index)
        # per-pixel maps are not aggregated: not reading them keeps rank 0's memory to the
        # summaries (at paper scale the maps are ~9 MB per task)
        records[t.scenario].append(read_task(p, RealisationResult, cfg_hash=h,
                                             skip=SKIPPED_FIELDS))
        with h5py.File(p, "r") as f:
            hosts.append(str(f.attrs.get("host", "")))
    info = {}
    if (run_dir / _INFO_FILE).is_file():
        info = json.loads((run_dir / _INFO_FILE).read_text())
    templates = None
    if (run_dir / _TEMPLATES_FILE).is_file():
        with h5py.File(run_dir / _TEMPLATES_FILE, "r") as f:
            templates = read_dataclass(f["templates"], TemplateInfo)
    K = config.n_templates
    names = templates.names if templates is not None else tuple(f"t{i}" for i in range(K))
    coords = Coordinates(
        scenario=config.run.scenarios, method=config.methods.names,
        likelihood=config.methods.likelihoods, fit_model=FIT_MODELS,
        lrt_pair=tuple(f"{a}/{b}" for a, b in LRT_PAIRS), stage=STAGES, template=names)
    prov = Provenance(
        schema_version=SCHEMA_VERSION, hpcsys_version=__version__, git_hash=_git_hash(),
        config_text=text, config_source=str(info.get("config_source", cfg_file)),
        master_seed=config.run.master_seed, created=utc_now(),
        n_ranks=int(info.get("n_ranks", 1)),
        hosts=tuple(info.get("hosts", ())) or tuple(dict.fromkeys(hosts)) or (socket.gethostname(),),
        devices=tuple(info.get("devices", ())), n_tasks=len(tasks))
    path = run_dir / "results.h5"
    tmp = run_dir / f".tmp-results-{os.getpid()}.h5"
    try:
        write_results(tmp, records, coords=coords, provenance=prov, templates=templates)
        with open_results(tmp) as res:
            t2, t3, rec = compute_tables(
                res, alpha=config.analysis.alpha if alpha is None else alpha)
        write_tables(tmp, t2, t3, rec)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
