"""What a file is, in words: for messages about the wrong file given to a command.

:func:`describe_file` tells apart the files a user may hand ``hpcsys report``
(or any reader) by mistake: an hpcsys results file, an hpcsys task file, an
``hpcsys fit`` result, another HDF5 file, a FITS file (whole or truncated,
with or without numeric columns), a text file or anything else. It reads only
the first bytes and, for HDF5, the root attributes; it never raises for a
file that exists.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["describe_file"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_FITS_MAGIC = b"SIMPLE  ="


def _hdf5_kind(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            if "scenario" in a and "index" in a and "result" in f:
                scen = a["scenario"]
                scen = scen.decode() if isinstance(scen, bytes) else str(scen)
                return f"an hpcsys task file (task {scen}[{int(a['index'])}] of a run)"
            fmt = a.get("format", "")
            if (fmt.decode() if isinstance(fmt, bytes) else str(fmt)) == "hpcsys-fit":
                return "an hpcsys fit result (read it with hpcsys.io.fitfile.read_fit_result)"
            if "schema_version" in a and "scenarios" in f:
                return "an hpcsys results file"
            return "an HDF5 file, not written by hpcsys"
    except Exception:  # h5py raises several kinds on damaged files
        return "a damaged or truncated HDF5 file"


def _fits_kind(path: Path, size: int) -> str:
    if size % 2880:
        return f"a truncated FITS file ({size} bytes, not a multiple of the 2880-byte FITS block)"
    import astropy.io.fits as fits

    try:
        with fits.open(path, memmap=False) as hdul:
            tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
            if tables and all(str(c.format).rstrip().endswith("A")
                              for c in tables[0].columns):
                return "a FITS table of text columns"
            return "a FITS file" + (" (a HEALPix map?)" if tables else "")
    except Exception:
        return "a damaged FITS file"


def describe_file(path: str | Path) -> str:
    """A short phrase saying what ``path`` is, e.g. ``"an hpcsys task file (task null[1] ...)"``."""
    p = Path(path)
    if p.is_dir():
        return "a directory"
    if not p.exists():
        return "missing"
    if not p.is_file():
        return "not a regular file"
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not head:
        return "an empty file"
    # the HDF5 signature sits at 0 or behind a user block (512, 1024, ... bytes; task files)
    if any(_read_at(p, off, 8) == _HDF5_MAGIC for off in (0, 512, 1024, 2048, 4096)):
        return _hdf5_kind(p)
    if head.startswith(_FITS_MAGIC):
        return _fits_kind(p, size)
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a binary file of unknown format"


def _read_at(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)
