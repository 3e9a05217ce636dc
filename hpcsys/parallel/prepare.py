"""The run context, built once per run: TreeCorr work spread over ranks, broadcast, cached.

:func:`prepare_context` is what every rank of ``hpcsys run`` calls before the
task phase (instead of each rank calling :func:`hpcsys.pipeline.prepare_run`
on its own, which made every rank pay for the whole template ``xi_ij``, about
10 CPU minutes at paper size):

1. **cache**: rank 0 looks for ``RUN_DIR/context.h5`` (:data:`CACHE_FILE`).
   It holds the fixed templates, their PCA rotation ``V`` and ``xi_ij(theta)``
   (original and fitting basis), tagged with :func:`context_key`, a hash of
   the configuration sections the context depends on (``run.master_seed``,
   ``sky``, ``templates``, ``contamination``, ``twopoint``, ``methods.pca``)
   and of the cache format. A file with another key (a changed science
   configuration), or one that cannot be read, is a miss and is rewritten. So
   ``--resume``, the elements of a SLURM job array (``jobs/array.sbatch``) and
   a re-run with more realisations or other methods reuse it;
2. **miss**: every rank calls :func:`~hpcsys.pipeline.prepare_run` with a
   collective ``mapper`` (:func:`comm_mapper`): the ~K^2/4 independent
   TreeCorr runs of :meth:`~hpcsys.measure.twopoint.PixelCorrelator.xi_matrix`
   are dealt round-robin over the ranks (run ``i`` on rank ``i mod size``) and
   all-gathered in order, so each rank does ``1/size`` of them. The cheap
   deterministic parts (footprint, spectra, template draw, PCA; seconds) are
   built by every rank alongside. Rank 0 writes the cache atomically;
3. **broadcast**: rank 0's context is broadcast, so every rank runs its tasks
   with the very same arrays. A TreeCorr run does not depend on the rank that
   does it (one thread: ``twopoint.n_threads = 1``), so the context and all
   results are bit-identical for any number of ranks, and to a cache hit.

Rank 0 prints progress lines (``[hpcsys prepare] ...``) to ``stream``.

Only :mod:`hpcsys.parallel` talks MPI: everything goes through the ``comm=``
object (mpi4py or :class:`~hpcsys.parallel.comm.SerialComm`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import h5py
import numpy as np
import yaml

from hpcsys.config import Config
from hpcsys.io.atomic import atomic_h5
from hpcsys.parallel.comm import world
from hpcsys.parallel.progress import format_duration

__all__ = ["CACHE_FILE", "PrepareInfo", "comm_mapper", "context_key", "load_context_cache",
           "prepare_context", "write_context_cache"]

#: File of the cached run context inside the run directory.
CACHE_FILE = "context.h5"
#: Bumped whenever the cache layout or the meaning of its arrays changes.
_CACHE_FORMAT = 1
_ARRAYS = ("templates", "V", "xi", "xi_fit")


@dataclass(frozen=True)
class PrepareInfo:
    """How the run context was obtained (rank-independent except ``seconds``).

    Attributes
    ----------
    key : str
        :func:`context_key` of the configuration.
    cache_path : Path or None
        The cache file (None when caching was not asked for).
    cache_hit : bool
        The fixed templates and ``xi_ij`` came from the cache.
    n_treecorr_runs : int
        TreeCorr runs of ``xi_ij`` done in this call, over all ranks (0 on a hit).
    n_treecorr_runs_here : int
        Of those, the runs done on this rank.
    seconds : float
        Wall time of :func:`prepare_context` on this rank.
    """

    key: str
    cache_path: Path | None
    cache_hit: bool
    n_treecorr_runs: int
    n_treecorr_runs_here: int
    seconds: float


def context_key(config: Config) -> str:
    """Hash of everything the run context depends on (SHA-256 hex).

    ``run.master_seed``, the ``sky``, ``templates``, ``contamination`` and
    ``twopoint`` sections, ``methods.pca`` and the cache format: not the
    number of realisations, the scenarios, the methods' other settings, the
    output directory or the ``parallel`` section, which leave the context as is.
    """
    d = config.to_dict()
    sel = {name: d[name] for name in ("sky", "templates", "contamination", "twopoint")}
    sel["run.master_seed"] = d["run"]["master_seed"]
    sel["methods.pca"] = d["methods"]["pca"]
    sel["cache_format"] = _CACHE_FORMAT
    return hashlib.sha256(yaml.safe_dump(sel, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- collective map


class _CollectiveMap:
    """``map`` over all ranks of ``comm``: item ``i`` on rank ``i mod size``, results in order.

    A collective call: every rank must call it with the same function and an
    iterable of the same length (items not assigned to this rank are drawn
    from the iterable but not evaluated). Counts the evaluations.
    """

    def __init__(self, comm: Any, stream: TextIO | None, interval: float, label: str) -> None:
        self.comm = comm
        self.stream = stream
        self.interval = interval
        self.label = label
        self.n_total = 0
        self.n_here = 0

    def __call__(self, fn: Callable, items: Iterable) -> list:
        rank, size = self.comm.Get_rank(), self.comm.Get_size()
        items = list(items)
        n = len(items)
        mine = range(rank, n, size)
        t0 = time.monotonic()
        last = t0
        out_here = []
        for j, i in enumerate(mine):
            out_here.append(fn(items[i]))
            items[i] = None  # free the job's maps as soon as it is done
            now = time.monotonic()
            if self.stream is not None and (now - last >= self.interval or j + 1 == len(mine)):
                last = now
                done = min(n, (j + 1) * size)
                eta = (len(mine) - j - 1) * (now - t0) / (j + 1)
                self.stream.write(f"[hpcsys prepare] {self.label}: {'~' if size > 1 else ''}"
                                  f"{done}/{n} TreeCorr runs on {size} rank(s), elapsed "
                                  f"{format_duration(now - t0)}, ETA {format_duration(eta)}\n")
                self.stream.flush()
        shares = self.comm.allgather(out_here)
        self.n_total += n
        self.n_here += len(out_here)
        result: list = [None] * n
        for r, share in enumerate(shares):
            result[r::size] = share
        return result


def comm_mapper(comm: Any = None, *, stream: TextIO | None = None, interval: float = 30.0,
                label: str = "template xi_ij") -> _CollectiveMap:
    """A collective ``mapper`` for :func:`hpcsys.pipeline.prepare_run` over ``comm``.

    Parameters
    ----------
    comm : communicator, optional
        Default :func:`~hpcsys.parallel.comm.world`.
    stream : file, optional
        Where progress lines go (pass it on rank 0 only; None prints nothing).
    interval : float
        Seconds between progress lines.
    label : str
        What the lines call the work.

    Returns
    -------
    callable
        ``mapper(fn, items) -> list``; its ``n_total``/``n_here`` attributes
        count the evaluations over all ranks / on this rank.
    """
    return _CollectiveMap(world(comm), stream, interval, label)


# --------------------------------------------------------------------------- cache file


def write_context_cache(path: str | Path, key: str, tset: Any) -> Path:
    """Write the fixed :class:`~hpcsys.pipeline.TemplateSet` of a run to ``path`` (atomically).

    Parameters
    ----------
    path : str or Path
    key : str
        :func:`context_key` of the configuration.
    tset : TemplateSet
    """
    path = Path(path)

    def fill(f: h5py.File) -> None:
        f.attrs["context_key"] = key
        f.attrs["cache_format"] = _CACHE_FORMAT
        for name in _ARRAYS:
            f.create_dataset(name, data=np.asarray(getattr(tset, name), dtype=float))

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as f:  # in memory, then temp + fsync + rename
        fill(f)
    return path


def load_context_cache(path: str | Path, key: str) -> Any:
    """The cached :class:`~hpcsys.pipeline.TemplateSet`, or None on a miss.

    A miss: no file, an unreadable or torn file, or another key.
    """
    from hpcsys.pipeline import TemplateSet

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if str(f.attrs.get("context_key", "")) != key:
                return None
            arrays = {name: np.asarray(f[name][()], dtype=float) for name in _ARRAYS}
    except (OSError, KeyError, ValueError):
        return None
    return TemplateSet(**arrays)


# --------------------------------------------------------------------------- the context


def _context_from_cache(config: Config, tset: Any) -> Any:
    """The run context with cached fixed templates: everything else is cheap to rebuild."""
    from hpcsys.config import parse_config
    from hpcsys.pipeline import attach_fixed_templates, prepare_run

    t0 = time.perf_counter()
    d = config.to_dict()
    d["templates"]["redraw"] = True  # build everything but the fixed templates and xi_ij
    ctx = dataclasses.replace(prepare_run(parse_config(d)), config=config)
    ctx = attach_fixed_templates(ctx, tset)  # and their sandwich transform
    return dataclasses.replace(ctx, prepare_seconds=time.perf_counter() - t0)


def prepare_context(config: Config, *, comm: Any = None, cache_dir: str | Path | None = None,
                    stream: TextIO | None = None, interval: float | None = None
                    ) -> tuple[Any, PrepareInfo]:
    """Build (or load) the run context once for all ranks of ``comm``; a collective call.

    Parameters
    ----------
    config : Config
    comm : communicator, optional
        Default :func:`~hpcsys.parallel.comm.world`.
    cache_dir : str or Path, optional
        Directory of the cache file :data:`CACHE_FILE` (the run directory);
        None: no cache.
    stream : file, optional
        Rank 0's progress stream (default stdout); other ranks print nothing.
    interval : float, optional
        Seconds between progress lines (default ``parallel.progress_interval_s``).

    Returns
    -------
    ctx : RunContext
        Rank 0's context, identical on every rank.
    info : PrepareInfo

    Raises
    ------
    ConfigError
        As :func:`~hpcsys.pipeline.prepare_run` (on every rank alike).
    """
    from hpcsys.pipeline import prepare_run

    t0 = time.monotonic()
    comm = world(comm)
    rank, size = comm.Get_rank(), comm.Get_size()
    out = (stream or sys.stdout) if rank == 0 else None
    interval = config.parallel.progress_interval_s if interval is None else interval
    key = context_key(config)
    path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    fixed_needed = not config.templates.redraw

    ctx = None
    if rank == 0 and path is not None and fixed_needed:
        tset = load_context_cache(path, key)
        if tset is not None:
            try:
                ctx = _context_from_cache(config, tset)
            except Exception:  # rebuilt below, where the error is reported
                ctx = None
        if ctx is not None:
            out.write(f"[hpcsys prepare] run context from the cache {path}\n")
            out.flush()
    hit = bool(comm.bcast(ctx is not None, root=0))
    mapper = comm_mapper(comm, stream=out, interval=interval)
    if not hit:
        if out is not None:
            K = config.templates.n_templates
            what = (f"{K} templates and their xi_ij ({_n_runs(K)} TreeCorr runs over {size} "
                    f"rank(s))" if fixed_needed else "footprint and spectra (templates redrawn "
                    "per realisation)")
            out.write(f"[hpcsys prepare] building the run context: {what}\n")
            out.flush()
        ctx = prepare_run(config, mapper=mapper)
        if rank == 0 and path is not None and fixed_needed:
            write_context_cache(path, key, ctx.fixed)
    ctx = comm.bcast(ctx if rank == 0 else None, root=0)
    seconds = time.monotonic() - t0
    if out is not None:
        out.write(f"[hpcsys prepare] run context ready in {format_duration(seconds)}\n")
        out.flush()
    return ctx, PrepareInfo(key, path, hit, mapper.n_total, mapper.n_here, seconds)


def _n_runs(K: int) -> int:
    """TreeCorr runs of :meth:`~hpcsys.measure.twopoint.PixelCorrelator.xi_matrix` for K maps."""
    p, single = K // 2, K % 2
    return p + single + 2 * p * (p - 1) // 2 + p * single
