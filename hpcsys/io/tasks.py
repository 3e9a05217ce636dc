"""Per-task HDF5 files: atomic writes, validation for ``--resume``, reading back.

Each finished task ``(scenario, index)`` is one file
``RUN_DIR/tasks/<scenario>/<index:05d>.h5`` holding the task's result
dataclass (see :mod:`hpcsys.io.serialize`) and the root attributes

``complete`` (True, written last), ``scenario``, ``index``, ``config_hash``
(SHA-256 of the resolved config text), ``rank``, ``host``, ``hpcsys_version``
and ``schema_version``.

A file is written with :func:`hpcsys.io.atomic.atomic_h5` (built in memory,
then a temporary name in the same directory, fsync'ed and moved into place
with :func:`os.replace`), so a reader (or a ``--resume`` after a crash) sees
either no file or a complete one. The file starts with a 512-byte user block
holding the SHA-256 of the rest (:func:`hpcsys.io.atomic.verify_checksum`): a
file whose bytes were damaged afterwards, a file left torn by a killed writer
of an older version, or any file that does not open or lacks ``complete``,
counts as unfinished and is redone.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import h5py

from hpcsys._version import __version__
from hpcsys.io.atomic import TEMP_PREFIX, atomic_h5, verify_checksum
from hpcsys.io.schema import SCHEMA_VERSION
from hpcsys.io.serialize import read_dataclass, write_dataclass

__all__ = [
    "TaskFileError",
    "TaskStatus",
    "clean_temporaries",
    "config_hash",
    "read_task",
    "task_path",
    "task_status",
    "write_task",
]

T = TypeVar("T")


class TaskFileError(ValueError):
    """A task file is missing, torn, or belongs to a different configuration."""


@dataclass(frozen=True)
class TaskStatus:
    """State of one task file on disk.

    Attributes
    ----------
    path : Path
    complete : bool
        The file opens and carries ``complete = True``.
    config_hash : str
        The stored configuration hash ('' when not complete).
    reason : str
        Why the file is not complete ('' when it is).
    """

    path: Path
    complete: bool
    config_hash: str
    reason: str


def config_hash(config_text: str) -> str:
    """SHA-256 hex digest of a resolved configuration text (ties task files to a config)."""
    return hashlib.sha256(config_text.encode()).hexdigest()


def task_path(run_dir: str | Path, scenario: str, index: int) -> Path:
    """Path of the file of task ``(scenario, index)`` under ``run_dir/tasks``."""
    return Path(run_dir) / "tasks" / scenario / f"{int(index):05d}.h5"


def write_task(path: str | Path, result: Any, *, scenario: str, index: int, cfg_hash: str,
               rank: int = 0) -> Path:
    """Atomically write one task's result dataclass to ``path``.

    Parameters
    ----------
    path : str or Path
        Final file name (see :func:`task_path`); parent folders are created.
    result : dataclass instance
        The task's result (e.g. ``hpcsys.pipeline.RealisationResult``).
    scenario, index : str, int
        Task identity, stored as attributes.
    cfg_hash : str
        :func:`config_hash` of the run's config text.
    rank : int
        Rank that computed it (provenance only; never affects values).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path, checksum=True) as f:
        write_dataclass(f.create_group("result"), result)
        f.attrs["scenario"] = scenario
        f.attrs["index"] = int(index)
        f.attrs["config_hash"] = cfg_hash
        f.attrs["rank"] = int(rank)
        f.attrs["host"] = socket.gethostname()
        f.attrs["hpcsys_version"] = __version__
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["complete"] = True
    return path


def _touch(name: str, obj: h5py.Group | h5py.Dataset) -> None:
    """Open an object's header and attributes (raises if they are damaged)."""
    dict(obj.attrs)
    if isinstance(obj, h5py.Dataset):
        _ = obj.shape, obj.dtype


def task_status(path: str | Path) -> TaskStatus:
    """Check whether ``path`` is a complete task file.

    Complete: its bytes match the SHA-256 stored in its user block
    (:func:`hpcsys.io.atomic.verify_checksum`; files of older versions have
    none), it opens, carries ``complete = True``, the current
    :data:`~hpcsys.io.schema.SCHEMA_VERSION` and a ``result`` group whose
    objects all open (a task of an older layout is redone, not misread). Anything else, whatever the error, is not complete and
    the reason says why; this never raises for a damaged file.
    """
    path = Path(path)
    if not path.exists():
        return TaskStatus(path, False, "", "missing")
    try:
        if verify_checksum(path) is False:
            return TaskStatus(path, False, "", "damaged: content does not match its checksum")
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get("complete", False)):
                return TaskStatus(path, False, "", "no completion attribute")
            if "result" not in f:
                return TaskStatus(path, False, "", "no result group")
            version = int(f.attrs.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                return TaskStatus(path, False, "", f"written with result schema {version}, "
                                                   f"this hpcsys writes {SCHEMA_VERSION}")
            f["result"].visititems(_touch)
            h = f.attrs.get("config_hash", "")
            return TaskStatus(path, True, h.decode() if isinstance(h, bytes) else str(h), "")
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ValueError...
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        return TaskStatus(path, False, "", f"unreadable: {type(exc).__name__}"
                                           + (f": {first}" if first else ""))


def read_task(path: str | Path, cls: type[T], *, cfg_hash: str | None = None,
              skip: frozenset[str] = frozenset()) -> T:
    """Read a complete task file back into an instance of ``cls``.

    Parameters
    ----------
    path : str or Path
    cls : dataclass type
        Class that was written.
    cfg_hash : str, optional
        If given, the file must have been written under this configuration.
    skip : set of str
        Array fields left unread (empty arrays), e.g.
        :data:`hpcsys.io.schema.SKIPPED_FIELDS` for the per-pixel maps.

    Raises
    ------
    TaskFileError
        The file is not complete, or was written under another configuration.
    """
    st = task_status(path)
    if not st.complete:
        raise TaskFileError(f"{path}: task file is not complete ({st.reason})")
    if cfg_hash is not None and st.config_hash != cfg_hash:
        raise TaskFileError(
            f"{path}: written under a different configuration (hash {st.config_hash[:12]} "
            f"!= {cfg_hash[:12]}); use a new run.output_dir or delete the run directory"
        )
    with h5py.File(path, "r") as f:
        return read_dataclass(f["result"], cls, skip=skip)


def clean_temporaries(run_dir: str | Path) -> int:
    """Remove temporary files left by killed writers under ``run_dir/tasks``; return how many."""
    n = 0
    root = Path(run_dir) / "tasks"
    if root.is_dir():
        for p in root.rglob(f"{TEMP_PREFIX}*"):
            p.unlink(missing_ok=True)
            n += 1
    return n
