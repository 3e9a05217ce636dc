"""Per-rank CPU threads, core binding, GPU assignment and JAX precision.

Threads must be fixed *before* JAX (XLA) and TreeCorr start their thread
pools, so :func:`configure_rank` sets the environment first and
:func:`enable_precision` imports JAX afterwards. The rules:

* threads per rank = ``parallel.threads_per_rank`` or the rank's share of the
  node's cores (cores the process may use // ranks on the node), at least 1;
  exported as ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS``, TreeCorr's OpenMP threads and, for one thread,
  ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``
  (with more, XLA sizes its pool from the CPUs the process is bound to);
* binding: when ``parallel.bind_cores`` and the launcher left the process free
  to run on every core, rank ``r`` on a node is pinned to cores
  ``[r t, (r + 1) t)`` (``os.sched_setaffinity``); a binding made by the
  launcher (``srun --cpu-bind``, ``mpiexec -bind-to``) is kept;
* GPUs (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``): node-local rank ``r``
  uses GPU ``r mod n_gpus`` (one rank per GPU is the intended layout); when
  several ranks share a GPU each gets ``XLA_PYTHON_CLIENT_MEM_FRACTION`` =
  ``parallel.gpu_memory_fraction`` or ``0.9 / ranks on that GPU`` and
  pre-allocation is switched off;
* JAX: precision per ``run.precision`` and, when
  ``parallel.compilation_cache_dir`` is set, a persistent compilation cache
  shared by the ranks (compiling the Newton and sampler kernels dominates
  start-up: measured 93 s cold vs 15 s warm for the first task at NSIDE 16).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from hpcsys.config import ParallelSection
from hpcsys.parallel.comm import NodeLayout

__all__ = ["RankResources", "configure_rank", "enable_precision", "visible_gpus"]


@dataclass(frozen=True)
class RankResources:
    """What one rank was given.

    Attributes
    ----------
    threads : int
        CPU threads for XLA / OpenMP / TreeCorr.
    cores : tuple of int
        CPUs the process may run on after binding.
    bound : bool
        Whether this call pinned the process (False if the launcher had).
    gpu : str
        The GPU id used (as in ``CUDA_VISIBLE_DEVICES``), '' for CPU runs.
    ranks_on_gpu : int
        Ranks of this node sharing that GPU (0 for CPU runs).
    gpu_memory_fraction : float or None
    applied_before_jax : bool
        False if JAX was already imported (thread settings then may not apply).
    """

    threads: int
    cores: tuple[int, ...]
    bound: bool
    gpu: str
    ranks_on_gpu: int
    gpu_memory_fraction: float | None
    applied_before_jax: bool

    def describe(self, host: str) -> str:
        """One-line description, e.g. ``node1: cpu 1 thread on cores [0]``."""
        if self.gpu:
            return (f"{host}: gpu {self.gpu} (shared by {self.ranks_on_gpu} ranks, "
                    f"memory fraction {self.gpu_memory_fraction})")
        return f"{host}: cpu {self.threads} thread(s) on cores {list(self.cores)}"


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    env = os.environ if env is None else env
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [g.strip() for g in cvd.split(",") if g.strip() and g.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def _gpu_uuids() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=uuid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [u.strip() for u in out.stdout.splitlines() if u.strip()]


def configure_rank(parallel: ParallelSection, layout: NodeLayout) -> RankResources:
    """Set threads, binding and GPU environment of this rank (call before importing JAX).

    A collective over the node communicator (GPU sharing is counted there).

    Parameters
    ----------
    parallel : ParallelSection
        ``config.parallel``.
    layout : NodeLayout
        From :func:`hpcsys.parallel.comm.node_layout`.
    """
    jax_loaded = "jax" in sys.modules
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(
        range(os.cpu_count() or 1))
    all_cpus = os.cpu_count() or len(allowed)
    launcher_bound = len(allowed) < all_cpus
    share = len(allowed) if launcher_bound else max(1, len(allowed) // layout.local_size)
    threads = parallel.threads_per_rank or share
    cores = tuple(allowed)
    bound = False
    if (parallel.bind_cores and not launcher_bound and layout.local_size > 1
            and layout.local_size * threads <= len(allowed) and hasattr(os, "sched_setaffinity")):
        cores = tuple(allowed[layout.local_rank * threads:(layout.local_rank + 1) * threads])
        os.sched_setaffinity(0, cores)
        bound = True
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))]
    if threads == 1:
        flags = ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1", *flags]
    # with more threads XLA sizes its pool from the CPUs the process may use (the binding)
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)
    else:
        os.environ.pop("XLA_FLAGS", None)
    try:
        import treecorr

        treecorr.set_omp_threads(threads)
    except ImportError:  # pragma: no cover - treecorr is a hard dependency
        pass

    gpus = visible_gpus()
    gpu, ranks_on_gpu, fraction = "", 0, None
    if gpus:
        slot = layout.local_rank % len(gpus)
        gpu = gpus[slot]
        # identify the physical GPU: with SLURM's device cgroups every rank may call its
        # own, different GPU "0"; nvidia-smi then lists only that rank's GPU
        uuids = _gpu_uuids()
        host_gpu = uuids[slot] if len(uuids) == len(gpus) else f"{layout.host}:{gpu}"
        peers = layout.node_comm.allgather(host_gpu)
        ranks_on_gpu = sum(p == host_gpu for p in peers)
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        if ranks_on_gpu > 1:
            fraction = parallel.gpu_memory_fraction or math.floor(90 / ranks_on_gpu) / 100
            os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.3f}"
            os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    else:
        layout.node_comm.allgather("")  # every rank joins the collective
    return RankResources(threads, cores, bound, gpu, ranks_on_gpu, fraction, not jax_loaded)


def enable_precision(precision: str, compilation_cache_dir: str | None = None) -> Any:
    """Import JAX, switch it to ``float64`` or ``float32``; return the device list.

    Parameters
    ----------
    precision : str
        ``run.precision``.
    compilation_cache_dir : str, optional
        ``parallel.compilation_cache_dir``: JAX persistent compilation cache
        (created if needed), so ranks and later runs load compiled kernels.
    """
    import jax

    jax.config.update("jax_enable_x64", precision == "float64")
    if compilation_cache_dir:
        os.makedirs(compilation_cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(compilation_cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return jax.devices()
