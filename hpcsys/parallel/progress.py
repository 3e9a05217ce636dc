"""Rank-0 progress: a live line with ETA on a terminal, periodic log lines otherwise.

Under ``mpiexec``/``srun`` stdout is never a terminal, so batch logs get one
plain line every ``interval`` seconds (and at the end) instead of carriage
returns. Thread-safe: the dynamic queue's server thread may report too.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``12s``."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Progress of ``total`` tasks on rank 0.

    Parameters
    ----------
    total : int
        Tasks to run in this job (after ``--resume`` skips).
    enabled : bool
        False on ranks other than 0 (all calls become no-ops).
    interval : float
        Seconds between log lines when ``stream`` is not a terminal.
    stream : file, optional
        Default ``sys.stdout``.
    approximate : bool
        Counts are extrapolated (static schedule): shown with ``~``.
    """

    def __init__(self, total: int, *, enabled: bool = True, interval: float = 30.0,
                 stream: TextIO | None = None, approximate: bool = False,
                 label: str = "hpcsys") -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.interval = interval
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.approximate = approximate
        self.label = label
        self.done = 0
        self._t0 = time.monotonic()
        self._first: tuple[float, int] | None = None  # (time, count) of the first report
        self._last = -float("inf")
        self._lock = threading.Lock()

    def update(self, done: int) -> None:
        """Record that ``done`` tasks are finished; print if due."""
        if not self.enabled:
            return
        with self._lock:
            self.done = max(self.done, min(done, self.total))
            now = time.monotonic()
            if self._first is None:
                self._first = (now, self.done)
            final = self.done >= self.total
            if self.tty or final or now - self._last >= self.interval:
                self._last = now
                self._emit(now, final)

    def line(self, now: float | None = None) -> str:
        """The current progress text."""
        now = time.monotonic() if now is None else now
        elapsed = now - self._t0
        frac = self.done / self.total if self.total else 1.0
        left = self.total - self.done
        if self._first is not None and self.done > self._first[1] and now > self._first[0]:
            # rate after the first task: start-up and JIT compilation do not inflate the ETA
            rate = (self.done - self._first[1]) / (now - self._first[0])
            eta = left / rate
        else:  # one report so far: it includes start-up and compilation, no rate yet
            eta = 0.0 if left == 0 else float("nan")
        tilde = "~" if self.approximate and self.done < self.total else ""
        return (f"[{self.label}] {tilde}{self.done}/{self.total} tasks ({100 * frac:.0f}%), "
                f"elapsed {format_duration(elapsed)}, ETA {format_duration(eta)}")

    def _emit(self, now: float, final: bool) -> None:
        text = self.line(now)
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
