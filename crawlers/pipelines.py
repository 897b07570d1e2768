"""Item pipelines, one job each, in order: validate → dedupe → store (→ capture, commit, enqueue).

Validating and deduping are cheap and run on the crawl's reactor thread.
:class:`StoreCandidatePipeline` hands each candidate to the crawl's :class:`CandidateWriter`
and returns at once; the writer's one thread (:class:`~crawlers.batches.BatchThread`) then
does the blocking work a batch at a time, in this order:

1. **capture**: the exact image bytes go to the content-addressed blob store;
2. **store**: the batch's candidates are written and committed together;
3. **enqueue**: their analyses are queued (Celery, ``analyse`` queue, a few ids per message)
   or, in embedded mode, handed to a second thread, which has them analysed (in the crawl's
   analysis process, :mod:`crawlers.analysis`, or on that thread) and reports the outcomes.

So a candidate is committed before its analysis is queued, and the reactor pays per item only
for an append to a list (no thread-pool hop, no Deferred, no commit per item). Nothing handed
over is lost: when the crawl closes, every candidate still queued is stored before the crawl
is recorded as finished; a busy or unreachable database is retried with backoff, during
which the crawl waits (back-pressure: at most ``queue_size`` candidates, or ``max_bytes`` of
image bytes, wait for the writer); an image whose bytes cannot be kept is stored with the
reason (``code: message``) on its candidate; a batch the database refuses is stored again one
candidate at a time, and a candidate it still refuses is stored with the reason instead of
its page text and headers. Only a candidate that cannot be written even so is left out, and
counted (``lost``) and logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawlers.batches import BatchThread
from crawlers.items import CandidateItem
from crawlers.session import CrawlSession, session_for
from monitor.discovery import CapturedImage, store_candidates
from monitor.errors import MonitorError, RegistryUnavailable, describe
from monitor.findings import PENDING, Candidate, PageCapture

log = logging.getLogger(__name__)

#: Seconds between the tries of a write the database was too busy (or unreachable) for:
#: about a minute in all, then the batch is given up (and counted as lost).
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

Stored = tuple[Candidate, bool]


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


class StoreCandidatePipeline(_SessionPipeline):
    """Hands each candidate to the crawl's :class:`CandidateWriter` (capture, store, enqueue);
    closing the spider waits until the writer has done all of it."""

    def __init__(self, session: CrawlSession) -> None:
        super().__init__(session)
        self.writer: CandidateWriter | None = None

    def open_spider(self) -> None:
        self.writer = CandidateWriter(self.session)

    def process_item(self, item: CandidateItem) -> CandidateItem:
        assert self.writer is not None, "the pipeline was not opened"
        self.writer.add(item)
        return item

    async def close_spider(self) -> None:
        if self.writer is not None:  # in a thread: the reactor keeps running meanwhile
            await maybe_deferred_to_future(deferToThread(self.writer.close))


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


class CandidateWriter:
    """Capture → store → enqueue for the candidates of one crawl, a batch at a time, in one
    background thread (and, in embedded mode, the analyses in a second one). ``retry_delays``:
    the seconds between tries while the database is busy or unreachable."""

    def __init__(
        self,
        session: CrawlSession,
        *,
        queue_size: int = 1024,
        batch: int = 64,
        max_delay: float = 0.25,
        max_bytes: int = 64 * 1024 * 1024,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.session = session
        self.retry_delays = tuple(retry_delays)
        self._analyses: BatchThread[Stored] | None = None
        if not session.queued:
            self._analyses = BatchThread(
                self._analyse, name="crawl-analyses", queue_size=queue_size, batch=batch, max_delay=max_delay
            )
        self._writes: BatchThread[CandidateItem] = BatchThread(
            self._write,
            name="crawl-candidates",
            queue_size=queue_size,
            batch=batch,
            max_delay=max_delay,
            max_weight=max_bytes,
        )

    def add(self, item: CandidateItem) -> None:
        """Queue one candidate (reactor thread); blocks only while the writer is behind."""
        self._writes.put(item, weight=len(item.body) if item.body is not None else 0)

    def close(self) -> None:
        """Capture, store and enqueue (or analyse) everything still queued, then stop."""
        self._writes.close()
        if self._analyses is not None:
            self._analyses.close()

    # ------------------------------------------------------------------ writer thread

    def _write(self, batch: list[CandidateItem]) -> None:
        stored = [s for s in self._store([self._capture(item) for item in batch]) if s is not None]
        self.session.count("candidates", len(stored))
        self.session.count("new_candidates", sum(created for _, created in stored))
        if self._analyses is not None:
            for pair in stored:
                self._analyses.put(pair)
            return
        # Queued mode: a new pending candidate is queued; an old one still pending is left to
        # the sweep (it was queued when it was stored).
        self.session.enqueue_many([c.id for c, created in stored if created and c.status == PENDING])
        for candidate, created in stored:
            self._report(candidate, None, created)

    def _capture(self, item: CandidateItem) -> CapturedImage:
        captured = _captured(item, self.session.crawl_id)
        if item.body is None:
            return captured
        try:
            return replace(captured, sha256=self.session.monitor.blobs.put(item.body))
        except MonitorError as exc:
            return replace(captured, sha256=None, error=describe(exc))
        except Exception as exc:
            return replace(captured, sha256=None, error=f"capture_error: {exc!r}"[:500])

    def _store(self, batch: list[CapturedImage]) -> list[Stored | None]:
        """The batch in one transaction; if the database refuses it, one candidate at a time."""
        store = self.session.store
        try:
            return list(self._retrying(lambda: store_candidates(store, batch)))
        except RegistryUnavailable as exc:  # still busy or unreachable after a minute of tries
            return [self._lost(captured, exc) for captured in batch]
        except Exception as exc:
            if len(batch) == 1:
                return [self._store_failed(batch[0], exc)]
            log.warning("could not store %d candidates together (%s): one at a time", len(batch), exc)
        return [self._store_one(captured) for captured in batch]

    def _store_one(self, captured: CapturedImage) -> Stored | None:
        try:
            return self._retrying(lambda: store_candidates(self.session.store, [captured]))[0]
        except RegistryUnavailable as exc:
            return self._lost(captured, exc)
        except Exception as exc:
            return self._store_failed(captured, exc)

    def _store_failed(self, captured: CapturedImage, exc: Exception) -> Stored | None:
        """The candidate the database refused, stored with the reason instead of its page text
        and headers (what it may have refused), so the failure is on record."""
        reason = describe(exc) if isinstance(exc, MonitorError) else f"store_error: {exc!r}"
        page = PageCapture(url=captured.page.url) if captured.page is not None else None
        plain = replace(captured, page=page, headers={}, error=reason[:500])
        try:
            return self._retrying(lambda: store_candidates(self.session.store, [plain]))[0]
        except Exception as again:
            return self._lost(captured, again)

    def _lost(self, captured: CapturedImage, exc: Exception) -> Stored | None:
        """Counts and logs a candidate that could not be written; ``None`` (its place in a batch)."""
        self.session.count("lost")
        page = captured.page.url if captured.page is not None else None
        log.error("could not store the candidate %s on %s: %s", captured.image_url, page, exc)
        return None

    def _retrying(self, write: Callable[[], list[Stored]]) -> list[Stored]:
        for delay in self.retry_delays:
            try:
                return write()
            except RegistryUnavailable as exc:
                log.warning("the database is busy (%s): trying again in %.1f s", exc, delay)
                time.sleep(delay)
        return write()

    def _report(self, candidate: Candidate, outcome: Any, created: bool) -> None:
        try:
            self.session.report(candidate, outcome, created)
        except Exception:
            log.exception("the listener failed on candidate %s", candidate.id)

    # ------------------------------------------------------------------ analysis thread

    def _analyse(self, batch: list[Stored]) -> None:
        """Embedded mode: the pending candidates (new, or left pending by an earlier crawl: no
        sweep runs without workers) are analysed now, together (in the analysis process)."""
        outcomes = self.session.analyse_here([c.id for c, _ in batch if c.status == PENDING])
        for candidate, created in batch:
            outcome = outcomes.get(candidate.id)
            self._report(outcome.candidate if outcome else candidate, outcome, created)
