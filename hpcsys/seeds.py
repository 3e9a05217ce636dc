"""Random streams keyed by task, never by MPI rank.

Every random number in a run comes from ``SeedSequence(master_seed,
spawn_key=(stream, *index))``: the stream names *what* is drawn (the true
field, the galaxy counts, one method's sampler, ...) and the index names
*which* realisation, scenario or method it belongs to. A task therefore draws
the same numbers whichever rank runs it and however many ranks there are, and
no two (stream, index) pairs share a sequence (unlike seeds built by adding
offsets, which collide).

This module is a leaf: NumPy only; the JAX key helper imports JAX lazily.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAMS", "jax_key", "rng", "seed_sequence", "seed_words"]

#: Stable identifiers of the random streams. Append only: renumbering changes results.
STREAMS: dict[str, int] = {
    "truth": 0,  # true contamination coefficients (a, b), once per run
    "templates": 1,  # template maps, once per run (or per realisation if redrawn)
    "field": 2,  # lognormal true field, per realisation
    "counts": 3,  # Poisson galaxy counts, per realisation
    "method": 4,  # stochastic methods (CV folds, samplers), per (scenario, realisation, method)
    "synthetic": 5,  # synthetic test and example maps
    "population": 6,  # population (joint) fits
    "calibration_field": 7,  # true field of Table 2 calibration mock j (hpcsys.calibration)
    "calibration_counts": 8,  # Poisson counts of calibration mock j
    "calibration_templates": 9,  # templates of calibration mock j when templates.redraw
    "jackknife": 10,  # k-means initialisation of the jackknife regions, once per run
}


def seed_sequence(master: int, stream: str, *index: int) -> np.random.SeedSequence:
    """The seed sequence of one stream and task index.

    Parameters
    ----------
    master : int
        The run's master seed (``run.master_seed``).
    stream : str
        A key of :data:`STREAMS`.
    *index : int
        Task coordinates, e.g. ``(realisation,)`` or ``(scenario, realisation, method)``.
    """
    if stream not in STREAMS:
        raise KeyError(f"unknown random stream {stream!r}; known: {', '.join(STREAMS)}")
    key = (STREAMS[stream], *(int(i) for i in index))
    if any(k < 0 for k in key):
        raise ValueError(f"stream indices must be non-negative, got {index}")
    return np.random.SeedSequence(int(master), spawn_key=key)


def rng(master: int, stream: str, *index: int) -> np.random.Generator:
    """A NumPy generator (PCG64) for one stream and task index."""
    return np.random.default_rng(seed_sequence(master, stream, *index))


def seed_words(master: int, stream: str, *index: int, n: int = 2) -> np.ndarray:
    """``n`` uint32 words of the stream's state, e.g. to seed another library."""
    return seed_sequence(master, stream, *index).generate_state(n, dtype=np.uint32)


def jax_key(master: int, stream: str, *index: int):
    """A ``jax.random`` key for one stream and task index."""
    import jax

    return jax.random.wrap_key_data(seed_words(master, stream, *index, n=2), impl="threefry2x32")
