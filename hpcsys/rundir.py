"""The run directory (``run.output_dir``): its layout and its identity.

::

    RUN_DIR/config.yaml      resolved configuration (identifies the run)
    RUN_DIR/run_info.json    ranks, hosts, devices, timings of the last run
    RUN_DIR/templates.h5     template names, correlation and xi_ij(theta)
    RUN_DIR/tasks/<scenario>/<index:05d>.h5
    RUN_DIR/results.h5       written by :func:`hpcsys.reduction.reduce_run`
    RUN_DIR/.lock            who runs in the directory now (:class:`RunLock`)
    RUN_DIR/**/.tmp-*        files being written (:mod:`hpcsys.io.atomic`)

Shared by the run driver (:mod:`hpcsys.parallel.runner`) and the reducer
(:mod:`hpcsys.reduction`); JAX-free and MPI-free.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from hpcsys.config import Config
from hpcsys.io import config_hash
from hpcsys.io.atomic import TEMP_PREFIX, check_free_space

__all__ = [
    "CONFIG_FILE",
    "EXTENT_KEYS",
    "INFO_FILE",
    "LOCK_FILE",
    "RESULTS_FILE",
    "TEMPLATES_FILE",
    "LockHolder",
    "OutputSize",
    "RunError",
    "RunLock",
    "check_run_space",
    "estimate_output_size",
    "remove_litter",
    "science_hash",
]

CONFIG_FILE = "config.yaml"
INFO_FILE = "run_info.json"
TEMPLATES_FILE = "templates.h5"
RESULTS_FILE = "results.h5"
LOCK_FILE = ".lock"


class RunError(ValueError):
    """The run cannot start or be reduced (run directory, missing tasks, ...)."""


#: Keys that set a run's extent or its reduction, not any one task's numbers: a run
#: resumed with more realisations (or calibration mocks, or another alpha) keeps its
#: finished tasks, whose seeds are keyed by their index alone.
EXTENT_KEYS = ("run.n_realisations", "analysis")


def science_hash(config: Config) -> str:
    """Hash of everything that changes a task's results.

    The config without ``parallel`` and ``run.output_dir`` (so a run may be resumed
    with other ranks, threads or paths) and without :data:`EXTENT_KEYS` (so a run may
    be extended: ``--resume`` with a larger ``run.n_realisations`` or
    ``analysis.calibration_realisations`` runs only the new tasks, and the reduction
    reads the finished ones unchanged).
    """
    d = config.to_dict()
    d.pop("parallel", None)
    d["run"].pop("output_dir", None)
    for key in EXTENT_KEYS:
        section, _, name = key.partition(".")
        if name:
            d.get(section, {}).pop(name, None)
        else:
            d.pop(section, None)
    return config_hash(yaml.safe_dump(d, sort_keys=True))


# --------------------------------------------------------------------------- the lock


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a run directory's lock: ``RUN_DIR/.lock``."""

    host: str
    pid: int
    started: str

    def describe(self) -> str:
        """``pid P on host H since T``."""
        return f"pid {self.pid} on host {self.host} since {self.started}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(fh: Any) -> LockHolder | None:
    fh.seek(0)
    try:
        d = json.loads(fh.read() or "null")
        return None if d is None else LockHolder(str(d["host"]), int(d["pid"]), str(d["started"]))
    except (ValueError, KeyError, TypeError):
        return None


class RunLock:
    """An advisory lock on a run directory, held by one process (rank 0) for a whole run.

    ``RUN_DIR/.lock`` is locked with :func:`fcntl.flock` (exclusive, non-blocking;
    on Linux NFS it is mapped to a POSIX byte-range lock) and records the
    holder's host, pid and start time as JSON. The kernel drops the lock when
    the holder exits, however it dies; a record left by a dead holder is
    reported as taken over. On a file system without ``flock`` the record
    alone decides: a live pid on this host, or any pid on another host, keeps
    the directory; a dead pid on this host is taken over.

    Use as a context manager or call :meth:`release`.

    Raises
    ------
    RunError
        Another live run holds the directory (the message names it).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.note = ""
        self._fh = open(self.path, "a+")
        try:
            self._acquire()
        except BaseException:
            self._fh.close()
            raise
        self.holder = LockHolder(socket.gethostname(), os.getpid(),
                                 datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps(dataclasses.asdict(self.holder)))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _refuse(self, holder: LockHolder | None) -> RunError:
        who = holder.describe() if holder else "another process"
        return RunError(f"{self.path.parent}: in use by another hpcsys run ({who}; lock "
                        f"{self.path}); wait for it to finish or use another run.output_dir")

    def _acquire(self) -> None:
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            flock = True
        except BlockingIOError:
            raise self._refuse(_read_holder(self._fh)) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            flock = False
        old = _read_holder(self._fh)
        if old is None or (old.pid == os.getpid() and old.host == socket.gethostname()):
            return
        same_host = old.host == socket.gethostname()
        if not flock and (not same_host or _pid_alive(old.pid)):
            raise self._refuse(old)
        self.note = (f"{self.path}: took over the lock of a run that is gone "
                     f"({old.describe()}{'' if same_host else ', another host'})")

    def release(self) -> None:
        """Clear the record and drop the lock (idempotent)."""
        if self._fh.closed:
            return
        try:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
        finally:
            self._fh.close()  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- litter


def remove_litter(run_dir: str | Path) -> list[Path]:
    """Remove the temporary files (``.tmp-*``) of killed writers in ``run_dir`` and ``tasks/``.

    Call only while holding the directory's :class:`RunLock` (before this run
    writes anything): then no live run can own a temporary file there. Returns
    the files removed.
    """
    run_dir = Path(run_dir)
    found = list(run_dir.glob(f"{TEMP_PREFIX}*"))
    tasks = run_dir / "tasks"
    if tasks.is_dir():
        found += list(tasks.rglob(f"{TEMP_PREFIX}*"))
    removed = []
    for p in sorted(found):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# --------------------------------------------------------------------------- disk space


@dataclass(frozen=True)
class OutputSize:
    """Estimated bytes a run writes (:func:`estimate_output_size`).

    Attributes
    ----------
    task_bytes : float
        One task file.
    results_bytes : float
        ``results.h5`` (written twice over while the tables are added).
    total_bytes : float
        ``n_tasks`` task files, ``templates.h5`` and the reduction.
    """

    task_bytes: float
    results_bytes: float
    total_bytes: float


def estimate_output_size(config: Config, n_tasks: int, n_pixels: int | None = None
                         ) -> OutputSize:
    """Bytes of ``n_tasks`` task files and of the reduction of all tasks of ``config``.

    Calibrated on configs/ci.yaml (NSIDE 16 cap, 736 pixels, 6 methods: task
    files 131 kB, results.h5 ... kB) and rounded up: per task the per-pixel maps
    (observed and true overdensity, the mask, weights and corrected map of
    every method) in float64 plus a fixed 64 kB of summaries and HDF5
    metadata; per realisation in ``results.h5`` the summaries only.

    Parameters
    ----------
    config : Config
    n_tasks : int
        Task files still to write.
    n_pixels : int, optional
        Footprint pixels (default: the whole sky, ``12 nside^2``, an upper bound).
    """
    npix = 12 * config.sky.nside**2 if n_pixels is None else int(n_pixels)
    m = len(config.methods.names)
    k = config.n_templates
    b = config.twopoint.n_bins
    task = 8.0 * npix * (2 * m + 4) + 65536.0
    per_real = 8.0 * (m * (12 * k + 8 * b + 16) + 48 * b + 256)
    n_all = len(config.run.scenarios) * config.run.n_realisations
    results = 65536.0 + n_all * per_real
    templates = 8.0 * (k * k * (b + 1)) + 16384.0
    return OutputSize(task, results, n_tasks * task + templates + 2 * results)


def check_run_space(config: Config, run_dir: str | Path, n_tasks: int,
                    n_pixels: int | None = None) -> OutputSize:
    """Refuse a run whose outputs do not fit on the run directory's file system.

    Raises
    ------
    DiskFullError
        Less free space than :func:`estimate_output_size` says the run needs
        (the message names the directory, the space needed and the space free).
    """
    size = estimate_output_size(config, n_tasks, n_pixels)
    check_free_space(run_dir, size.total_bytes)
    return size
