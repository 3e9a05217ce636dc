"""An in-process communicator: one real thread per fake rank.

:class:`ThreadComm` implements the subset of the :class:`mpi4py.MPI.Comm`
API that :mod:`hpcsys.parallel` uses (``Get_rank``, ``Get_size``, ``send``,
``recv``, ``irecv`` with ``test``, ``bcast``, ``gather``, ``allgather``,
``Barrier``, ``Ibarrier`` with ``Test``), with the MPI semantics that matter
to it: point-to-point messages are matched by source and tag (negative values
are ``ANY_SOURCE`` / ``ANY_TAG``, as in MPICH and Open MPI), messages between
one pair of ranks with one tag are not overtaken, payloads are pickled so
ranks never share objects, and collectives block until every rank joins.
:func:`run_ranks` runs a function on ``size`` threads, one communicator each,
so the rank-0-served task queue of :mod:`hpcsys.parallel.distribute` runs for
real (its server thread included) in the serial test run, for any size.

Every blocking call has a timeout, so a protocol error fails the test instead
of hanging it.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ThreadComm", "run_ranks"]

#: Seconds any blocking call waits before failing the test.
TIMEOUT_S = 60.0


class _World:
    """State shared by the ranks of one fake job."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cond = threading.Condition()
        self.inbox: list[list[tuple[int, int, bytes]]] = [[] for _ in range(size)]
        self.barrier = threading.Barrier(size, timeout=TIMEOUT_S)
        self.slots: list[Any] = [None] * size
        self.ibarrier_arrivals: dict[int, int] = {}


class _Request:
    """``irecv`` request: ``test()`` returns ``(done, message)`` without blocking."""

    def __init__(self, comm: ThreadComm, source: int, tag: int) -> None:
        self._comm, self._source, self._tag = comm, source, tag
        self._done, self._msg = False, None

    def test(self) -> tuple[bool, Any]:
        if not self._done:
            hit = self._comm._match(self._source, self._tag, block=False)
            if hit is not None:
                self._done, self._msg = True, hit
        return self._done, self._msg

    def wait(self) -> Any:
        if not self._done:
            self._done, self._msg = True, self._comm._match(self._source, self._tag, block=True)
        return self._msg


class _BarrierRequest:
    """``Ibarrier`` request: ``Test()`` is true once every rank has entered."""

    def __init__(self, world: _World, generation: int) -> None:
        self._world, self._generation = world, generation

    def Test(self) -> bool:
        with self._world.cond:
            return self._world.ibarrier_arrivals.get(self._generation, 0) >= self._world.size


class ThreadComm:
    """Rank ``rank`` of a fake job of ``world.size`` threads (see the module docstring)."""

    def __init__(self, world: _World, rank: int) -> None:
        self._world = world
        self.rank = rank
        self.size = world.size
        self._ibarriers = 0

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    # ------------------------------------------------------------------ point to point

    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        if not 0 <= dest < self.size:
            raise ValueError(f"rank {self.rank}: send to invalid rank {dest}")
        payload = pickle.dumps(obj)
        with self._world.cond:
            self._world.inbox[dest].append((self.rank, tag, payload))
            self._world.cond.notify_all()

    def _match(self, source: int, tag: int, *, block: bool) -> Any:
        box = self._world.inbox[self.rank]
        with self._world.cond:
            while True:
                for i, (src, tg, payload) in enumerate(box):
                    if (source < 0 or src == source) and (tag < 0 or tg == tag):
                        del box[i]
                        return pickle.loads(payload)
                if not block:
                    return None
                if not self._world.cond.wait(timeout=TIMEOUT_S):
                    raise TimeoutError(f"rank {self.rank}: recv(source={source}, tag={tag}) "
                                       f"timed out")

    def recv(self, source: int = -1, tag: int = -1) -> Any:
        return self._match(source, tag, block=True)

    def irecv(self, source: int = -1, tag: int = -1) -> _Request:
        return _Request(self, source, tag)

    # ------------------------------------------------------------------ collectives

    def Barrier(self) -> None:
        self._world.barrier.wait()

    def Ibarrier(self) -> _BarrierRequest:
        generation = self._ibarriers
        self._ibarriers += 1
        with self._world.cond:
            arrivals = self._world.ibarrier_arrivals
            arrivals[generation] = arrivals.get(generation, 0) + 1
        return _BarrierRequest(self._world, generation)

    def allgather(self, obj: Any) -> list[Any]:
        self._world.barrier.wait()  # the slots of the previous collective are read
        self._world.slots[self.rank] = pickle.dumps(obj)
        self._world.barrier.wait()
        return [pickle.loads(p) for p in self._world.slots]

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        everyone = self.allgather(obj)
        return everyone if self.rank == root else None

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.allgather(obj if self.rank == root else None)[root]


def run_ranks(size: int, fn: Callable[[ThreadComm], Any]) -> list[Any]:
    """Run ``fn(comm)`` on ``size`` threads, one fake rank each; return the results by rank.

    An exception on any rank is re-raised (the first by rank) after all threads
    have stopped or timed out.
    """
    world = _World(size)
    results: list[Any] = [None] * size
    errors: list[BaseException | None] = [None] * size

    def target(rank: int) -> None:
        try:
            results[rank] = fn(ThreadComm(world, rank))
        except BaseException as exc:
            errors[rank] = exc
            world.barrier.abort()  # release ranks waiting in a collective

    threads = [threading.Thread(target=target, args=(r,), name=f"fake-rank-{r}", daemon=True)
               for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=4 * TIMEOUT_S)
    hung = [t.name for t in threads if t.is_alive()]
    for exc in errors:
        if exc is not None:
            raise exc
    if hung:
        raise TimeoutError(f"fake ranks did not finish: {', '.join(hung)}")
    return results
