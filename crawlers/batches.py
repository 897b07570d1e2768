"""One background thread that handles what the crawl's reactor thread hands over, a batch at a time.

The WARC writer (:mod:`crawlers.warc`) and the candidate writer (:mod:`crawlers.pipelines`)
both take work off the reactor thread this way. The hand-over is cheap on purpose: the reactor
appends to a list under a lock and wakes the thread only once ``batch`` values wait (when fewer
come, the thread takes what is there ``max_delay`` seconds after it last looked). Each wake-up
and each hand-off of the GIL is a chance for the reactor to wait, so there are few of both.

Back-pressure: :meth:`BatchThread.put` blocks while ``queue_size`` values, or values of more
than ``max_weight`` (bytes, say) in all, wait for the thread. The crawl then waits for its
writer instead of filling the memory.

Nothing handed over is dropped: :meth:`BatchThread.close` handles everything still queued
before the thread ends; ``handle`` is expected to deal with its own errors (an exception it
lets out is logged and counted in :attr:`BatchThread.errors`, and the thread goes on).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchThread(Generic[T]):
    """Calls ``handle`` with the values :meth:`put` gathers, at most ``batch`` at a time, in
    the order they were put, in one daemon thread named ``name``."""

    def __init__(
        self,
        handle: Callable[[list[T]], None],
        *,
        name: str,
        queue_size: int = 512,
        batch: int = 32,
        max_delay: float = 0.1,
        max_weight: int | None = None,
    ) -> None:
        if queue_size < 1 or batch < 1:
            raise ValueError("queue_size and batch must be at least 1")
        self._handle = handle
        self._queue_size = queue_size
        self._batch = batch
        self._max_delay = max_delay
        self._max_weight = max_weight
        self._pending: list[tuple[T, int]] = []
        self._weight = 0  # of the values waiting
        self._added = 0  # values put
        self._handled = 0  # values handled (or failed)
        self._closing = False
        self._flush_to = 0  # flush() waits until this many values are handled
        self.errors = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, value: T, *, weight: int = 0) -> None:
        """Queue ``value`` (of ``weight``, counted against ``max_weight``); blocks while the
        queue is full. Raises :class:`RuntimeError` once the thread is closed."""
        with self._cond:
            while self._full(weight) and not self._closing:
                self._cond.wait()
            if self._closing:
                raise RuntimeError("the batch thread is closed")
            self._pending.append((value, weight))
            self._weight += weight
            self._added += 1
            if len(self._pending) == self._batch:
                self._cond.notify_all()

    def _full(self, weight: int) -> bool:
        if len(self._pending) >= self._queue_size:
            return True
        # One value heavier than the limit still goes through once the queue is empty.
        limit = self._max_weight
        return limit is not None and bool(self._pending) and self._weight + weight > limit

    @property
    def waiting(self) -> int:
        """Values put and not handled yet."""
        with self._cond:
            return self._added - self._handled

    def _run(self) -> None:
        while True:
            with self._cond:
                # A batch gathers for up to max_delay: taking whatever waits as soon as the last
                # batch is done would make batches of a few values (and a commit, a message, a
                # hand-off of the GIL for each few). Closing and flushing do not wait.
                if len(self._pending) < self._batch and not self._closing and self._flush_to <= self._handled:
                    self._cond.wait(self._max_delay)
                if not self._pending and self._closing:
                    return
                taken, self._pending = self._pending[: self._batch], self._pending[self._batch :]
                self._weight -= sum(weight for _, weight in taken)
                self._cond.notify_all()  # room again for a reactor waiting on a full queue
            if taken:
                try:
                    self._handle([value for value, _ in taken])
                except Exception:
                    self.errors += 1
                    log.exception("%s: a batch of %d could not be handled", self._thread.name, len(taken))
                with self._cond:
                    self._handled += len(taken)
                    self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every value put so far has been handled."""
        with self._cond:
            target = self._flush_to = self._added
            self._cond.notify_all()
            while self._handled < target and self._thread.is_alive():
                self._cond.wait(self._max_delay)

    def close(self) -> None:
        """Handle everything still queued, then end the thread (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
