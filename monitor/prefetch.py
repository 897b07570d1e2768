"""Work ahead on a few threads and hand the results back in order.

A batch scan or registration spends about half of each image on work that needs nothing but
the image (reading, decoding, fingerprinting) and half on work that needs the shared state
(the index, the registry). :func:`prefetch` runs the first kind for the next images on worker
threads while the caller does the second kind for the current one. OpenCV, faiss, Pillow's
decoders and numpy's larger operations release the GIL, so two cores are both used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


def prefetch(items: Iterable[_T], work: Callable[[_T], _R], *, threads: int, ahead: int = 0) -> Iterator[_R]:
    """``map(work, items)``, with up to ``ahead`` items (default ``2 * threads``) worked on by
    ``threads`` threads before the caller asks for them; results come in the order of ``items``.

    ``threads <= 0`` works in the caller's thread, one item at a time. ``items`` is read in the
    caller's thread. ``work`` should report per-item failures in its result: an exception it
    raises is raised here, at that item's turn. Closing the iterator early cancels what has
    not started and waits for what has.
    """
    if threads <= 0:
        yield from map(work, items)
        return
    ahead = max(ahead or 2 * threads, 1)
    pending: deque[Future[_R]] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="monitor-prefetch") as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
