"""SqlDiscoveryStore on SQLite and PostgreSQL: unique keys and conditional updates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.discovery import BUSY, CLAIMED, DONE, CapturedImage, NewFinding
from monitor.errors import NotFound
from monitor.findings import ANALYSED, FAILED, PENDING, PageCapture
from monitor.registry import SqlDiscoveryStore, SqlWorkRegistry, create_engine_for, upgrade_database
from monitor.works import NewWork


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[SqlDiscoveryStore, SqlWorkRegistry]]:
    engine = create_engine_for(database_url)
    upgrade_database(engine)
    try:
        yield SqlDiscoveryStore(engine), SqlWorkRegistry(engine)
    finally:
        engine.dispose()


def _work(registry: SqlWorkRegistry, n: int = 1) -> str:
    from monitor.fingerprints import fingerprint_work
    from monitor.images import decode_image
    from tests.fixtures.site import registered_work
    from tests.monitor.registry.test_repository import new_work

    fp = fingerprint_work(decode_image(registered_work()))
    new: NewWork = new_work(n)
    return registry.add(new, fp)[0].id


def _captured(page: str = "https://blog.example/poem", sha: str = "a" * 64, **kw: Any) -> CapturedImage:
    return CapturedImage(
        image_url="https://blog.example/i.jpg",
        page=PageCapture(url=page, title="Poem", text="verse", credit="Illustration: X"),
        sha256=sha,
        headers={"content-type": "image/jpeg"},
        fetched_at=datetime.now(UTC),
        warc_path="warc/x.warc.gz",
        **kw,
    )


def _finding(work_id: str) -> NewFinding:
    return NewFinding(
        work_id=work_id,
        verdict="partial",
        similarity=0.97,
        flags=["cropped"],
        region=(0, 0, 10, 12),
        details={"inliers": 40},
        reports={"watermark": {"found": False}},
        transform=[[1, 0, 0], [0, 1, 0]],
    )


def test_candidates_are_unique_on_page_image_and_bytes(stores: Any) -> None:
    store, _ = stores
    first, created = store.add_candidate(_captured())
    again, created_again = store.add_candidate(_captured())
    other, created_other = store.add_candidate(_captured(page="https://other.example/"))
    assert (created, created_again, created_other) == (True, False, True)
    assert again.id == first.id and other.id != first.id
    got = store.get_candidate(first.id)
    assert got.status == PENDING and got.page is not None and got.page.credit == "Illustration: X"
    assert got.headers == {"content-type": "image/jpeg"} and got.warc_path == "warc/x.warc.gz"
    assert got.fetched_at is not None and got.fetched_at.tzinfo is not None
    failed, _ = store.add_candidate(_captured(sha=None, error="http_error: HTTP 404"))  # type: ignore[arg-type]
    assert failed.status == FAILED and failed.error == "http_error: HTTP 404"
    with pytest.raises(NotFound):
        store.get_candidate("nope")


def test_analysis_claims_are_exclusive_and_stale_claims_are_taken_over(stores: Any) -> None:
    store, _ = stores
    sha = "b" * 64
    threads = 6
    barrier = threading.Barrier(threads)

    def claim(_: int) -> str:
        barrier.wait()
        return store.claim_analysis(sha, lease_seconds=60).state

    with ThreadPoolExecutor(threads) as pool:
        states = list(pool.map(claim, range(threads)))
    assert sorted(states) == [BUSY] * (threads - 1) + [CLAIMED]
    # A stale claim (lease 0) is taken over; the old token can no longer finish.
    first = store.claim_analysis("c" * 64, lease_seconds=60)
    second = store.claim_analysis("c" * 64, lease_seconds=0)
    assert first.state == CLAIMED and second.state == CLAIMED and second.token != first.token
    assert store.finish_analysis("c" * 64, first.token, matches=[], error=None) is False
    assert store.finish_analysis("c" * 64, second.token, matches=[{"work_id": "w"}], error=None) is True
    done = store.claim_analysis("c" * 64, lease_seconds=0)
    assert done.state == DONE and done.matches == [{"work_id": "w"}]
    assert store.analysis_stats("c" * 64) == {"status": "done", "claims": 2, "error": None}


def test_completing_a_candidate_twice_adds_each_finding_once(stores: Any) -> None:
    store, registry = stores
    work_id = _work(registry)
    candidate, _ = store.add_candidate(_captured())
    done, findings = store.complete_candidate(candidate.id, findings=[_finding(work_id), _finding(work_id)])
    assert done.status == ANALYSED and len(findings) == 1
    again, findings_again = store.complete_candidate(candidate.id, findings=[_finding(work_id)])
    assert again.status == ANALYSED and [f.id for f in findings_again] == [findings[0].id]
    f = store.get_finding(findings[0].id)
    assert f.region == (0, 0, 10, 12) and f.reports == {"watermark": {"found": False}}
    assert f.page_url == "https://blog.example/poem" and f.image_sha256 == "a" * 64
    assert f.transform == [[1, 0, 0], [0, 1, 0]]
    assert store.list_findings(work_ids=[work_id]) == [f]
    assert store.list_findings(work_ids=["other"]) == []
    assert store.list_findings(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    bad, _ = store.add_candidate(_captured(page="https://x.example/"))
    failed, none = store.complete_candidate(bad.id, findings=[_finding(work_id)], error="truncated: cut")
    assert failed.status == FAILED and failed.error == "truncated: cut" and none == []


def test_rechecks_are_listed_oldest_first(stores: Any) -> None:
    store, registry = stores
    work_id = _work(registry)
    candidate, _ = store.add_candidate(_captured())
    _, (finding,) = store.complete_candidate(candidate.id, findings=[_finding(work_id)])
    now = datetime.now(UTC)
    later = store.add_recheck(finding.id, page_status=404, image_status=404, online=False, checked_at=now)
    earlier = store.add_recheck(
        finding.id,
        page_status=200,
        image_status=200,
        online=True,
        image_sha256="a" * 64,
        checked_at=now - timedelta(days=1),
        note="still there",
    )
    assert [r.id for r in store.rechecks(finding.id)] == [earlier.id, later.id]
    assert store.rechecks(finding.id)[0].note == "still there"
    with pytest.raises(NotFound):
        store.add_recheck("missing", page_status=None, image_status=None, online=False)


def test_sweep_requeues_only_stale_pending_candidates(stores: Any) -> None:
    store, registry = stores
    work_id = _work(registry)
    stale, _ = store.add_candidate(_captured(page="https://a.example/"))
    done, _ = store.add_candidate(_captured(page="https://b.example/"))
    store.complete_candidate(done.id, findings=[_finding(work_id)])
    future = datetime.now(UTC) + timedelta(seconds=5)
    assert store.requeue_stale(future, limit=10) == [stale.id]
    assert store.requeue_stale(datetime.now(UTC) - timedelta(seconds=60), limit=10) == []


def test_due_sources_are_claimed_once(stores: Any) -> None:
    store, _ = stores
    source, created = store.add_source("https://blog.example/", "site", 3600, depth=1, max_pages=None)
    same, created_again = store.add_source("https://blog.example/", "site", 60, depth=None, max_pages=None)
    assert created and not created_again and same.id == source.id
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert [s.id for s in store.claim_due_sources(now, limit=10)] == [source.id]
    assert store.claim_due_sources(now, limit=10) == []
    claimed = store.get_source(source.id)
    assert claimed.next_crawl_at >= now + timedelta(seconds=3599)
    crawl = store.start_crawl("site", [source.url], source_id=source.id)
    store.finish_crawl(crawl.id, status="finished", stats={"pages": 3})
    assert store.get_crawl(crawl.id).stats == {"pages": 3}
    assert store.get_source(source.id).last_crawl_id == crawl.id
    assert [s.id for s in store.list_sources()] == [source.id]
