"""User maps reduced to the footprint: validation, overdensity and standardised templates.

:func:`prepare_maps` is the second step of :mod:`hpcsys.io.maps` (the table of
how every kind of bad input is handled is there), in three stages:

1. :func:`_footprint`: the shapes, the mask and the NaN/inf/UNSEEN pixels of
   every map decide the footprint;
2. :func:`_counts_to_delta`: galaxy counts become ``delta_p = N_p / mean(N) - 1``
   on the footprint (docs/science/conventions.rst), an overdensity map is
   checked for a mean far from 0;
3. :func:`_standardise_and_drop`: templates are standardised on the footprint
   (mean 0, standard deviation 1; Berlfein+24 Section 2.2) and constant,
   duplicate or linearly dependent ones are dropped.

NumPy and healpy only; imports nothing from :mod:`hpcsys` but :mod:`hpcsys.io.maps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hpcsys.io.maps import (
    CONSTANT_RTOL,
    DEPENDENT_TOL,
    MEAN_NOTE_THRESHOLD,
    NEAR_DEPENDENT_TOL,
    MapInputError,
    _healpy,
    bad_pixels,
)

__all__ = ["PreparedMaps", "prepare_maps"]


@dataclass(frozen=True)
class PreparedMaps:
    """Footprint vectors ready for the estimators, and how they were obtained.

    Attributes
    ----------
    delta : ndarray, shape (Npix,)
        Observed overdensity on the footprint.
    templates : ndarray, shape (K, Npix)
        Kept templates, standardised on the footprint (mean 0, std 1).
    pixels : ndarray of int64, shape (Npix,)
        RING indices of the footprint pixels.
    nside : int
    names : tuple of str
        Kept template names (length K).
    template_mean, template_std : ndarray, shape (K,)
        Footprint mean and standard deviation of each kept raw template:
        a coefficient ``c`` per standardised template is ``c / std`` per raw unit.
    dropped : tuple of str
        Names of dropped templates.
    dropped_reasons : tuple of str
        Why each was dropped (same order).
    n_input_templates : int
    n_outside_mask : int
        Sky pixels excluded by the mask (0 without a mask).
    n_bad_map : int
        Pixels inside the mask where the map is NaN/inf/UNSEEN.
    n_bad_templates : ndarray of int, shape (K_input,)
        Pixels inside the mask where each input template is NaN/inf/UNSEEN.
    n_bad_mask : int
        Pixels where the mask itself is NaN/inf/UNSEEN (treated as unobserved).
    mean_count : float
        Mean galaxy count per footprint pixel (``nan`` for an overdensity input).
    notes : tuple of str
    """

    delta: np.ndarray
    templates: np.ndarray
    pixels: np.ndarray
    nside: int
    names: tuple[str, ...]
    template_mean: np.ndarray
    template_std: np.ndarray
    dropped: tuple[str, ...]
    dropped_reasons: tuple[str, ...]
    n_input_templates: int
    n_outside_mask: int
    n_bad_map: int
    n_bad_templates: np.ndarray
    n_bad_mask: int
    mean_count: float
    notes: tuple[str, ...]

    @property
    def n_pixels(self) -> int:
        """Number of footprint pixels used."""
        return int(self.delta.shape[0])

    @property
    def n_templates(self) -> int:
        """Number of kept templates K."""
        return int(self.templates.shape[0])


def _drop_degenerate(
    z: np.ndarray, names: Sequence[str], labels: Sequence[str]
) -> tuple[list[int], list[str], list[str]]:
    """Greedy rank check over standardised templates, in input order.

    Returns the kept indices, the reasons for the dropped ones (by index
    order) and notes on nearly dependent templates.
    """
    kept: list[int] = []
    reasons: list[str] = []
    notes: list[str] = []
    n = z.shape[1]
    for j in range(z.shape[0]):
        if kept:
            basis = z[kept].T
            coef, *_ = np.linalg.lstsq(basis, z[j], rcond=None)
            resid = z[j] - basis @ coef
            frac = float(resid @ resid) / float(z[j] @ z[j])
            if frac < DEPENDENT_TOL:
                corr = z[kept] @ z[j] / n
                i = int(np.argmax(np.abs(corr)))
                if abs(corr[i]) > 1 - DEPENDENT_TOL:
                    reasons.append(
                        f"duplicate of {names[kept[i]]} (correlation {corr[i]:+.6f} on the footprint)"
                    )
                else:
                    reasons.append(
                        "linear combination of earlier templates "
                        f"({', '.join(names[k] for k in kept)})"
                    )
                continue
            if frac < NEAR_DEPENDENT_TOL:
                notes.append(
                    f"{labels[j]}: nearly a linear combination of earlier templates "
                    f"(1 - R^2 = {frac:.2e}); its coefficient will be poorly constrained"
                )
        kept.append(j)
        reasons.append("")
    return kept, [r for r in reasons if r], notes


class _Footprint(NamedTuple):
    """Stage 1 of :func:`prepare_maps`."""

    m: np.ndarray
    t: np.ndarray
    nside: int
    names: tuple[str, ...]
    labels: tuple[str, ...]
    pixels: np.ndarray
    n_outside: int
    n_bad_map: int
    n_bad_templates: np.ndarray
    n_bad_mask: int
    notes: list[str]


def _footprint(map_values, templates, mask, counts: bool, names, map_label: str,
               mask_label: str, template_labels) -> _Footprint:
    """Check shapes and sizes; the footprint is observed and finite in every map."""
    hp = _healpy()
    try:
        m = np.asarray(map_values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MapInputError(f"{map_label}: not a numeric array") from None
    if m.ndim != 1:
        raise MapInputError(f"{map_label}: expected a 1-D HEALPix map, got shape {m.shape}")
    if not hp.isnpixok(m.size):
        raise MapInputError(f"{map_label}: {m.size} pixels is not 12 NSIDE^2 for any NSIDE")
    nside = int(hp.npix2nside(m.size))
    try:
        t = np.asarray(templates, dtype=np.float64)
    except (TypeError, ValueError):
        raise MapInputError("templates: not a numeric array") from None
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2 or t.shape[0] == 0:
        raise MapInputError(f"templates: expected shape (K, {m.size}) with K >= 1, got {t.shape}")
    if t.shape[1] != m.size:
        tn = f"NSIDE {hp.npix2nside(t.shape[1])}" if hp.isnpixok(t.shape[1]) else f"{t.shape[1]} pixels"
        raise MapInputError(
            f"templates: {tn} differs from NSIDE {nside} of {map_label}; regrade one of them first"
        )
    K_in = t.shape[0]
    names = tuple(f"t{i}" for i in range(K_in)) if names is None else tuple(names)
    if len(names) != K_in:
        raise MapInputError(f"names: {len(names)} names for {K_in} templates")
    labels = names if template_labels is None else tuple(template_labels)

    if mask is None:
        if counts:
            raise MapInputError(
                f"{mask_label}: required with counts (a zero-count pixel could be empty or "
                "unobserved)"
            )
        observed = np.ones(m.size, dtype=bool)
        n_bad_mask = 0
    else:
        mk = np.asarray(mask, dtype=np.float64)
        if mk.shape != m.shape:
            mn = f"NSIDE {hp.npix2nside(mk.size)}" if hp.isnpixok(mk.size) else f"shape {mk.shape}"
            raise MapInputError(
                f"{mask_label}: {mn} differs from NSIDE {nside} of {map_label}"
            )
        badm = bad_pixels(mk)
        n_bad_mask = int(badm.sum())
        observed = ~badm & (np.where(badm, 0.0, mk) > 0)
    n_outside = int((~observed).sum())
    bad_map = bad_pixels(m) & observed
    bad_t = bad_pixels(t) & observed
    footprint = observed & ~bad_map & ~bad_t.any(axis=0)
    notes: list[str] = []
    if bad_map.any():
        notes.append(f"{map_label}: {int(bad_map.sum())} NaN/inf/UNSEEN pixels masked")
    for k in np.flatnonzero(bad_t.any(axis=1)):
        notes.append(f"{labels[k]}: {int(bad_t[k].sum())} NaN/inf/UNSEEN pixels masked")
    if n_bad_mask:
        notes.append(f"{mask_label}: {n_bad_mask} NaN/inf/UNSEEN mask pixels treated as unobserved")
    pixels = np.flatnonzero(footprint).astype(np.int64)
    if pixels.size == 0:
        where = f"{mask_label} selects no pixel" if not observed.any() else (
            "no pixel is finite in the map and every template inside the mask"
        )
        raise MapInputError(f"{map_label}: empty footprint ({where})")
    return _Footprint(m, t, nside, names, labels, pixels, n_outside, int(bad_map.sum()),
                      bad_t.sum(axis=1).astype(np.int64), n_bad_mask, notes)


def _counts_to_delta(values: np.ndarray, counts: bool, map_label: str,
                     notes: list[str]) -> tuple[np.ndarray, float]:
    """``delta`` on the footprint and the mean count (``nan`` for an overdensity input)."""
    if counts:
        if values.min() < 0:
            raise MapInputError(
                f"{map_label}: negative galaxy counts on {int((values < 0).sum())} footprint pixels"
            )
        mean_count = float(values.mean())
        if mean_count <= 0:
            raise MapInputError(f"{map_label}: all galaxy counts on the footprint are zero")
        return values / mean_count - 1.0, mean_count
    mu = float(values.mean())
    if abs(mu) > MEAN_NOTE_THRESHOLD:
        hint = (
            " and all values are non-negative integers: is it a counts map (--counts)?"
            if values.min() >= 0 and np.all(values == np.round(values))
            else ""
        )
        notes.append(
            f"{map_label}: mean {mu:.4g} on the footprint; an overdensity map should "
            f"average about 0{hint}"
        )
    return values, float("nan")


class _Standardised(NamedTuple):
    """Stage 3 of :func:`prepare_maps`."""

    z: np.ndarray
    kept: list[int]
    mean: np.ndarray
    std: np.ndarray
    dropped: list[str]
    reasons: list[str]


def _standardise_and_drop(tf: np.ndarray, names: tuple[str, ...], labels: tuple[str, ...],
                          map_label: str, notes: list[str]) -> _Standardised:
    """Standardise the footprint templates; drop constant and degenerate ones."""
    mean = tf.mean(axis=1)
    std = tf.std(axis=1)
    scale = np.max(np.abs(tf), axis=1)
    const = std <= CONSTANT_RTOL * np.where(scale > 0, scale, 1.0)
    dropped: list[str] = []
    reasons: list[str] = []
    for k in np.flatnonzero(const):
        dropped.append(names[k])
        reasons.append("constant on the footprint")
    live = np.flatnonzero(~const)
    z = (tf[live] - mean[live, None]) / np.where(const[live], 1.0, std[live])[:, None]
    kept_local, dep_reasons, dep_notes = _drop_degenerate(
        z, [names[k] for k in live], [labels[k] for k in live]
    )
    dep_idx = [live[j] for j in range(live.size) if j not in set(kept_local)]
    dropped += [names[k] for k in dep_idx]
    reasons += dep_reasons
    notes += dep_notes
    kept = [int(live[j]) for j in kept_local]
    for name, why in zip(dropped, reasons):
        notes.append(f"template {name} dropped: {why}")
    if not kept:
        raise MapInputError(
            f"templates: no usable template on the footprint of {map_label} "
            f"({'; '.join(f'{n}: {r}' for n, r in zip(dropped, reasons))})"
        )
    return _Standardised(z[kept_local], kept, mean, std, dropped, reasons)


def prepare_maps(
    map_values: np.ndarray,
    templates: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    counts: bool = False,
    names: Sequence[str] | None = None,
    map_label: str = "map",
    mask_label: str = "mask",
    template_labels: Sequence[str] | None = None,
) -> PreparedMaps:
    """Validate full-sky RING arrays and reduce them to the footprint.

    Parameters
    ----------
    map_values : ndarray, shape (12 nside^2,)
        Observed overdensity, or galaxy counts if ``counts``.
    templates : ndarray, shape (K, 12 nside^2) or (12 nside^2,)
        Raw template maps.
    mask : ndarray, shape (12 nside^2,), optional
        ``> 0`` marks observed pixels; required with ``counts``.
    counts : bool
        Convert counts to ``delta = N / mean(N) - 1`` on the footprint.
    names : sequence of str, optional
        Template names (default ``t0, t1, ...``).
    map_label, mask_label : str
        How messages refer to the map and the mask (file names).
    template_labels : sequence of str, optional
        How messages refer to each template (default: its name).

    Returns
    -------
    PreparedMaps

    Raises
    ------
    MapInputError
        Wrong shapes, non-HEALPix sizes, an empty footprint, bad counts, or no
        usable template (see the module table for every case).
    """

    fp = _footprint(map_values, templates, mask, counts, names, map_label, mask_label,
                    template_labels)
    notes = fp.notes
    delta, mean_count = _counts_to_delta(fp.m[fp.pixels], counts, map_label, notes)
    st = _standardise_and_drop(fp.t[:, fp.pixels], fp.names, fp.labels, map_label, notes)
    return PreparedMaps(
        delta=np.ascontiguousarray(delta),
        templates=np.ascontiguousarray(st.z),
        pixels=fp.pixels,
        nside=fp.nside,
        names=tuple(fp.names[k] for k in st.kept),
        template_mean=st.mean[st.kept],
        template_std=st.std[st.kept],
        dropped=tuple(st.dropped),
        dropped_reasons=tuple(st.reasons),
        n_input_templates=fp.t.shape[0],
        n_outside_mask=fp.n_outside,
        n_bad_map=fp.n_bad_map,
        n_bad_templates=fp.n_bad_templates,
        n_bad_mask=fp.n_bad_mask,
        mean_count=mean_count,
        notes=tuple(notes),
    )
