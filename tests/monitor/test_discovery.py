"""Discovery services on a real SQLite store and the real matcher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event

from monitor.app import Monitor, open_monitor
from monitor.discovery import (
    BatchAnalysis,
    CapturedImage,
    analyse_candidate,
    analyse_candidates,
    page_context,
    parse_every,
    store_candidate,
    sweep_pending,
    watch_source,
)
from monitor.errors import AnalysisBusy, ConfigError
from monitor.findings import ANALYSED, FAILED, PENDING, PageCapture
from monitor.services import register_bytes
from monitor.settings import Settings
from tests.fixtures.site import POEM, cropped_copy, registered_work


@pytest.fixture
def mon(tmp_path: Path) -> Monitor:
    return open_monitor(Settings(home=tmp_path / "home", redis_url=None))


def _store(mon: Monitor, data: bytes, page: str) -> str:
    sha = mon.blobs.put(data)
    captured = CapturedImage(
        image_url="https://copycat.example/i.jpg",
        sha256=sha,
        page=PageCapture(
            url=page, title="Night walk", text=" ".join(POEM), credit="Illustration: J. Painter"
        ),
    )
    candidate, created = store_candidate(mon.discovery, captured)
    assert created and candidate.status == PENDING
    return candidate.id


def _analyse(mon: Monitor, candidate_id: str) -> object:
    return analyse_candidate(candidate_id, mon.analysis_services())


def test_same_bytes_on_two_pages_one_analysis_two_findings(mon: Monitor) -> None:
    work = registered_work()
    registered = register_bytes(
        work, path="thug.jpg", registry=mon.registry, blobs=mon.blobs, settings=mon.settings
    )
    copy = cropped_copy(work)
    first = _store(mon, copy, "https://copycat.example/poem")
    second = _store(mon, copy, "https://copycat.example/poems/")

    one = _analyse(mon, first)
    two = _analyse(mon, second)
    assert one.analysed is True and two.analysed is False  # type: ignore[attr-defined]
    for outcome, page in ((one, "https://copycat.example/poem"), (two, "https://copycat.example/poems/")):
        assert outcome.candidate.status == ANALYSED  # type: ignore[attr-defined]
        (finding,) = outcome.findings  # type: ignore[attr-defined]
        assert finding.work_id == registered.work_id and finding.page_url == page
        assert finding.verdict == "partial" and "cropped" in finding.flags
        assert finding.transform is not None and len(finding.transform) == 2
    assert mon.discovery.count_analyses() == 1
    assert mon.discovery.count_findings() == 2
    # Running again changes nothing.
    again = _analyse(mon, first)
    assert again.analysed is False and [f.id for f in again.findings] == [f.id for f in one.findings]  # type: ignore[attr-defined]
    assert mon.discovery.count_findings() == 2


def test_bad_bytes_fail_once_with_the_reason(mon: Monitor) -> None:
    first = _store(mon, b"<html>not an image</html>", "https://copycat.example/a")
    second = _store(mon, b"<html>not an image</html>", "https://copycat.example/b")
    one = _analyse(mon, first)
    two = _analyse(mon, second)
    assert one.candidate.status == FAILED and one.candidate.error.startswith("not_an_image")  # type: ignore[attr-defined]
    assert two.analysed is False and two.candidate.error == one.candidate.error  # type: ignore[attr-defined]
    assert mon.discovery.count_analyses() == 1


def test_bytes_being_analysed_elsewhere_make_the_caller_retry(mon: Monitor) -> None:
    candidate_id = _store(mon, cropped_copy(registered_work()), "https://copycat.example/a")
    sha = mon.discovery.get_candidate(candidate_id).sha256
    assert sha is not None
    assert mon.discovery.claim_analysis(sha, lease_seconds=60).state == "claimed"  # another worker
    with pytest.raises(AnalysisBusy):
        _analyse(mon, candidate_id)
    assert mon.discovery.get_candidate(candidate_id).status == PENDING


def test_sweep_returns_candidates_pending_too_long(tmp_path: Path) -> None:
    mon = open_monitor(Settings(home=tmp_path / "h", redis_url=None, discovery={"sweep_after": 0.001}))
    candidate_id = _store(mon, cropped_copy(registered_work()), "https://copycat.example/a")
    import time

    time.sleep(0.01)
    assert sweep_pending(mon.discovery, mon.settings) == [candidate_id]
    assert (
        sweep_pending(
            mon.discovery,
            mon.settings.model_copy(
                update={"discovery": mon.settings.discovery.model_copy(update={"sweep_after": 60})}
            ),
        )
        == []
    )


def test_page_context_carries_the_credit_line() -> None:
    page = PageCapture(url="https://x.example/", text="verse", credit="Photo by A")
    assert page_context(page, "https://x.example/i.jpg").text == "verse\nPhoto by A"
    assert page_context(None, "https://x.example/i.jpg").url == "https://x.example/i.jpg"


def test_watched_sources(mon: Monitor) -> None:
    assert parse_every("6h") == 21600 and parse_every("30m") == 1800 and parse_every("1d") == 86400
    for bad in ("soon", "10s", "-1h"):
        with pytest.raises(ConfigError):
            parse_every(bad)
    source, created = watch_source(mon.discovery, "https://blog.example/", spider="feed", every="2h")
    assert created and source.every_seconds == 7200 and source.spider == "feed"
    with pytest.raises(ConfigError):
        watch_source(mon.discovery, "https://blog.example/", spider="nope")
    with pytest.raises(ConfigError):
        watch_source(mon.discovery, "ftp://blog.example/")


def _analyse_all(mon: Monitor, candidate_ids: list[str]) -> BatchAnalysis:
    return analyse_candidates(candidate_ids, mon.analysis_services())


def _commits(mon: Monitor, run: Callable[[], BatchAnalysis]) -> tuple[BatchAnalysis, int]:
    engine = mon.discovery.engine
    seen: list[int] = []

    def count(_connection: object) -> None:
        seen.append(1)

    event.listen(engine, "commit", count)
    try:
        return run(), len(seen)
    finally:
        event.remove(engine, "commit", count)


def test_a_batch_analyses_each_image_once_and_completes_its_candidates_together(mon: Monitor) -> None:
    work = registered_work()
    registered = register_bytes(
        work, path="thug.jpg", registry=mon.registry, blobs=mon.blobs, settings=mon.settings
    )
    copy = cropped_copy(work)
    copies = [_store(mon, copy, f"https://copycat.example/{n}") for n in range(3)]
    bad = [_store(mon, b"<html>not an image</html>", f"https://copycat.example/bad{n}") for n in range(2)]
    unfetched, _ = store_candidate(
        mon.discovery,
        CapturedImage(image_url="https://copycat.example/gone.jpg", error="http_error: HTTP 404"),
    )
    ids = [copies[0], bad[0], "no-such-candidate", copies[1], unfetched.id, copies[2], bad[1], copies[0]]

    batch = _analyse_all(mon, ids)
    assert batch.missing == ["no-such-candidate"] and batch.busy == []
    assert set(batch.outcomes) == set(copies) | set(bad) | {unfetched.id}
    assert mon.discovery.count_analyses() == 2  # the copy and the bad bytes: once each
    assert [batch.outcomes[c].analysed for c in copies] == [True, False, False]
    for n, candidate_id in enumerate(copies):
        outcome = batch.outcomes[candidate_id]
        (finding,) = outcome.findings
        assert outcome.candidate.status == ANALYSED and finding.work_id == registered.work_id
        assert finding.page_url == f"https://copycat.example/{n}" and "cropped" in finding.flags
    assert all(batch.outcomes[c].candidate.error.startswith("not_an_image") for c in bad)  # type: ignore[union-attr]
    assert batch.outcomes[unfetched.id].candidate.error == "http_error: HTTP 404"
    assert mon.discovery.count_findings() == 3

    # Delivered again: nothing changes, and it is all reads.
    again = _analyse_all(mon, ids)
    assert {k: (v.candidate, v.findings) for k, v in again.outcomes.items()} == {
        k: (v.candidate, v.findings) for k, v in batch.outcomes.items()
    }
    assert not any(o.analysed for o in again.outcomes.values()) and mon.discovery.count_findings() == 3

    # Images analysed before, on new pages: three transactions for the whole batch.
    more = [_store(mon, copy, f"https://copycat.example/more{n}") for n in range(10)]
    later, commits = _commits(mon, lambda: _analyse_all(mon, more))
    assert commits == 3
    assert all(later.outcomes[c].candidate.status == ANALYSED for c in more)
    assert mon.discovery.count_findings() == 13 and mon.discovery.count_analyses() == 2


def test_a_batch_hands_back_the_candidates_whose_bytes_are_analysed_elsewhere(mon: Monitor) -> None:
    held = _store(mon, cropped_copy(registered_work()), "https://copycat.example/held")
    free = _store(mon, b"<html>not an image</html>", "https://copycat.example/free")
    sha = mon.discovery.get_candidate(held).sha256
    assert sha is not None
    claim = mon.discovery.claim_analysis(sha, lease_seconds=60)  # another worker
    batch = _analyse_all(mon, [held, free])
    assert batch.busy == [held] and list(batch.outcomes) == [free]
    assert mon.discovery.get_candidate(held).status == PENDING
    assert claim.token is not None and mon.discovery.finish_analysis(sha, claim.token, matches=[], error=None)
    done = _analyse_all(mon, [held])
    assert done.busy == [] and done.outcomes[held].candidate.status == ANALYSED
    assert done.outcomes[held].findings == [] and done.outcomes[held].analysed is False
