"""Communicators: MPI when available and launched, a serial stand-in otherwise.

This is the only module of hpcsys that imports :mod:`mpi4py`. Functions that
need a communicator take a ``comm=`` argument (``None`` means
:func:`world`): an ``mpi4py.MPI.Comm`` or a :class:`SerialComm`, which
implements the subset of the mpi4py API that hpcsys uses for one process, so
the same code path runs serially without mpi4py installed.

Waiting ranks use :func:`polite_barrier` (non-blocking barrier plus sleep)
rather than a blocking barrier: MPICH's blocking calls spin and would steal a
core from ranks that are still computing.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NodeLayout",
    "SerialComm",
    "any_source",
    "launched_under_mpi",
    "mpi_available",
    "node_layout",
    "polite_barrier",
    "polite_recv",
    "world",
]

_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALRANKID",
                  "HYDRA_CONTROL_FD")


class MPIUnavailableError(RuntimeError):
    """Several ranks were launched but mpi4py cannot be imported (each would run everything)."""


class SerialComm:
    """A one-process communicator with the mpi4py methods hpcsys uses.

    Collective operations return what a one-rank MPI job would; ``Abort``
    exits the process with the given code.
    """

    rank = 0
    size = 1

    def Get_rank(self) -> int:
        """Rank of this process (0)."""
        return 0

    def Get_size(self) -> int:
        """Number of processes (1)."""
        return 1

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Broadcast: returns ``obj``."""
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        """Gather: a one-element list."""
        return [obj]

    def allgather(self, obj: Any) -> list[Any]:
        """All-gather: a one-element list."""
        return [obj]

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        """All-reduce over one rank: ``obj``."""
        return obj

    def Barrier(self) -> None:
        """No-op."""

    def Abort(self, errorcode: int = 1) -> None:
        """Exit the process immediately."""
        os._exit(errorcode)

    def Split_type(self, *args: Any, **kwargs: Any) -> SerialComm:
        """Node communicator: itself."""
        return self

    def Free(self) -> None:
        """No-op."""


@dataclass(frozen=True)
class NodeLayout:
    """Where a rank sits: global and node-local rank and size, host name.

    Attributes
    ----------
    rank, size : int
        In the world communicator.
    local_rank, local_size : int
        Among the ranks on the same node (shared-memory communicator).
    host : str
    node_comm : object
        The node-local communicator (for node-local all-gathers).
    """

    rank: int
    size: int
    local_rank: int
    local_size: int
    host: str
    node_comm: Any


def mpi_available() -> bool:
    """True if :mod:`mpi4py` can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def launched_under_mpi() -> bool:
    """True if a launcher (mpiexec, srun with PMI) started this process."""
    if any(v in os.environ for v in _LAUNCHER_VARS):
        return True
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_ID" in os.environ


def world(comm: Any = None) -> Any:
    """The communicator to use.

    Parameters
    ----------
    comm : mpi4py communicator, SerialComm or None
        Returned as is when given. ``None``: ``MPI.COMM_WORLD`` when mpi4py is
        installed and the process was started by an MPI launcher, else a
        :class:`SerialComm` (MPI is then never initialised).
    """
    if comm is not None:
        return comm
    if launched_under_mpi():
        if mpi_available():
            from mpi4py import MPI

            return MPI.COMM_WORLD
        n = _launcher_size()
        if n > 1:
            raise MPIUnavailableError(
                f"started by an MPI launcher with {n} ranks but mpi4py is not installed: "
                f"pip install mpi4py (or the 'mpi'/'mpich' extra), or run without mpiexec")
    return SerialComm()


def _launcher_size() -> int:
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"):
        try:
            return int(os.environ[var])
        except (KeyError, ValueError):
            continue
    return 1


def node_layout(comm: Any) -> NodeLayout:
    """Global and node-local rank/size of this process (a collective call)."""
    host = socket.gethostname()
    if isinstance(comm, SerialComm) or comm.Get_size() == 1:
        return NodeLayout(comm.Get_rank(), comm.Get_size(), 0, 1, host, comm)
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    return NodeLayout(comm.Get_rank(), comm.Get_size(), node.Get_rank(), node.Get_size(), host,
                      node)


def polite_barrier(comm: Any, poll_s: float = 0.02) -> None:
    """A barrier that sleeps between polls instead of spinning a core."""
    if isinstance(comm, SerialComm) or comm.Get_size() == 1:
        return
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(poll_s)


def any_source() -> int:
    """``MPI.ANY_SOURCE``."""
    from mpi4py import MPI

    return MPI.ANY_SOURCE


def polite_recv(comm: Any, source: int, tag: int, poll_s: float = 0.002) -> Any:
    """Receive a pickled object, sleeping between polls instead of spinning."""
    req = comm.irecv(source=source, tag=tag)
    while True:
        done, msg = req.test()
        if done:
            return msg
        time.sleep(poll_s)
