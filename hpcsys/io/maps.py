"""Reading and validating a user's own HEALPix maps for ``hpcsys fit``.

Two steps, both NumPy/healpy/astropy only (this module is a leaf of the
package: it imports nothing else from :mod:`hpcsys`):

1. :func:`load_user_maps` reads the observed map, the template maps and an
   optional mask from HEALPix FITS files into full-sky RING arrays
   (:class:`UserMaps`).
2. :func:`hpcsys.io.prepare.prepare_maps` turns full-sky arrays (read from
   files or passed by a caller) into footprint vectors ready for the
   estimators (:class:`~hpcsys.io.prepare.PreparedMaps`): the footprint, the
   overdensity, standardised templates and an account of everything that was
   masked or dropped.

Every problem with the input raises :class:`MapInputError` (a ``ValueError``)
with one line that starts with the offending file or argument. The handling
of each kind of bad input is fixed and documented here:

==================================  ================================================
input                               handling
==================================  ================================================
missing file, directory             refused
file that is not FITS               refused
FITS without a HEALPix table        refused (healpy's reason quoted)
no ``ORDERING`` keyword             refused: RING and NESTED cannot be told apart
``ORDERING = NESTED``               reordered to RING, with a note
other ``ORDERING`` values           refused
cut-sky (``INDXSCHM=EXPLICIT``)     expanded to full sky, missing pixels masked
NSIDE differs between files         refused, naming both files
map file with several columns       refused (one map per file)
NaN, +-inf, ``UNSEEN`` pixels       masked in every map, counts reported
mask                                ``mask > 0`` is observed; NaN/UNSEEN are not;
                                    mask values are not used as weights
empty footprint                     refused
counts without a mask               refused (zero counts vs unobserved is ambiguous)
negative counts, zero total         refused
overdensity mean far from 0         kept, with a note (did you mean ``--counts``?)
constant template                   dropped, reason reported
duplicated template                 the later copy dropped, reason reported
linear combination                  dropped (a template that earlier templates
                                    explain to ``1 - R^2 < 1e-8``), reason reported
all templates dropped, or none      refused
==================================  ================================================

Fewer footprint pixels than parameters is refused by :func:`hpcsys.userfit.fit_prepared`
(which knows the models). Dropping rather than refusing degenerate templates
keeps a run going on a template stack with an accidental copy; every drop is
listed in the notes, printed by ``hpcsys fit`` and stored in its output.

Counts are turned into the overdensity of docs/science/conventions.rst,
``delta_p = N_p / mean(N) - 1`` on the footprint. Templates are standardised on
the footprint (mean 0, standard deviation 1; Berlfein+24 Section 2.2), so
fitted coefficients are per standard deviation of each template; the raw means
and standard deviations are kept to convert back.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "HealpixFile",
    "MapInputError",
    "UserMaps",
    "bad_pixels",
    "load_user_maps",
    "read_healpix",
]

#: A template whose footprint standard deviation is below this fraction of its
#: largest absolute value is treated as constant.
CONSTANT_RTOL = 1e-10
#: A template is dropped as linearly dependent when the earlier kept templates
#: explain all but this fraction of its variance.
DEPENDENT_TOL = 1e-8
#: Templates closer than this to dependence are kept but noted.
NEAR_DEPENDENT_TOL = 1e-4
#: ``|mean|`` of an overdensity map on the footprint above which a note is added.
MEAN_NOTE_THRESHOLD = 0.1


class MapInputError(ValueError):
    """A user map file or array is missing, unreadable, inconsistent or unusable.

    The message is one line and starts with the file name or argument name.
    """


def _healpy():
    import healpy as hp

    return hp


def bad_pixels(values: np.ndarray) -> np.ndarray:
    """Boolean mask of unusable pixels: NaN, +-inf or HEALPix ``UNSEEN``.

    Parameters
    ----------
    values : ndarray
        Map values, any shape.

    Returns
    -------
    ndarray of bool, same shape.
    """
    hp = _healpy()
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        unseen = np.abs(values - hp.UNSEEN) <= abs(hp.UNSEEN) * 1e-5
    return ~np.isfinite(values) | unseen


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class HealpixFile:
    """The columns of one HEALPix FITS file, in RING ordering.

    Attributes
    ----------
    path : str
        The file as given.
    values : ndarray, shape (C, 12 nside^2)
        Column values (float64, RING ordering; missing cut-sky pixels are ``UNSEEN``).
    columns : tuple of str
        Column names (``TTYPEn``), length C.
    nside : int
    ordering : str
        ``RING`` or ``NESTED`` as found in the header (values are always RING).
    notes : tuple of str
        What was done to the file's contents (reordering, cut-sky expansion).
    """

    path: str
    values: np.ndarray
    columns: tuple[str, ...]
    nside: int
    ordering: str
    notes: tuple[str, ...]


def _first_line(exc: BaseException, limit: int = 120) -> str:
    """The first line of an error message, safe for a terminal.

    Library errors about corrupt files may quote the file's raw bytes: anything
    but printable ASCII becomes ``?`` and the line is cut at ``limit`` characters.
    """
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    clean = "".join(c if c.isascii() and c.isprintable() else "?" for c in line)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def _safe(text: str, limit: int = 80) -> str:
    """A header value or column name for a message: printable ASCII, at most ``limit`` chars."""
    clean = "".join(c if c.isascii() and c.isprintable() else "?" for c in str(text))
    return clean if len(clean) <= limit else clean[:limit] + "..."


def read_healpix(path: str | Path) -> HealpixFile:
    """Read every map column of a HEALPix FITS file, reordered to RING.

    Parameters
    ----------
    path : str or Path
        A FITS file whose first extension is a HEALPix binary table (as written
        by ``healpy.write_map``), full-sky or cut-sky.

    Returns
    -------
    HealpixFile

    Raises
    ------
    MapInputError
        Missing file, not FITS, no HEALPix table, no or unknown ``ORDERING``.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # astropy's warnings are recorded, not printed
        try:
            out = _read_healpix(path)
        except MapInputError:
            _refuse_truncated(path, caught)
            raise
    _refuse_truncated(path, caught)
    return out


def _refuse_truncated(path: str | Path, caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        text = str(w.message)
        if "truncated" in text:
            raise MapInputError(f"{path}: truncated FITS file ({_first_line(Exception(text))})"
                                ) from None


def _read_healpix(path: str | Path) -> HealpixFile:
    import astropy.io.fits as fits

    hp = _healpy()
    p = Path(path)
    if not p.exists():
        raise MapInputError(f"{path}: no such file")
    if not p.is_file():
        raise MapInputError(f"{path}: not a regular file")
    try:
        with fits.open(p, memmap=False) as hdul:
            if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
                raise MapInputError(
                    f"{path}: FITS file without a HEALPix binary table in extension 1"
                )
            header = hdul[1].header
            ordering = str(header.get("ORDERING", "")).strip().upper()
            indxschm = str(header.get("INDXSCHM", "IMPLICIT")).strip().upper()
            text_cols = [f"{c.name} ({c.format})" for c in hdul[1].columns
                         if str(c.format).rstrip().endswith("A")]
            if text_cols:
                raise MapInputError(
                    f"{path}: column {_safe(text_cols[0])} holds text, not map values "
                    "(expected a HEALPix map: numeric columns written by healpy.write_map)"
                )
    except MapInputError:
        raise
    except OSError as exc:
        raise MapInputError(f"{path}: not a FITS file ({_first_line(exc)})") from None
    except Exception as exc:  # astropy raises assorted errors on corrupt files
        raise MapInputError(f"{path}: unreadable FITS file ({_first_line(exc)})") from None
    if not ordering:
        raise MapInputError(
            f"{path}: no ORDERING keyword in the HEALPix header; RING and NESTED cannot be "
            "told apart (add ORDERING = 'RING' or 'NESTED')"
        )
    if ordering not in ("RING", "NESTED"):
        raise MapInputError(
            f"{path}: ORDERING = {_safe(ordering)!r} is not supported (expected RING or NESTED)"
        )
    try:
        values, hdr = hp.read_map(
            str(p), field=None, nest=None, h=True, dtype=np.float64, memmap=False
        )
    except Exception as exc:
        raise MapInputError(f"{path}: not a readable HEALPix map ({_first_line(exc)})") from None
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    hdr = dict(hdr)
    npix = values.shape[1]
    if not hp.isnpixok(npix):
        raise MapInputError(f"{path}: {npix} pixels is not 12 NSIDE^2 for any NSIDE")
    nside = hp.npix2nside(npix)
    header_nside = hdr.get("NSIDE")
    if header_nside is not None and str(header_nside).strip() != str(nside):
        raise MapInputError(
            f"{path}: header NSIDE = {_safe(header_nside)} but the table holds {npix} pixels "
            f"(NSIDE {nside})"
        )
    try:
        n_cols = int(hdr.get("TFIELDS", values.shape[0]))
    except (TypeError, ValueError):
        n_cols = values.shape[0]
    names = [_safe(str(hdr.get(f"TTYPE{i}", f"col{i}")).strip()) for i in range(1, n_cols + 1)]
    names = [n for n in names if n.upper() != "PIXEL"][: values.shape[0]]
    if len(names) != values.shape[0]:
        names = [f"col{i + 1}" for i in range(values.shape[0])]
    notes = []
    if indxschm == "EXPLICIT":
        n_missing = int(bad_pixels(values[0]).sum())
        notes.append(
            f"{path}: cut-sky (explicit) map expanded to full sky; {n_missing} pixels "
            "absent from the file are masked"
        )
    if ordering == "NESTED":
        values = np.asarray(hp.reorder(values, n2r=True), dtype=np.float64).reshape(values.shape)
        notes.append(f"{path}: ORDERING = NESTED, reordered to RING")
    return HealpixFile(str(path), values, tuple(names), int(nside), ordering, tuple(notes))


@dataclass(frozen=True)
class UserMaps:
    """A user's observed map, templates and mask as full-sky RING arrays.

    Attributes
    ----------
    map : ndarray, shape (Npix_sky,)
        Observed overdensity, or galaxy counts when ``counts`` is true.
    templates : ndarray, shape (K, Npix_sky)
    mask : ndarray or None, shape (Npix_sky,)
    nside : int
    counts : bool
        Whether ``map`` holds counts.
    names : tuple of str
        Template names: the file stem, plus ``:column`` for multi-column files.
    map_label, mask_label : str
        The files, for messages (``mask_label`` is ``""`` without a mask).
    template_labels : tuple of str
        ``file[column]`` of each template, for messages.
    notes : tuple of str
        What was done while reading (reordering, cut-sky expansion).
    """

    map: np.ndarray
    templates: np.ndarray
    mask: np.ndarray | None
    nside: int
    counts: bool
    names: tuple[str, ...]
    map_label: str
    mask_label: str
    template_labels: tuple[str, ...]
    notes: tuple[str, ...]


def load_user_maps(
    map_path: str | Path,
    template_paths: Sequence[str | Path],
    mask_path: str | Path | None = None,
    counts: bool = False,
) -> UserMaps:
    """Read a user's observed map, templates and mask from HEALPix FITS files.

    Parameters
    ----------
    map_path : str or Path
        One-column HEALPix map: the observed overdensity, or galaxy counts.
    template_paths : sequence of str or Path
        Template files; a file with several columns contributes one template
        per column, in order.
    mask_path : str or Path, optional
        Footprint mask (``> 0`` is observed). Required when ``counts`` is true.
    counts : bool
        ``map_path`` holds galaxy counts rather than an overdensity.

    Returns
    -------
    UserMaps
        Full-sky RING arrays (NESTED files reordered, with a note).

    Raises
    ------
    MapInputError
        Any unreadable file, an NSIDE mismatch, a multi-column map or mask,
        counts without a mask, or no templates.
    """
    if len(template_paths) == 0:
        raise MapInputError("--templates: at least one template file is required")
    if counts and mask_path is None:
        raise MapInputError(
            "--mask: required with --counts (a zero-count pixel could be empty or unobserved)"
        )
    main = read_healpix(map_path)
    if main.values.shape[0] != 1:
        raise MapInputError(
            f"{map_path}: expected one map column, found {main.values.shape[0]} "
            f"({', '.join(main.columns)})"
        )
    notes = list(main.notes)

    def same_nside(f: HealpixFile) -> None:
        if f.nside != main.nside:
            raise MapInputError(
                f"{f.path}: NSIDE {f.nside} differs from NSIDE {main.nside} of the map "
                f"{map_path}; regrade one of them first"
            )

    templates, names, labels = [], [], []
    for tp in template_paths:
        f = read_healpix(tp)
        same_nside(f)
        notes += f.notes
        stem = Path(tp).name.removesuffix(".gz").removesuffix(".fits").removesuffix(".fit")
        for col, values in zip(f.columns, f.values):
            templates.append(values)
            names.append(stem if f.values.shape[0] == 1 else f"{stem}:{col}")
            labels.append(f"{tp}[{col}]")
    mask = None
    if mask_path is not None:
        m = read_healpix(mask_path)
        same_nside(m)
        if m.values.shape[0] != 1:
            raise MapInputError(f"{mask_path}: expected one mask column, found {m.values.shape[0]}")
        notes += m.notes
        mask = m.values[0]
    return UserMaps(
        map=main.values[0],
        templates=np.stack(templates),
        mask=mask,
        nside=main.nside,
        counts=counts,
        names=tuple(names),
        map_label=str(map_path),
        mask_label="" if mask_path is None else str(mask_path),
        template_labels=tuple(labels),
        notes=tuple(notes),
    )
