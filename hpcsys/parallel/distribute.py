"""The task list and its distribution over ranks.

A task is one ``(scenario, index)`` realisation; the list is every scenario
times every realisation, in config order. Results never depend on which rank
runs a task (all seeds are keyed by the task), only the speed does. Two
schedules (``parallel.distribution``):

``cyclic``
    Static: rank ``r`` runs pending tasks ``r, r + size, ...``. No messages,
    but a slow task delays its rank's whole share.
``dynamic``
    A work queue served by a thread on rank 0 while rank 0 also computes:
    each rank asks for the next task when it finishes one, so uneven task
    costs (scenarios differ in cost, MCMC chains vary) balance out. The
    server thread sleeps between polls so it costs rank 0 almost nothing.

Both are iterators over the tasks this rank should run; every rank must
exhaust its iterator (the dynamic one sends its last "stop" then).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hpcsys.parallel.comm import SerialComm, any_source, polite_recv

__all__ = ["DynamicQueue", "Task", "cyclic_tasks", "iterate_tasks", "task_list"]

_TAG_REQUEST = 17
_TAG_REPLY = 18
_STOP = -1


@dataclass(frozen=True, order=True)
class Task:
    """One unit of work: realisation ``index`` of ``scenario`` (``tid``: position in the list)."""

    tid: int
    scenario: str
    index: int

    @property
    def label(self) -> str:
        """``scenario[index]``."""
        return f"{self.scenario}[{self.index}]"


def task_list(scenarios: Sequence[str], n_realisations: int) -> list[Task]:
    """All tasks, scenario-major, in a fixed order."""
    out = []
    for s in scenarios:
        for i in range(n_realisations):
            out.append(Task(len(out), s, i))
    return out


def cyclic_tasks(tasks: Sequence[Task], rank: int, size: int) -> Iterator[Task]:
    """Static round-robin share of ``tasks`` for ``rank``."""
    yield from tasks[rank::size]


class DynamicQueue:
    """Rank-0-served work queue (see the module docstring).

    Parameters
    ----------
    comm : communicator
    tasks : sequence of Task
        Identical on every rank.
    on_progress : callable, optional
        Called on rank 0 with ``(n_finished_total,)`` whenever a rank reports a
        finished task (from the server thread or rank 0's own loop).
    poll_s : float
        Sleep between polls of the server thread.
    """

    def __init__(self, comm: Any, tasks: Sequence[Task],
                 on_progress: Callable[[int], None] | None = None, poll_s: float = 0.005) -> None:
        self.comm = comm
        self.tasks = list(tasks)
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._next = 0
        self._finished = 0
        self._lock = threading.Lock()
        self._on_progress = on_progress
        self._poll_s = poll_s
        self._server: threading.Thread | None = None
        self.error: BaseException | None = None

    def _take(self) -> int:
        with self._lock:
            if self._next < len(self.tasks):
                self._next += 1
                return self._next - 1
            return _STOP

    def _report(self, n: int) -> None:
        with self._lock:
            self._finished += n
            total = self._finished
        if self._on_progress is not None and n:
            self._on_progress(total)

    def _serve(self) -> None:
        try:
            stopped = 0
            while stopped < self.size - 1:
                src, finished = polite_recv(self.comm, any_source(), _TAG_REQUEST, self._poll_s)
                self._report(finished)
                tid = self._take()
                self.comm.send(tid, dest=src, tag=_TAG_REPLY)
                if tid == _STOP:
                    stopped += 1
        except BaseException as exc:  # pragma: no cover - surfaced by the main thread
            self.error = exc

    def __iter__(self) -> Iterator[Task]:
        if self.size == 1 or isinstance(self.comm, SerialComm):
            while (tid := self._take()) != _STOP:
                yield self.tasks[tid]
                self._report(1)
            return
        if self.rank == 0:
            self._server = threading.Thread(target=self._serve, name="hpcsys-queue", daemon=True)
            self._server.start()
            while (tid := self._take()) != _STOP:
                yield self.tasks[tid]
                self._report(1)
            while self._server.is_alive():
                self._server.join(timeout=0.05)
            if self.error is not None:
                raise RuntimeError(f"task queue server failed: {self.error}") from self.error
            return
        finished = 0
        while True:
            self.comm.send((self.rank, finished), dest=0, tag=_TAG_REQUEST)
            tid = polite_recv(self.comm, 0, _TAG_REPLY)
            if tid == _STOP:
                return
            yield self.tasks[tid]
            finished = 1


def iterate_tasks(tasks: Sequence[Task], comm: Any, distribution: str,
                  on_progress: Callable[[int], None] | None = None) -> Iterator[Task]:
    """Tasks this rank runs under ``distribution`` (``dynamic`` or ``cyclic``).

    ``on_progress`` (rank 0) receives the number of tasks known finished: exact
    for ``dynamic``; for ``cyclic`` rank 0 only sees its own and extrapolates.
    """
    if distribution == "dynamic":
        return iter(DynamicQueue(comm, tasks, on_progress))
    if distribution == "cyclic":
        return _cyclic_with_progress(tasks, comm, on_progress)
    raise ValueError(f"parallel.distribution: must be dynamic or cyclic, got {distribution!r}")


def _cyclic_with_progress(tasks: Sequence[Task], comm: Any,
                          on_progress: Callable[[int], None] | None) -> Iterator[Task]:
    rank, size = comm.Get_rank(), comm.Get_size()
    done = 0
    for t in cyclic_tasks(tasks, rank, size):
        yield t
        done += 1
        if on_progress is not None:
            on_progress(min(len(tasks), done * size))
