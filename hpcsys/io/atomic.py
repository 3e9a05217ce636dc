"""Atomic file writes: the one way hpcsys puts a file in place.

Every output (task files, ``results.h5``, ``templates.h5``, ``hpcsys fit``
results and weight maps) is written to a temporary file in the destination's
directory, named ``.tmp-<stem>-<pid><suffix>`` (:func:`temp_path`), flushed
and fsync'ed, moved into place with :func:`os.replace`, and the directory is
fsync'ed so the rename survives a crash. On any failure the temporary file is
removed and the destination is left as it was: a reader sees either the old
file or the complete new one, never a partial file.

HDF5 files are built in memory (:func:`atomic_h5`: h5py on an
:class:`io.BytesIO`, no HDF5 file I/O at all) and their bytes written with
plain Python I/O. HDF5 does not survive a failed write: on a full disk
h5py/HDF5 1.14 crashed with a segmentation fault while closing the file
("Can't destroy cache"), so no error could be reported. Writing the finished
image instead turns ``ENOSPC``/``EDQUOT`` into an ordinary :class:`OSError`,
reported as :class:`DiskFullError` with the path and the bytes needed, and
lets the free space be checked before the first byte is written.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "TEMP_PREFIX",
    "DiskFullError",
    "atomic_h5",
    "atomic_path",
    "check_free_space",
    "temp_path",
    "verify_checksum",
    "write_bytes",
]

#: Prefix of every temporary file hpcsys writes (``.tmp-<stem>-<pid><suffix>``).
TEMP_PREFIX = ".tmp-"
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_USERBLOCK = 512
_MAGIC = b"hpcsys-sha256:"


class DiskFullError(OSError):
    """Not enough space (or quota) for a file: the message names the path and the bytes needed."""

    def __str__(self) -> str:
        return str(self.strerror)


def _mb(n: float) -> str:
    return f"{n / 1e6:.3g} MB"


def _full_error(path: Path, needed: float | None, exc: OSError | None = None) -> DiskFullError:
    try:
        free = shutil.disk_usage(path.parent).free
        have = f", {_mb(free)} free"
    except OSError:
        have = ""
    need = f"needs ~{_mb(needed)}" if needed else "needs more space"
    why = {errno.EDQUOT: "disk quota exceeded",
           errno.EFBIG: "file size limit exceeded (ulimit -f)"}.get(
        exc.errno if exc is not None else 0, "no space left on device")
    err = DiskFullError(errno.ENOSPC, f"{path}: {why} ({need}{have})")
    err.filename = str(path)
    return err


def temp_path(path: str | Path) -> Path:
    """The temporary name of ``path`` for this process: ``.tmp-<stem>-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{path.stem}-{os.getpid()}{path.suffix}")


def check_free_space(path: str | Path, needed_bytes: float, *, margin: float = 1.1) -> None:
    """Raise :class:`DiskFullError` if the file system of ``path`` has less than
    ``margin * needed_bytes`` free (``path`` is a file to be written or a directory).

    The nearest existing parent is checked, so it can be called before the
    run directory is created.
    """
    p = Path(path).resolve()
    probe = p if p.is_dir() else p.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < margin * needed_bytes:
        raise DiskFullError(
            errno.ENOSPC, f"{path}: not enough free space (needs ~{_mb(margin * needed_bytes)}, "
                          f"{_mb(free)} free on {probe})")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every file system lets a directory be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, size_hint: float | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The caller writes the file at the yielded path (any library); on a normal
    exit the file is fsync'ed and renamed to ``path`` and the directory
    fsync'ed. On any exception the temporary file is removed and ``path`` is
    untouched; ``ENOSPC``/``EDQUOT``/``EFBIG`` become :class:`DiskFullError`.

    Parameters
    ----------
    path : str or Path
        Destination (its directory must exist).
    size_hint : float, optional
        Expected bytes, quoted in a :class:`DiskFullError`.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _FULL and not isinstance(exc, DiskFullError):
            raise _full_error(path, size_hint, exc) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`), checking free space first.

    Parameters
    ----------
    path : str or Path
    data : bytes
        The whole content.

    Raises
    ------
    DiskFullError
        The file system has less than ``len(data)`` free, or filled up while writing.
    """
    path = Path(path)
    n = len(data)
    check_free_space(path, n, margin=1.0)
    with atomic_path(path, size_hint=n) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
    return path


@contextmanager
def atomic_h5(path: str | Path, mode: str = "w", *, checksum: bool = False) -> Iterator[Any]:
    """An :class:`h5py.File` built in memory, written to ``path`` atomically on success.

    Parameters
    ----------
    path : str or Path
        Destination HDF5 file; its directory must exist.
    mode : {"w", "r+"}
        ``"w"``: a new file; ``"r+"``: start from the current content of ``path``.
    checksum : bool
        (``"w"`` only) store the SHA-256 of the HDF5 content in a 512-byte user
        block at the start of the file (HDF5 readers skip it), so that any
        damaged byte is found by :func:`verify_checksum`.

    Nothing touches ``path`` until the block has finished and the image is
    complete; an exception in the block leaves no file and no temporary.
    """
    import h5py

    if mode not in ("w", "r+"):
        raise ValueError(f"atomic_h5: mode must be 'w' or 'r+', got {mode!r}")
    path = Path(path)
    buf = io.BytesIO(path.read_bytes() if mode == "r+" else b"")
    kw = {"userblock_size": _USERBLOCK} if checksum and mode == "w" else {}
    f = h5py.File(buf, mode, **kw)
    try:
        yield f
    except BaseException:
        f.close()
        raise
    f.close()
    image = buf.getbuffer().tobytes()
    if kw:
        stamp = _MAGIC + hashlib.sha256(image[_USERBLOCK:]).hexdigest().encode()
        image = stamp.ljust(_USERBLOCK, b"\0") + image[_USERBLOCK:]
    write_bytes(path, image)


def verify_checksum(path: str | Path) -> bool | None:
    """Whether the file's content matches the SHA-256 in its user block.

    Returns None for a file without one (written by :func:`atomic_h5` without
    ``checksum``, or by an older hpcsys).
    """
    data = Path(path).read_bytes()
    head = data[:_USERBLOCK]
    if not head.startswith(_MAGIC):
        return None
    stored = head[len(_MAGIC):len(_MAGIC) + 64].decode("ascii", "replace")
    return stored == hashlib.sha256(data[_USERBLOCK:]).hexdigest()
