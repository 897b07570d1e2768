"""The background batch thread (``crawlers/batches.py``) the WARC and candidate writers run on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from crawlers.batches import BatchThread


def _wait_until(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _gated() -> tuple[threading.Event, list[int], Callable[[list[int]], None]]:
    """A handler that waits until the gate opens, and the list of what it handled."""
    gate = threading.Event()
    handled: list[int] = []

    def slow(batch: list[int]) -> None:
        gate.wait()
        handled.extend(batch)

    return gate, handled, slow


def test_close_handles_everything_queued_in_order_in_batches() -> None:
    batches: list[list[int]] = []
    thread = BatchThread(batches.append, name="test", batch=8, max_delay=30)
    for n in range(50):
        thread.put(n)
    thread.close()  # does not wait out max_delay, and loses nothing
    thread.close()  # idempotent
    assert [n for batch in batches for n in batch] == list(range(50))
    assert max(len(batch) for batch in batches) <= 8
    with pytest.raises(RuntimeError):
        thread.put(50)


def test_values_gather_into_batches_instead_of_being_taken_one_by_one() -> None:
    batches: list[list[int]] = []
    thread = BatchThread(batches.append, name="test", batch=1000, max_delay=0.3)
    try:
        for n in range(20):
            thread.put(n)
            time.sleep(0.002)
        _wait_until(lambda: sum(map(len, batches)) == 20)
        assert len(batches) <= 2  # not one per value
    finally:
        thread.close()


def test_flush_waits_for_what_was_put_without_waiting_out_max_delay() -> None:
    handled: list[int] = []
    thread = BatchThread(handled.extend, name="test", batch=1000, max_delay=30)
    try:
        thread.put(1)
        thread.put(2)
        started = time.monotonic()
        thread.flush()
        assert handled == [1, 2] and thread.waiting == 0
        assert time.monotonic() - started < 10
    finally:
        thread.close()


def test_a_full_queue_blocks_the_caller_until_the_thread_catches_up() -> None:
    gate, handled, slow = _gated()
    thread = BatchThread(slow, name="test", queue_size=4, batch=2, max_delay=0.01)
    put: list[int] = []

    def producer() -> None:
        for n in range(30):
            thread.put(n)
            put.append(n)

    runner = threading.Thread(target=producer)
    runner.start()
    time.sleep(0.3)
    assert len(put) <= 4 + 2  # the queue, plus the batch the thread holds
    gate.set()
    runner.join(timeout=10)
    thread.close()
    assert put == list(range(30)) and handled == list(range(30))


def test_the_weight_limit_blocks_too_but_lets_one_heavy_value_through() -> None:
    gate, handled, slow = _gated()
    thread = BatchThread(slow, name="test", queue_size=100, batch=1, max_delay=0.01, max_weight=10)
    thread.put(0, weight=50)  # heavier than the limit, into an empty queue: accepted
    _wait_until(lambda: thread.waiting == 1 and not thread._pending)  # the thread holds it
    thread.put(1, weight=6)
    blocked = threading.Thread(target=thread.put, args=(2,), kwargs={"weight": 6})
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # 6 + 6 > 10: waits for room
    gate.set()
    blocked.join(timeout=10)
    thread.close()
    assert handled == [0, 1, 2]


def test_a_failing_batch_is_counted_and_the_thread_goes_on() -> None:
    handled: list[int] = []

    def handle(batch: list[int]) -> None:
        if 3 in batch:
            raise ValueError("boom")
        handled.extend(batch)

    thread = BatchThread(handle, name="test", batch=1, max_delay=0.01)
    for n in range(6):
        thread.put(n)
    thread.close()
    assert thread.errors == 1
    assert handled == [0, 1, 2, 4, 5]
