"""The output files of ``hpcsys fit``: the HDF5 result and the optional FITS weight map.

A leaf module like the rest of :mod:`hpcsys.io`: it does not import
:mod:`hpcsys.userfit`; the caller passes the result class to rebuild
(:func:`read_fit_result`), as :func:`hpcsys.io.tasks.read_task` does. The
layout is documented in :mod:`hpcsys.userfit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hpcsys.io.atomic import atomic_h5, atomic_path, check_free_space
from hpcsys.io.maps import MapInputError

__all__ = [
    "FIT_FORMAT",
    "FIT_FORMAT_VERSION",
    "FitFileError",
    "read_fit_result",
    "write_fit_result",
    "write_weight_map",
]

T = TypeVar("T")
#: ``format`` root attribute of an ``hpcsys fit`` result file.
FIT_FORMAT = "hpcsys-fit"
#: ``format_version`` root attribute.
FIT_FORMAT_VERSION = 3


class FitFileError(ValueError):
    """A weight map cannot be written for the requested method (one line naming the option)."""


def write_weight_map(result: Any, method: str, path: str | Path, *,
                     weighting_methods: Sequence[str] | None = None) -> None:
    """Write one weighting method's ``1/(1 + b.t_p)`` as a full-sky FITS map.

    Parameters
    ----------
    result : hpcsys.userfit.FitResult
    method : str
        A method that was run (and one of ``weighting_methods`` if given).
    path : str or Path
        Output FITS file (overwritten). ``UNSEEN`` outside the footprint, RING.
    weighting_methods : sequence of str, optional
        Methods whose weights are meaningful (:data:`hpcsys.config.WEIGHT_MAP_METHODS`).

    Raises
    ------
    FitFileError
        ``method`` is not a weighting method or was not run.
    """
    import healpy as hp

    if weighting_methods is not None and method not in weighting_methods:
        raise FitFileError(
            f"--weights-method {method}: not a weighting method; choose from "
            f"{', '.join(weighting_methods)}"
        )
    ran = [r.name for r in result.methods]
    if method not in ran:
        raise FitFileError(f"--weights-method {method}: was not run (ran {', '.join(ran)})")
    r = result.method(method)
    sky = np.full(result.map.n_sky_pixels, hp.UNSEEN, dtype=np.float64)
    sky[result.map.pixels] = r.weights
    check_free_space(path, sky.nbytes + 8640)
    with atomic_path(path, size_hint=sky.nbytes + 8640) as tmp:
        hp.write_map(
            str(tmp), sky, nest=False, dtype=np.float64, overwrite=True, column_names=["WEIGHT"],
            extra_header=[
                ("HPCMETH", method, "hpcsys weighting method"),
                ("HPCSEED", result.seed, "hpcsys fit seed"),
                ("HPCVERS", result.hpcsys_version, "hpcsys version"),
            ],
        )


def write_fit_result(
    result: Any,
    path_h5: str | Path,
    weights_fits: str | Path | None = None,
    weights_method: str = "ISD-1",
    *,
    weighting_methods: Sequence[str] | None = None,
) -> None:
    """Write an :class:`hpcsys.userfit.FitResult` to HDF5 (layout in :mod:`hpcsys.userfit`).

    Parameters
    ----------
    result : hpcsys.userfit.FitResult
    path_h5 : str or Path
        Output HDF5 file, written atomically (:func:`hpcsys.io.atomic.atomic_h5`);
        an existing file is replaced.
    weights_fits : str or Path, optional
        Also write ``weights_method``'s weights as a FITS map (:func:`write_weight_map`).
    weights_method : str
        A method that was run.
    weighting_methods : sequence of str, optional
        Passed to :func:`write_weight_map`.
    """
    from hpcsys.io.serialize import write_dataclass

    if weights_fits is not None:
        write_weight_map(result, weights_method, weights_fits,
                         weighting_methods=weighting_methods)
    with atomic_h5(path_h5) as f:
        write_dataclass(f, result)
        f.attrs["format"] = FIT_FORMAT
        f.attrs["format_version"] = FIT_FORMAT_VERSION
        f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_fit_result(path_h5: str | Path, cls: type[T]) -> T:
    """Read a file written by :func:`write_fit_result` into an instance of ``cls``.

    Parameters
    ----------
    path_h5 : str or Path
    cls : dataclass type
        The class that was written (:func:`hpcsys.userfit.fit_result_type`).

    Raises
    ------
    MapInputError
        The file is missing or not an ``hpcsys fit`` output.
    """
    import h5py

    from hpcsys.io.serialize import read_dataclass

    if not Path(path_h5).is_file():
        raise MapInputError(f"{path_h5}: no such file")
    with h5py.File(path_h5, "r") as f:
        if f.attrs.get("format") != FIT_FORMAT:
            raise MapInputError(f"{path_h5}: not an hpcsys fit result (format attribute)")
        version = int(f.attrs.get("format_version", -1))
        if version != FIT_FORMAT_VERSION:
            raise MapInputError(f"{path_h5}: hpcsys fit result of format version {version}; "
                                f"this hpcsys reads version {FIT_FORMAT_VERSION} (run hpcsys "
                                "fit again)")
        return read_dataclass(f, cls)
