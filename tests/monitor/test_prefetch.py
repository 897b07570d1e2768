"""Work ahead on threads: results in order, bounded look-ahead, errors at their turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from monitor.prefetch import prefetch


def _slow_square(i: int) -> int:
    time.sleep(0.002 * ((i * 7) % 5))  # later items often finish first
    return i * i


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_results_come_in_the_order_of_the_items(threads: int) -> None:
    assert list(prefetch(range(40), _slow_square, threads=threads)) == [i * i for i in range(40)]


def test_no_threads_works_in_the_callers_thread_one_item_at_a_time() -> None:
    where: list[int] = []

    def work(i: int) -> int:
        where.append(threading.get_ident())
        return i

    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in range(5):
            pulled.append(i)
            yield i

    for n, _ in enumerate(prefetch(items(), work, threads=0), 1):
        assert len(pulled) == n
    assert set(where) == {threading.get_ident()}


def test_items_are_worked_on_at_the_same_time() -> None:
    both_inside = threading.Barrier(2, timeout=10)

    def work(i: int) -> int:
        both_inside.wait()  # breaks (BrokenBarrierError) unless two items run at once
        return i

    assert list(prefetch(range(4), work, threads=2)) == [0, 1, 2, 3]


@pytest.mark.parametrize("ahead", [1, 2, 5])
def test_look_ahead_is_bounded(ahead: int) -> None:
    pulled = 0

    def items() -> Iterator[int]:
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield i

    for n, result in enumerate(prefetch(items(), _slow_square, threads=2, ahead=ahead)):
        assert result == n * n
        assert pulled <= n + 1 + ahead  # never more than `ahead` items beyond the one handed out


def test_an_error_is_raised_at_its_items_turn() -> None:
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("item 3")
        return _slow_square(i)

    got: list[int] = []
    with pytest.raises(ValueError, match="item 3"):
        for result in prefetch(range(10), work, threads=2):
            got.append(result)
    assert got == [0, 1, 4]


def test_closing_early_stops_the_work_and_the_threads() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.01)
        return i

    before = {t.name for t in threading.enumerate()}
    results = prefetch(range(1000), work, threads=1, ahead=20)
    assert next(results) == 0
    results.close()
    assert len(started) <= 3  # the 20 queued behind the first are dropped, not worked through
    left = [t.name for t in threading.enumerate() if t.name.startswith("monitor-prefetch")]
    assert not [name for name in left if name not in before]
