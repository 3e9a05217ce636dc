"""Degenerate map values that pass every structural check but cannot be fitted.

:func:`check_map_values` runs on the full-sky arrays before
:func:`hpcsys.io.maps.prepare_maps` (``hpcsys fit`` and
:func:`hpcsys.userfit.fit_maps` call it):

==========================================  ==========================================
input                                       handling
==========================================  ==========================================
a constant map (e.g. all zero)              refused: nothing to fit, every LRT would
                                            be NaN
overdensity beyond ``1e6`` in magnitude     refused (did you mean ``--counts``?)
counts or template beyond ``1e150``         refused (the squares overflow)
non-integer counts with ``--counts``        accepted as weighted counts, with a note
==========================================  ==========================================

Footprint here means finite, non-``UNSEEN`` pixels with ``mask > 0`` (all of
them without a mask), as in :func:`hpcsys.io.maps.prepare_maps`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hpcsys.io.maps import MapInputError, bad_pixels

__all__ = ["MAX_COUNT_OR_TEMPLATE", "MAX_OVERDENSITY", "check_map_values"]

#: Largest ``abs(delta)`` accepted: an overdensity is >= -1 and of order unity.
MAX_OVERDENSITY = 1e6
#: Largest ``abs(value)`` of a counts map or template: beyond it the squares overflow float64.
MAX_COUNT_OR_TEMPLATE = 1e150


def check_map_values(
    values: np.ndarray,
    templates: np.ndarray,
    mask: np.ndarray | None,
    *,
    counts: bool,
    map_label: str = "map",
    template_labels: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """Refuse degenerate map values (see the module table); return notes.

    Parameters
    ----------
    values : ndarray, shape (Npix_sky,)
        Observed overdensity, or counts with ``counts``.
    templates : ndarray, shape (K, Npix_sky)
    mask : ndarray or None
    counts : bool
    map_label : str
        Name of the map in messages (file or argument).
    template_labels : sequence of str, optional
        Names of the templates in messages.

    Returns
    -------
    tuple of str
        Notes (non-integer counts).

    Raises
    ------
    MapInputError
        One line naming the map or template.
    """
    values = np.asarray(values, dtype=np.float64)
    templates = np.atleast_2d(np.asarray(templates, dtype=np.float64))
    good = ~bad_pixels(values)
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        good &= ~bad_pixels(m) & (np.nan_to_num(m, nan=0.0) > 0)
    v = values[good]
    notes: list[str] = []
    if v.size == 0:
        return ()  # an empty footprint is prepare_maps' refusal
    big = float(np.max(np.abs(v)))
    if counts:
        if big > MAX_COUNT_OR_TEMPLATE:
            raise MapInputError(f"{map_label}: counts up to {big:.3g}; beyond "
                                f"{MAX_COUNT_OR_TEMPLATE:.0e} the fits overflow")
        frac = v != np.round(v)
        if frac.any():
            notes.append(f"{map_label}: {int(frac.sum())} of {v.size} footprint pixels hold "
                         "non-integer counts; treated as weighted counts")
    elif big > MAX_OVERDENSITY:
        raise MapInputError(f"{map_label}: overdensity values up to {big:.3g}, not an "
                            f"overdensity (|delta| <= {MAX_OVERDENSITY:.0e}); if the map "
                            "holds galaxy counts, use --counts with --mask")
    if float(np.ptp(v)) == 0.0 and (v[0] != 0 or not counts):  # zero counts: prepare_maps
        raise MapInputError(f"{map_label}: every footprint pixel is {v[0]:.6g} (a constant "
                            "map): there is no fluctuation to fit")
    labels = list(template_labels) if template_labels is not None else [
        f"template {i}" for i in range(templates.shape[0])]
    for i, t in enumerate(templates):
        tg = t[good & ~bad_pixels(t)]
        if tg.size and float(np.max(np.abs(tg))) > MAX_COUNT_OR_TEMPLATE:
            raise MapInputError(f"{labels[i] if i < len(labels) else f'template {i}'}: values "
                                f"up to {float(np.max(np.abs(tg))):.3g}; beyond "
                                f"{MAX_COUNT_OR_TEMPLATE:.0e} standardising overflows")
    return tuple(notes)
