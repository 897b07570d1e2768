"""The crawl's candidate writer (``crawlers.pipelines.CandidateWriter``): capture → store →
enqueue off the reactor thread, on a real SQLite store, with a stand-in for the crawl session."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from crawlers.items import CandidateItem
from crawlers.pipelines import CandidateWriter
from crawlers.session import CrawlSession
from monitor.app import Monitor, open_monitor
from monitor.discovery import AnalysisOutcome, CapturedImage
from monitor.errors import RegistryError, RegistryUnavailable
from monitor.findings import FAILED, PENDING, Candidate, PageCapture
from monitor.settings import Settings


class _Session:
    """What the writer uses of a :class:`CrawlSession`, over a real monitor home. Queueing
    checks that every candidate queued is already committed."""

    def __init__(self, monitor: Monitor, *, queued: bool = True) -> None:
        self.monitor = monitor
        self.store: Any = monitor.discovery
        self.queued = queued
        self.crawl_id = monitor.discovery.start_crawl("site", [], source_id=None).id
        self.counts: dict[str, int] = {}
        self.queued_ids: list[str] = []
        self.analysed_ids: list[str] = []
        self.reported: list[tuple[Candidate, bool]] = []

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def _committed(self, ids: Sequence[str]) -> None:
        found = self.monitor.discovery.candidates(ids)  # a fresh session: sees only commits
        assert set(found) == set(ids), "a candidate was queued before it was committed"

    def enqueue_many(self, candidate_ids: list[str]) -> int:
        self._committed(candidate_ids)
        self.queued_ids.extend(candidate_ids)
        return len(candidate_ids)

    def analyse_here(self, candidate_ids: list[str]) -> dict[str, AnalysisOutcome]:
        self._committed(candidate_ids)
        self.analysed_ids.extend(candidate_ids)
        return {}

    def report(self, candidate: Candidate, outcome: AnalysisOutcome | None, created: bool) -> None:
        self.reported.append((candidate, created))


@pytest.fixture
def mon(tmp_path: Path) -> Monitor:
    return open_monitor(Settings(home=tmp_path / "home", redis_url=None))


def _writer(session: _Session, **options: Any) -> CandidateWriter:
    options.setdefault("retry_delays", (0.01, 0.01, 0.01))
    return CandidateWriter(cast(CrawlSession, session), **options)


def _item(n: int, *, body: bytes | None = None, text: str = "words around the image") -> CandidateItem:
    image = body if body is not None else f"image {n % 3}".encode()
    return CandidateItem(
        image_url=f"https://site.example/img/{n % 3}.jpg",
        page=PageCapture(url=f"https://site.example/p/{n}.html", title=f"Page {n}", text=text),
        body=image,
        status=200,
        headers={"content-type": "image/jpeg"},
    )


def _stored(mon: Monitor) -> dict[str, Candidate]:
    return {c.page.url if c.page else c.image_url: c for c in mon.discovery.list_candidates()}


def test_close_stores_and_queues_every_candidate_handed_over(mon: Monitor) -> None:
    session = _Session(mon)
    writer = _writer(session, batch=1000, max_delay=30)  # nothing is written before close
    for n in range(150):
        writer.add(_item(n))
    writer.close()
    stored = _stored(mon)
    assert len(stored) == 150
    assert {c.status for c in stored.values()} == {PENDING}
    assert sorted(session.queued_ids) == sorted(c.id for c in stored.values())
    assert len(session.reported) == 150 and all(created for _, created in session.reported)
    assert session.counts == {"candidates": 150, "new_candidates": 150}
    assert mon.blobs.get(stored["https://site.example/p/4.html"].sha256 or "") == b"image 1"


def test_bytes_that_cannot_be_kept_fail_that_candidate_only(
    mon: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    put = mon.blobs.put

    def failing_put(data: bytes) -> str:
        if data == b"bad bytes":
            raise RegistryError("cannot write to the blob store: disk full")
        return put(data)

    monkeypatch.setattr(mon.blobs, "put", failing_put)
    session = _Session(mon)
    writer = _writer(session)
    for n in range(10):
        writer.add(_item(n, body=b"bad bytes" if n == 4 else None))
    writer.close()
    stored = _stored(mon)
    assert len(stored) == 10
    bad = stored["https://site.example/p/4.html"]
    assert bad.status == FAILED and bad.sha256 is None
    assert bad.error == "registry_error: cannot write to the blob store: disk full"
    assert sorted(session.queued_ids) == sorted(c.id for c in stored.values() if c.status == PENDING)
    assert len(session.queued_ids) == 9


class _RefusingStore:
    """The real store, except that it refuses any batch holding a page text with ``BAD``."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls = 0

    def add_candidates(self, batch: Sequence[CapturedImage]) -> list[tuple[Candidate, bool]]:
        self.calls += 1
        if any(c.page is not None and "BAD" in (c.page.text or "") for c in batch):
            raise RegistryError("discovery database error (DataError: invalid byte sequence)")
        return cast(list[tuple[Candidate, bool]], self.store.add_candidates(batch))


def test_a_row_the_database_refuses_is_recorded_and_the_rest_of_its_batch_stored(mon: Monitor) -> None:
    session = _Session(mon)
    session.store = _RefusingStore(mon.discovery)
    writer = _writer(session, batch=1000, max_delay=30)  # one batch of ten
    for n in range(10):
        writer.add(_item(n, text="BAD \x00 text" if n == 6 else "fine"))
    writer.close()
    stored = _stored(mon)
    assert len(stored) == 10
    refused = stored["https://site.example/p/6.html"]
    assert refused.status == FAILED
    assert refused.error == "registry_error: discovery database error (DataError: invalid byte sequence)"
    assert refused.page is not None and refused.page.text is None  # stored without what was refused
    assert refused.sha256 is not None  # its bytes were kept
    assert all(c.status == PENDING for url, c in stored.items() if url != refused.page.url)
    assert len(session.queued_ids) == 9
    assert session.counts.get("lost", 0) == 0


class _BusyStore:
    """The real store behind a database that is busy for the first ``busy`` writes (or for ever)."""

    def __init__(self, store: Any, busy: float) -> None:
        self.store = store
        self.busy = busy
        self.calls = 0

    def add_candidates(self, batch: Sequence[CapturedImage]) -> list[tuple[Candidate, bool]]:
        self.calls += 1
        if self.calls <= self.busy:
            raise RegistryUnavailable("the database is unavailable (OperationalError: database is locked)")
        return cast(list[tuple[Candidate, bool]], self.store.add_candidates(batch))


def test_a_busy_database_is_retried_and_nothing_is_lost(mon: Monitor) -> None:
    session = _Session(mon)
    session.store = busy = _BusyStore(mon.discovery, busy=2)
    writer = _writer(session, batch=1000, max_delay=30)
    for n in range(5):
        writer.add(_item(n))
    writer.close()
    assert busy.calls == 3
    assert len(_stored(mon)) == 5 and len(session.queued_ids) == 5


def test_a_database_that_stays_unreachable_is_given_up_counted_and_logged(
    mon: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    session = _Session(mon)
    session.store = _BusyStore(mon.discovery, busy=float("inf"))
    writer = _writer(session, batch=1000, max_delay=30)
    for n in range(3):
        writer.add(_item(n))
    with caplog.at_level(logging.ERROR, logger="crawlers.pipelines"):
        writer.close()  # returns: the crawl can finish
    assert session.counts["lost"] == 3 and session.queued_ids == []
    assert sum("could not store the candidate" in r.getMessage() for r in caplog.records) == 3


def test_the_crawl_waits_while_the_writer_is_behind(mon: Monitor) -> None:
    gate = threading.Event()

    class _SlowStore:
        def add_candidates(self, batch: Sequence[CapturedImage]) -> list[tuple[Candidate, bool]]:
            gate.wait()
            return cast(list[tuple[Candidate, bool]], mon.discovery.add_candidates(batch))

    session = _Session(mon)
    session.store = _SlowStore()
    writer = _writer(session, queue_size=4, batch=2, max_delay=0.01)
    added: list[int] = []

    def crawl() -> None:
        for n in range(20):
            writer.add(_item(n))
            added.append(n)

    reactor = threading.Thread(target=crawl)
    reactor.start()
    time.sleep(0.3)
    assert len(added) <= 4 + 2  # the queue, plus the batch being stored
    gate.set()
    reactor.join(timeout=10)
    writer.close()
    assert added == list(range(20)) and len(_stored(mon)) == 20


def test_embedded_mode_analyses_the_stored_candidates_in_its_own_thread(mon: Monitor) -> None:
    session = _Session(mon, queued=False)
    writer = _writer(session)
    for n in range(12):
        writer.add(_item(n))
    writer.close()  # the analyses too are done when close returns
    stored = _stored(mon)
    assert sorted(session.analysed_ids) == sorted(c.id for c in stored.values())
    assert session.queued_ids == [] and len(session.reported) == 12
