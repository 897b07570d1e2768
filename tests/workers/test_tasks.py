"""The queued pipeline with a real Redis and real Celery worker processes (no eager mode)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts import sign_body
from monitor.discovery import CapturedImage, NewFinding
from monitor.findings import ANALYSED, PENDING, PageCapture
from monitor.settings import Settings
from tests.fixtures.services import (
    RedisServer,
    WorkerProcess,
    monitor_cli,
    monitor_env,
    open_home,
    register,
    wait_for,
)
from tests.fixtures.site import POEM, Blog
from tests.monitor.evidence_fakes import http_server

pytestmark = pytest.mark.slow


def _all_done(home: Path, expected: int) -> bool:
    store = open_home(home).discovery
    return store.count_candidates() >= expected and store.count_candidates(status=PENDING) == 0


def test_queued_crawl_finds_the_cropped_illustration_on_the_poem_page(
    tmp_path: Path, redis_server: RedisServer, blog: tuple[Blog, str, list[str]]
) -> None:
    site, base, requested = blog
    home = tmp_path / "home"
    work_id = register(home, site.work, "thug")
    with http_server() as receiver:
        env = monitor_env(
            home,
            redis_server.url,
            alerts__webhook__url=receiver.base + "/hook",
            alerts__webhook__secret="s3cret",
            alerts__sweep_after=1,
        )
        worker = WorkerProcess(env, "w1", tmp_path).start()
        try:
            # The worker and its pool give way to the crawl (discovery.worker_nice, default 10).
            assert worker.niceness() == [10, 10]
            lines = monitor_cli(env, "crawl", base)
            summary = lines[-1]
            assert summary["type"] == "crawl" and summary["mode"] == "queued"
            assert summary["queued"] == len(site.pairs)
            wait_for(lambda: _all_done(home, len(site.pairs)), 60, "the worker to analyse every candidate")
            # Each finding's alert is queued on the ``alert`` queue once the finding is stored.
            alerts = open_home(home).alert_store
            wait_for(lambda: len(receiver.posts) >= 2, 30, "the webhook deliveries of the two alerts")
            # A re-crawl finds the same reuse again: no new candidate, no second alert.
            again = monitor_cli(env, "crawl", base)[-1]
            assert again["new_candidates"] == 0 and again["queued"] == 0
            # A finding whose alert task was lost is alerted by the sweep.
            lost = _finding_without_alert(home, base, site.copy, work_id)
            time.sleep(1.1)  # older than alerts.sweep_after
            from workers.app import create_celery

            create_celery(Settings(home=home, redis_url=redis_server.url)).send_task(
                "workers.tasks.alert_sweep"
            )
            wait_for(lambda: len(alerts.list()) == 3, 30, "the sweep to alert the finding that had none")
            time.sleep(0.5)
        finally:
            worker.stop()
    listed = alerts.list()
    assert len(listed) == 3 and all(a.occurrences == 1 and a.work_id == work_id for a in listed)
    assert {a.page_url for a in listed} == {
        base + "poems/night-walk.html",
        base + "poems/",
        base + "elsewhere.html",
    }
    assert next(a for a in listed if a.page_url == base + "elsewhere.html").finding_id == lost
    assert len(receiver.posts) == 3  # one per alert: the re-crawl and the sweep sent no repeat
    for headers, body in receiver.posts:
        assert headers["X-Monitor-Signature"] == sign_body(body, "s3cret")
        assert json.loads(body)["event"] == "alert.created"
    assert all(alerts.deliveries(a.id)[-1].ok for a in listed)
    assert "alert_finding" in worker.output()

    store = open_home(home).discovery
    findings = [f for f in store.list_findings() if f.id != lost]
    assert {f.page_url for f in findings} == {base + "poems/night-walk.html", base + "poems/"}
    assert all(f.work_id == work_id and f.verdict == "partial" for f in findings)
    assert all("cropped" in f.flags and "recompressed" in f.flags for f in findings)
    poem_page = next(f for f in findings if f.page_url.endswith("night-walk.html"))
    candidate = store.get_candidate(poem_page.candidate_id)
    assert candidate.page is not None and candidate.page.text is not None
    assert all(line in candidate.page.text for line in POEM)
    assert candidate.page.credit == "Illustration: The Thug, by J. Painter"
    # The same bytes on two pages: two findings, one analysis.
    assert store.count_analyses() == 4  # night-walk, temple, retina, sky
    assert store.analysis_stats(findings[0].image_sha256) == {"status": "done", "claims": 1, "error": None}
    assert not any(path.startswith("/private/") for path in requested)  # robots.txt obeyed


def _finding_without_alert(home: Path, base: str, data: bytes, work_id: str) -> str:
    """A finding stored without queuing its alert (as if the alert message had been lost)."""
    mon = open_home(home)
    sha = mon.blobs.put(data)
    candidate, _ = mon.discovery.add_candidate(
        CapturedImage(
            image_url=base + "media/night-walk.jpg", sha256=sha, page=PageCapture(url=base + "elsewhere.html")
        )
    )
    finding = NewFinding(
        work_id=work_id,
        verdict="partial",
        similarity=0.9,
        flags=["cropped"],
        region=(0, 0, 10, 10),
        details={},
        reports={},
    )
    _, (stored,) = mon.discovery.complete_candidate(candidate.id, findings=[finding])
    return stored.id


def test_a_worker_killed_mid_analysis_is_replaced_and_the_candidate_analysed_once(
    tmp_path: Path, redis_server: RedisServer, blog: tuple[Blog, str, list[str]]
) -> None:
    site, base, _ = blog
    home = tmp_path / "home"
    work_id = register(home, site.work, "thug")
    mon = open_home(home)
    sha = mon.blobs.put(site.copy)
    candidate, _ = mon.discovery.add_candidate(
        CapturedImage(
            image_url=base + "media/night-walk.jpg",
            sha256=sha,
            page=PageCapture(url=base + "poems/night-walk.html", text="\n".join(POEM)),
        )
    )
    slow = monitor_env(
        home,
        redis_server.url,
        discovery__test_analysis_delay=30,
        discovery__analysis_lease=2,
        discovery__visibility_timeout=3,
        discovery__worker_nice=0,
    )
    first = WorkerProcess(slow, "doomed", tmp_path).start()
    assert first.niceness() == [0, 0]  # worker_nice 0: normal priority
    from workers.app import create_celery

    celery = create_celery(Settings(home=home, redis_url=redis_server.url))
    celery.send_task("workers.tasks.analyse_candidate", args=[candidate.id])
    wait_for(lambda: mon.discovery.analysis_stats(sha), 30, "the first worker to claim the analysis")
    assert mon.discovery.analysis_stats(sha) == {"status": "running", "claims": 1, "error": None}
    first.kill9()
    time.sleep(2.5)  # the claim's lease runs out while nobody works on it

    fast = monitor_env(home, redis_server.url, discovery__analysis_lease=2, discovery__visibility_timeout=3)
    second = WorkerProcess(fast, "rescuer", tmp_path).start()
    try:
        wait_for(
            lambda: mon.discovery.get_candidate(candidate.id).status == ANALYSED,
            60,
            "the second worker to pick the task up",
        )
    finally:
        second.stop()
    assert "analyse_candidate" in second.output()
    assert mon.discovery.analysis_stats(sha) == {"status": "done", "claims": 2, "error": None}
    findings = mon.discovery.findings_of(candidate.id)
    assert [(f.work_id, f.verdict) for f in findings] == [(work_id, "partial")]
    assert mon.discovery.count_findings() == 1


def test_redis_restarted_during_a_crawl_loses_no_candidate(
    tmp_path: Path, redis_server: RedisServer, blog: tuple[Blog, str, list[str]]
) -> None:
    site, base, _ = blog
    home = tmp_path / "home"
    register(home, site.work, "thug")
    env = monitor_env(home, redis_server.url, discovery__sweep_after=1)
    worker = WorkerProcess(env, "w1", tmp_path).start()
    crawl_env = dict(env, MONITOR_DISCOVERY__DOWNLOAD_DELAY="0.4", MONITOR_DISCOVERY__CONCURRENCY="1")
    import subprocess
    import sys

    from tests.fixtures.services import REPO

    store = open_home(home).discovery
    crawl = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "crawl", base, "--json"],
        env=crawl_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: store.count_candidates() >= 1, 60, "the first candidate")
        redis_server.restart(down_for=4)  # no persistence: queued messages are gone
        out, err = crawl.communicate(timeout=120)
        assert crawl.returncode == 0, err[-3000:]
        summary = json.loads(out.splitlines()[-1])
        # Candidates stored while Redis was down could not be queued: the crawl went on.
        assert summary["unqueued"] >= 1, summary
        # Whatever was lost with Redis is still in the database as pending; the sweep requeues it.
        from workers.app import create_celery

        celery = create_celery(Settings(home=home, redis_url=redis_server.url))
        deadline = time.monotonic() + 60
        while not _all_done(home, len(site.pairs)):
            assert time.monotonic() < deadline, "candidates still pending after the sweeps"
            time.sleep(1.2)
            celery.send_task("workers.tasks.sweep_pending")
            time.sleep(1.0)
    finally:
        if crawl.poll() is None:
            crawl.kill()
        worker.stop()
    candidates = store.list_candidates()
    pairs = {
        (c.page.url.removeprefix(base[:-1]) if c.page else "", c.image_url.removeprefix(base[:-1]))
        for c in candidates
    }
    assert pairs == site.pairs
    assert len(candidates) == len(site.pairs)
    assert {c.status for c in candidates} == {ANALYSED}
    assert {f.page_url for f in store.list_findings()} == {base + "poems/night-walk.html", base + "poems/"}


def test_beat_crawls_a_watched_source(
    tmp_path: Path, redis_server: RedisServer, blog: tuple[Blog, str, list[str]]
) -> None:
    import subprocess
    import sys

    from tests.fixtures.services import REPO

    site, base, _ = blog
    home = tmp_path / "home"
    register(home, site.work, "thug")
    env = monitor_env(home, redis_server.url, discovery__watch_every=1, discovery__sweep_every=2)
    (added,) = monitor_cli(env, "watch", "add", base, "--every", "1h", "--depth", "1")
    assert added["created"] is True and added["every_seconds"] == 3600
    (listed,) = monitor_cli(env, "watch", "list")
    assert listed["source_id"] == added["source_id"] and listed["last_crawl_at"] is None
    worker = WorkerProcess(env, "w1", tmp_path).start()
    beat_log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "beat"],
        env=env,
        cwd=REPO,
        stdout=beat_log,
        stderr=subprocess.STDOUT,
    )
    try:
        store = open_home(home).discovery
        wait_for(lambda: len(store.list_findings()) >= 2, 90, "beat to crawl the watched source")
    finally:
        beat.terminate()
        beat.wait(timeout=15)
        beat_log.close()
        worker.stop()
    (source,) = store.list_sources()
    assert source.last_crawl_id is not None
    assert store.get_crawl(source.last_crawl_id).source_id == source.id
    assert {f.page_url for f in store.list_findings()} == {base + "poems/night-walk.html", base + "poems/"}


def test_a_batch_goes_on_past_a_failing_candidate_and_keeps_the_transient_ones_for_later() -> None:
    from monitor.errors import AnalysisBusy, RegistryError, RegistryUnavailable
    from workers.tasks import analyse_each

    calls: list[str] = []

    def analyse(candidate_id: str) -> dict[str, object]:
        calls.append(candidate_id)
        if candidate_id == "busy":
            raise AnalysisBusy("another worker has these bytes")
        if candidate_id == "locked":
            raise RegistryUnavailable("database is locked")
        if candidate_id == "broken":
            raise RegistryError("registry database error (IntegrityError: ...)")
        return {"candidate_id": candidate_id, "status": "analysed"}

    outcome = analyse_each(["a", "busy", "broken", "b", "locked", "a"], analyse)
    assert calls == ["a", "busy", "broken", "b", "locked"]  # in order, each id once
    assert outcome.again == ["busy", "locked"] and isinstance(outcome.fault, RegistryUnavailable)
    assert [(r["candidate_id"], r["status"]) for r in outcome.done] == [
        ("a", "analysed"),
        ("broken", "failed"),
        ("b", "analysed"),
    ]
    assert analyse_each([], analyse).again == []


def _stored(mon: Any, base: str, data: bytes, pages: list[str]) -> list[str]:
    sha = mon.blobs.put(data)
    stored = mon.discovery.add_candidates(
        [
            CapturedImage(image_url=base + "media/x.jpg", sha256=sha, page=PageCapture(url=base + page))
            for page in pages
        ]
    )
    return [candidate.id for candidate, _ in stored]


def test_a_batch_delivered_twice_analyses_each_image_once_and_alerts_once(
    tmp_path: Path, redis_server: RedisServer, blog: tuple[Blog, str, list[str]]
) -> None:
    from workers.app import create_celery
    from workers.messages import queue_analyses

    site, base, _ = blog
    home = tmp_path / "home"
    work_id = register(home, site.work, "thug")
    mon = open_home(home)
    copies = _stored(mon, base, site.copy, ["a.html", "b.html", "c.html"])
    others = _stored(mon, base, (site.root / "media" / "temple.jpg").read_bytes(), ["a.html", "d.html"])
    ids = copies + others
    celery = create_celery(Settings(home=home, redis_url=redis_server.url))
    assert queue_analyses(celery, ids, per_message=3) == []
    assert queue_analyses(celery, ids, per_message=5) == []  # as if every message came twice
    worker = WorkerProcess(monitor_env(home, redis_server.url), "w1", tmp_path).start()
    try:
        wait_for(lambda: _all_done(home, len(ids)), 60, "the worker to analyse the batch")
        wait_for(lambda: len(mon.alert_store.list()) >= 3, 30, "the alerts of the three findings")
        time.sleep(1.0)  # the second delivery of each batch has run too
    finally:
        worker.stop()
    assert "analyse_candidates" in worker.output()
    findings = mon.discovery.list_findings()
    assert sorted(f.candidate_id for f in findings) == sorted(copies)
    assert all(f.work_id == work_id for f in findings)
    sha_copy = mon.discovery.get_candidate(copies[0]).sha256
    sha_other = mon.discovery.get_candidate(others[0]).sha256
    for sha in (sha_copy, sha_other):
        assert mon.discovery.analysis_stats(sha) == {"status": "done", "claims": 1, "error": None}
    assert len(mon.alert_store.list()) == 3 and all(a.occurrences == 1 for a in mon.alert_store.list())


def test_a_batch_retries_only_the_candidate_whose_bytes_another_worker_holds(
    tmp_path: Path, redis_server: RedisServer, blog: tuple[Blog, str, list[str]]
) -> None:
    from workers.app import create_celery
    from workers.messages import queue_analyses

    site, base, _ = blog
    home = tmp_path / "home"
    register(home, site.work, "thug")
    mon = open_home(home)
    (held,) = _stored(mon, base, b"bytes another worker is analysing", ["held.html"])
    free = _stored(mon, base, site.copy, ["a.html", "b.html"])
    sha = mon.discovery.get_candidate(held).sha256
    claim = mon.discovery.claim_analysis(sha, lease_seconds=600)  # "another worker" holds these bytes
    assert claim.token is not None
    celery = create_celery(Settings(home=home, redis_url=redis_server.url))
    assert queue_analyses(celery, [free[0], held, free[1]]) == []
    worker = WorkerProcess(monitor_env(home, redis_server.url), "w1", tmp_path).start()
    try:
        wait_for(
            lambda: all(mon.discovery.get_candidate(c).status == ANALYSED for c in free),
            60,
            "the other candidates of the batch",
        )
        assert mon.discovery.get_candidate(held).status == PENDING
        wait_for(lambda: "Retry in" in worker.output(), 30, "the batch to be retried")
        # The other worker finishes: the retried batch (only the held candidate) completes.
        assert mon.discovery.finish_analysis(sha, claim.token, matches=[], error=None)
        wait_for(lambda: mon.discovery.get_candidate(held).status == ANALYSED, 90, "the retry")
    finally:
        worker.stop()
    assert mon.discovery.findings_of(held) == []
    assert mon.discovery.analysis_stats(mon.discovery.get_candidate(free[0]).sha256) == {
        "status": "done",
        "claims": 1,
        "error": None,
    }


def test_a_batch_that_fails_as_a_whole_is_analysed_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.tasks as tasks
    from monitor.errors import RegistryError

    class _FakeMonitor:
        def analysis_services(self, matcher: Any = None) -> None:
            return None

    class _Fake:
        settings = Settings()
        monitor = _FakeMonitor()

        def matcher(self) -> None:
            return None

    def broken_batch(*_: Any, **__: Any) -> Any:
        raise RegistryError("registry database error (DataError: one bad row)")

    analysed: list[str] = []

    def one(_app: Any, candidate_id: str) -> dict[str, Any]:
        analysed.append(candidate_id)
        if candidate_id == "bad":
            raise RegistryError("registry database error (DataError: one bad row)")
        return {"candidate_id": candidate_id, "status": "analysed"}

    monkeypatch.setattr(tasks, "runtime", lambda app: _Fake())
    monkeypatch.setattr(tasks.discovery, "analyse_candidates", broken_batch)
    monkeypatch.setattr(tasks, "_analyse", one)
    result = tasks.analyse_candidates(["a", "bad", "b"])
    assert analysed == ["a", "bad", "b"]
    assert [(r["candidate_id"], r["status"]) for r in result["candidates"]] == [
        ("a", "analysed"),
        ("bad", "failed"),
        ("b", "analysed"),
    ]
