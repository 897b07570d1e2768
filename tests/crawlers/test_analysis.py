"""Embedded crawls' analyses (``crawlers.analysis``): in a real child process, or here; a child
that dies hands its work back to the crawl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from crawlers.analysis import PROCESS, THREAD, EmbeddedAnalysis, analyse_batch
from monitor.app import Monitor, open_monitor
from monitor.discovery import CapturedImage, store_candidates
from monitor.findings import ANALYSED, PENDING, PageCapture
from monitor.services import register_bytes
from monitor.settings import DiscoverySettings, Settings
from tests.fixtures.services import REPO
from tests.fixtures.site import cropped_copy, registered_work

pytestmark = pytest.mark.slow


def _home(tmp_path: Path, **discovery: Any) -> tuple[Monitor, str]:
    """A home with the fixture work registered; its monitor and the work's id."""
    settings = Settings(home=tmp_path / "home", redis_url=None, discovery=DiscoverySettings(**discovery))
    mon = open_monitor(settings)
    work = registered_work()
    result = register_bytes(work, path="thug.jpg", registry=mon.registry, blobs=mon.blobs, settings=settings)
    assert result.work_id is not None
    return mon, result.work_id


def _candidates(mon: Monitor, pages: list[str], data: bytes) -> list[str]:
    """The same image captured on each page: stored candidates, pending."""
    sha = mon.blobs.put(data)
    stored = store_candidates(
        mon.discovery,
        [
            CapturedImage(image_url="https://copycat.example/i.jpg", sha256=sha, page=PageCapture(url=p))
            for p in pages
        ],
    )
    assert all(created and c.status == PENDING for c, created in stored)
    return [c.id for c, _ in stored]


def test_the_analysis_process_analyses_and_alerts_what_the_crawl_stored(tmp_path: Path) -> None:
    mon, work_id = _home(tmp_path)
    ids = _candidates(
        mon,
        ["https://copycat.example/a.html", "https://copycat.example/b.html"],
        cropped_copy(registered_work()),
    )
    analysis = EmbeddedAnalysis(mon, process=True)
    analysis.start()
    try:
        done = analysis.analyse(ids)
        assert analysis.mode == PROCESS and analysis.lost is None
        assert analysis.pid is not None and analysis.pid != os.getpid()
    finally:
        analysis.close()
    assert set(done.outcomes) == set(ids)
    assert done.findings == 2 and done.alerts == 2 and done.warnings == []
    for outcome in done.outcomes.values():
        assert outcome.candidate.status == ANALYSED
        assert [f.work_id for f in outcome.findings] == [work_id]
        assert "cropped" in outcome.findings[0].flags
    # what the child did is in the home the crawl shares with it: analysed once, alerted once a page
    assert mon.discovery.count_analyses() == 1
    assert {a.page_url for a in mon.alert_store.list()} == {
        "https://copycat.example/a.html",
        "https://copycat.example/b.html",
    }
    with pytest.raises(ProcessLookupError):  # closed: the child has ended
        os.kill(analysis.pid, 0)


def test_thread_mode_gives_the_same_outcome_in_this_process(tmp_path: Path) -> None:
    mon, work_id = _home(tmp_path)
    ids = _candidates(mon, ["https://copycat.example/a.html"], cropped_copy(registered_work()))
    analysis = EmbeddedAnalysis(mon, process=False)
    analysis.start()
    done = analysis.analyse(ids)
    analysis.close()
    assert analysis.mode == THREAD and analysis.pid is None
    assert done.findings == 1 and done.alerts == 1
    assert [f.work_id for f in done.outcomes[ids[0]].findings] == [work_id]


def test_a_killed_analysis_process_hands_its_batch_back_to_the_crawl(tmp_path: Path) -> None:
    # Each analysis sleeps 3 s in the child, so the child is killed while it holds the claim.
    mon, work_id = _home(tmp_path, test_analysis_delay=3.0)
    first = _candidates(mon, ["https://copycat.example/a.html"], cropped_copy(registered_work()))
    later = _candidates(mon, ["https://copycat.example/b.html"], registered_work())
    analysis = EmbeddedAnalysis(mon, process=True)
    analysis.start()
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(done=analysis.analyse(first)))
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while mon.discovery.count_analyses() == 0:  # the child has claimed the bytes
            assert time.monotonic() < deadline, "the analysis process did not start analysing"
            time.sleep(0.05)
        assert analysis.pid is not None
        os.kill(analysis.pid, signal.SIGKILL)
        worker.join(60)
        assert not worker.is_alive()
        # The batch it held was analysed here, the claim taken over at once (not after the lease).
        assert analysis.mode == THREAD and analysis.lost is not None
        done = result["done"]
        assert [f.work_id for f in done.outcomes[first[0]].findings] == [work_id]  # type: ignore[attr-defined]
        # ...and so is every later batch.
        again = analysis.analyse(later)
        assert [f.work_id for f in again.outcomes[later[0]].findings] == [work_id]
    finally:
        analysis.close()
    assert mon.discovery.count_candidates(status=PENDING) == 0
    assert len(mon.discovery.list_findings()) == 2


def test_a_batch_held_by_a_live_claim_waits_unless_taken_over(tmp_path: Path) -> None:
    mon, work_id = _home(tmp_path)
    ids = _candidates(mon, ["https://copycat.example/a.html"], cropped_copy(registered_work()))
    sha = mon.discovery.get_candidate(ids[0]).sha256
    assert sha is not None
    mon.discovery.claim_analysis(sha, lease_seconds=300)  # a process that then died
    waiting = analyse_batch(mon, ids)
    assert waiting.outcomes == {} and "being analysed" in waiting.warnings[0]
    taken = analyse_batch(mon, ids, take_over=True)
    assert [f.work_id for f in taken.outcomes[ids[0]].findings] == [work_id]


_ORPHAN = """
import sys, time
from crawlers.analysis import EmbeddedAnalysis
from monitor.app import open_monitor
from monitor.settings import DiscoverySettings, Settings

analysis = EmbeddedAnalysis(open_monitor(Settings(home=sys.argv[1], redis_url=None)), process=True)
analysis.start()
analysis.analyse([])  # nothing to do, but the child is up
print(analysis.pid, flush=True)
time.sleep(600)
"""


def test_the_analysis_process_ends_when_the_crawl_is_killed(tmp_path: Path) -> None:
    crawl = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(tmp_path / "home")], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert crawl.stdout is not None
        child = int(crawl.stdout.readline())
        os.kill(child, 0)  # alive
        crawl.kill()
        crawl.wait(10)
        deadline = time.monotonic() + 20
        while _alive(child):
            assert time.monotonic() < deadline, "the analysis process outlived the crawl"
            time.sleep(0.1)
    finally:
        crawl.kill()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for init to reap counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
