"""SqlDiscoveryStore on SQLite and PostgreSQL: unique keys and conditional updates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

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


class _Statements:
    """The SQL statements an engine runs (first words), to count round trips."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def starting(self, word: str) -> list[str]:
        return [s for s in self.seen if s.upper().startswith(word)]


def test_a_batch_of_candidates_is_one_insert_that_tells_exactly_which_are_new(stores: Any) -> None:
    store, _ = stores
    old, _ = store.add_candidate(_captured(page="https://a.example/"))
    batch = [
        _captured(page="https://a.example/"),  # stored before
        _captured(page="https://b.example/"),
        _captured(page="https://c.example/"),
        _captured(page="https://b.example/"),  # twice in the batch
        _captured(page="https://d.example/", sha=None, error="http_error: HTTP 404"),  # type: ignore[arg-type]
    ]
    statements = _Statements(store.engine)
    try:
        results = store.add_candidates(batch)
    finally:
        statements.close()
    inserts = statements.starting("INSERT")
    assert len(inserts) == 1 and "ON CONFLICT DO NOTHING" in inserts[0] and "RETURNING" in inserts[0]
    assert inserts[0].count("VALUES") == 1 and inserts[0].count("), (") == 3  # four new rows, one statement
    assert len(statements.starting("SELECT")) == 1  # the rows already stored, in one query
    assert [created for _, created in results] == [False, True, True, False, True]
    (a, _), (b, _), (c, _), (b_again, _), (d, _) = results
    assert a.id == old.id and b_again.id == b.id and len({a.id, b.id, c.id, d.id}) == 4
    assert [x.page.url for x in (a, b, c, d) if x.page] == [f"https://{h}.example/" for h in "abcd"]
    assert d.status == FAILED and d.error == "http_error: HTTP 404" and b.status == PENDING
    assert b == store.get_candidate(b.id)  # what the insert returned is what is stored
    assert store.count_candidates() == 4

    # A re-crawl of the same batch adds nothing and returns the stored candidates.
    again = store.add_candidates(batch)
    assert [created for _, created in again] == [False] * 5
    assert [x.id for x, _ in again] == [x.id for x, _ in results]
    assert store.count_candidates() == 4
    assert store.add_candidates([]) == []


def test_a_candidate_whose_id_was_drawn_twice_is_stored_under_a_new_one(
    stores: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.registry.discovery as module

    store, _ = stores
    taken, _ = store.add_candidate(_captured(page="https://a.example/"))
    draws = iter([taken.id, "e" * 16, "f" * 16])  # b.example, a.example, then b.example again
    monkeypatch.setattr(module, "_new_id", lambda: next(draws))
    (candidate, created), (same, created_again) = store.add_candidates(
        [_captured(page="https://b.example/"), _captured(page="https://a.example/")]
    )
    assert (
        created and candidate.id == "f" * 16 and candidate.page and candidate.page.url == "https://b.example/"
    )
    assert not created_again and same.id == taken.id
    assert store.count_candidates() == 2


def test_concurrent_batches_create_each_candidate_once(stores: Any) -> None:
    store, _ = stores
    pages = [f"https://blog.example/{n}" for n in range(40)]
    threads = 4
    barrier = threading.Barrier(threads)

    def crawl(n: int) -> list[tuple[str, bool]]:
        mine = pages[n * 5 :] + pages[: n * 5]  # every crawl sees every page, in its own order
        barrier.wait()
        return [(c.id, created) for c, created in store.add_candidates([_captured(page=p) for p in mine])]

    with ThreadPoolExecutor(threads) as pool:
        outcomes = [r for rs in pool.map(crawl, range(threads)) for r in rs]
    assert sum(created for _, created in outcomes) == len(pages)
    assert len({candidate_id for candidate_id, _ in outcomes}) == len(pages)
    assert store.count_candidates() == len(pages)


def test_candidates_are_completed_together_in_one_transaction(stores: Any) -> None:
    store, registry = stores
    work_id, other_work = _work(registry, 1), _work(registry, 2)
    a, _ = store.add_candidate(_captured(page="https://a.example/"))
    b, _ = store.add_candidate(_captured(page="https://b.example/"))
    c, _ = store.add_candidate(_captured(page="https://c.example/"))
    done_before, _ = store.add_candidate(_captured(page="https://d.example/"))
    _, (kept,) = store.complete_candidate(done_before.id, findings=[_finding(work_id)])
    commits: list[int] = []
    updates: list[bool] = []  # whether each UPDATE of candidates ran as one executemany

    def count(_connection: object) -> None:
        commits.append(1)

    def statement(*args: Any) -> None:
        sql, many = args[2], args[5]
        if sql.lstrip().upper().startswith("UPDATE CANDIDATES"):
            updates.append(many)

    event.listen(store.engine, "commit", count)
    event.listen(store.engine, "before_cursor_execute", statement)
    try:
        completed = store.complete_candidates(
            [
                (a.id, [_finding(work_id), _finding(other_work), _finding(work_id)], None),
                (b.id, [_finding(work_id)], "truncated: cut"),
                ("missing", [_finding(work_id)], None),
                (a.id, [], "not_an_image: late"),  # the first entry for an id wins
                (done_before.id, [_finding(other_work)], None),  # no longer pending: left as it is
                (c.id, [], None),
            ]
        )
    finally:
        event.remove(store.engine, "commit", count)
        event.remove(store.engine, "before_cursor_execute", statement)
    assert len(commits) == 1
    assert updates == [True]  # the three candidates completed by one statement, run once for all
    assert [candidate.id for candidate, _ in completed] == [a.id, b.id, done_before.id, c.id]
    (got_a, found_a), (got_b, found_b), (got_d, found_d), (got_c, found_c) = completed
    assert got_a.status == ANALYSED and sorted(f.work_id for f in found_a) == sorted([work_id, other_work])
    assert got_b.status == FAILED and got_b.error == "truncated: cut" and found_b == []
    assert got_d.status == ANALYSED and [f.id for f in found_d] == [kept.id]
    assert got_c.status == ANALYSED and found_c == []
    assert store.get_candidate(a.id) == got_a and store.findings_of(a.id) == found_a
    assert store.complete_candidates([]) == []
    with pytest.raises(NotFound):
        store.complete_candidate("missing", findings=[])


def test_finished_analyses_are_read_without_a_claim(stores: Any) -> None:
    store, _ = stores
    for sha in ("1" * 64, "2" * 64, "3" * 64):
        assert store.claim_analysis(sha, lease_seconds=60).state == CLAIMED
    one, two = (
        store.claim_analysis("1" * 64, lease_seconds=0),
        store.claim_analysis("2" * 64, lease_seconds=0),
    )
    assert one.token and two.token
    store.finish_analysis("1" * 64, one.token, matches=[{"work_id": "w"}], error=None)
    store.finish_analysis("2" * 64, two.token, matches=None, error="not_an_image: no")
    finished = store.finished_analyses(["1" * 64, "2" * 64, "3" * 64, "4" * 64, "1" * 64])
    assert set(finished) == {"1" * 64, "2" * 64}  # "3…" is running, "4…" was never claimed
    assert finished["1" * 64].state == DONE and finished["1" * 64].matches == [{"work_id": "w"}]
    assert finished["2" * 64].state == FAILED and finished["2" * 64].error == "not_an_image: no"
    assert store.analysis_stats("1" * 64) == {"status": "done", "claims": 2, "error": None}  # no new claim
    assert store.finished_analyses([]) == {}
