"""Item pipelines, one job each, in order: validate → dedupe → capture → store → enqueue.

Blocking work (the blob store, the database, the broker, an embedded analysis) runs in
Twisted's thread pool, so the crawl keeps downloading meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from crawlers.items import CandidateItem
from crawlers.session import CrawlSession, session_for
from monitor.discovery import CapturedImage, store_candidates
from monitor.errors import MonitorError, describe
from monitor.findings import PENDING, Candidate

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


async def _in_thread(function: Any, *args: Any) -> Any:
    return await maybe_deferred_to_future(deferToThread(function, *args))


class _SessionPipeline:
    def __init__(self, session: CrawlSession) -> None:
        self.session = session

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(session_for(crawler))


class ValidatePipeline(_SessionPipeline):
    """Drops what is not an image candidate; checks the digest and the size of the bytes."""

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, CandidateItem):
            raise DropItem(f"not a candidate: {type(item).__name__}")
        if not item.image_url.lower().startswith(("http://", "https://")):
            raise DropItem(f"not an http(s) image URL: {item.image_url[:200]}")
        if item.body is not None:
            limit = self.session.settings.intake.max_bytes
            if len(item.body) > limit:
                item.body, item.sha256 = None, None
                item.error = f"too_large: the image is over the limit of {limit:,} bytes"
            elif item.sha256 is None:  # the spider hashes what it fetched
                item.sha256 = hashlib.sha256(item.body).hexdigest()
        if item.sha256 is None and item.error is None:
            item.error = "fetch_error: no image bytes were captured"
        return item


class DedupePipeline(_SessionPipeline):
    """Drops a repeat of the same page × image URL × bytes within this crawl (the database's
    unique key catches repeats across crawls and processes)."""

    def __init__(self, session: CrawlSession) -> None:
        super().__init__(session)
        self._seen: set[str] = set()

    def process_item(self, item: CandidateItem) -> CandidateItem:
        key = _captured(item, None).key
        if key in self._seen:
            raise DropItem(f"already seen in this crawl: {item.image_url}")
        self._seen.add(key)
        return item


class CapturePipeline(_SessionPipeline):
    """Keeps the exact bytes, content-addressed (the WARC record is written by the middleware)."""

    async def process_item(self, item: CandidateItem) -> CandidateItem:
        if item.body is not None:
            try:
                item.sha256 = await _in_thread(self.session.monitor.blobs.put, item.body)
            except MonitorError as exc:
                item.sha256, item.error = None, describe(exc)
            item.body = None  # stored: no need to keep it in memory
        return item


def _captured(item: CandidateItem, crawl_id: str | None) -> CapturedImage:
    return CapturedImage(
        image_url=item.image_url,
        page=item.page,
        sha256=item.sha256,
        headers=dict(item.headers),
        fetched_at=item.fetched_at,
        warc_path=item.warc_path,
        crawl_id=crawl_id,
        error=item.error,
    )


class _Batcher(Generic[In, Out]):
    """Groups the work of concurrent items into one call in the thread pool (one commit or one
    broker connection per batch, not per image: each costs milliseconds). Each item waits for
    its batch; ``function`` returns one result per input, in order."""

    def __init__(
        self, function: Callable[[list[In]], list[Out]], max_size: int = 64, max_delay: float = 0.05
    ) -> None:
        self.function = function
        self.max_size = max_size
        self.max_delay = max_delay
        self._pending: list[tuple[In, Deferred[Out]]] = []
        self._timer: Any = None

    async def add(self, value: In) -> Out:
        from twisted.internet import reactor

        waiter: Deferred[Out] = Deferred()
        self._pending.append((value, waiter))
        if len(self._pending) >= self.max_size:
            self.flush()
        elif self._timer is None:
            self._timer = reactor.callLater(self.max_delay, self.flush)  # type: ignore[attr-defined]
        return await maybe_deferred_to_future(waiter)

    def flush(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        done = deferToThread(self.function, [value for value, _ in batch])

        def finished(results: list[Out]) -> None:
            for (_, waiter), result in zip(batch, results, strict=True):
                waiter.callback(result)

        def failed(failure: Any) -> None:
            for _, waiter in batch:
                waiter.errback(failure)

        done.addCallbacks(finished, failed)


class StoreCandidatePipeline(_SessionPipeline):
    """Writes the candidate (committed before anything is queued), in batches."""

    def __init__(self, session: CrawlSession) -> None:
        super().__init__(session)
        self._batcher: _Batcher[CapturedImage, tuple[Candidate, bool]] = _Batcher(
            lambda batch: store_candidates(session.store, batch)
        )

    async def process_item(self, item: CandidateItem) -> CandidateItem:
        captured = _captured(item, self.session.crawl_id)
        candidate, created = await self._batcher.add(captured)
        item.candidate, item.created = candidate, created
        self.session.count("candidates")
        if created:
            self.session.count("new_candidates")
        return item


class EnqueuePipeline(_SessionPipeline):
    """Queues the analysis (Celery, ``analyse`` queue; a few candidates per message, over one
    broker connection) or, in embedded mode, runs it here; in batches either way."""

    def __init__(self, session: CrawlSession) -> None:
        super().__init__(session)
        work = self._enqueue_batch if session.queued else self._analyse_batch
        self._batcher: _Batcher[tuple[Candidate, bool], None] = _Batcher(work)

    async def process_item(self, item: CandidateItem) -> CandidateItem:
        assert item.candidate is not None
        await self._batcher.add((item.candidate, item.created))
        return item

    def _enqueue_batch(self, batch: list[tuple[Candidate, bool]]) -> list[None]:
        """Queued mode: a new pending candidate is queued; an old one still pending is left to
        the sweep (it was queued when it was stored)."""
        session = self.session
        session.enqueue_many([c.id for c, created in batch if created and c.status == PENDING])
        for candidate, created in batch:
            session.report(candidate, None, created)
        return [None] * len(batch)

    def _analyse_batch(self, batch: list[tuple[Candidate, bool]]) -> list[None]:
        """Embedded mode: the pending candidates (new, or left pending by an earlier crawl: no
        sweep runs without workers) are analysed now, together."""
        session = self.session
        outcomes = session.analyse_here([c.id for c, _ in batch if c.status == PENDING])
        for candidate, created in batch:
            outcome = outcomes.get(candidate.id)
            session.report(outcome.candidate if outcome else candidate, outcome, created)
        return [None] * len(batch)
