"""End-to-end crawls in embedded mode (no Redis): ``monitor crawl`` in a child process against
the loopback fixture blog, analysis right after capture."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.findings import ANALYSED
from tests.fixtures.services import monitor_cli, monitor_env, open_home, register, run_in_repo
from tests.fixtures.site import POEM, Blog, write_sitemap_and_feed

pytestmark = pytest.mark.slow


def test_embedded_crawl_finds_the_poem_page_and_keeps_the_evidence(
    tmp_path: Path, blog: tuple[Blog, str, list[str]]
) -> None:
    site, base, requested = blog
    home = tmp_path / "home"
    work_id = register(home, site.work, "thug")
    lines = monitor_cli(monitor_env(home, None), "crawl", base)
    summary = lines[-1]
    assert summary["type"] == "crawl" and summary["mode"] == "embedded"
    assert summary["analysis"] == "process" and "analysis_lost" not in summary
    assert summary["gc_frozen"] > 10_000  # start-up's objects kept out of the crawl's collections
    candidates = [line for line in lines if line["type"] == "candidate"]
    assert len(candidates) == len(site.pairs)
    hits = [c for c in candidates if c["findings"]]
    assert {c["page_url"] for c in hits} == {base + "poems/night-walk.html", base + "poems/"}
    assert all(f["work_id"] == work_id and "cropped" in f["flags"] for c in hits for f in c["findings"])
    assert not any(path.startswith("/private/") for path in requested)  # robots.txt obeyed

    mon = open_home(home)
    store = mon.discovery
    assert store.count_analyses() == 4  # the copy on two pages was analysed once
    finding = next(f for f in store.list_findings() if f.page_url == base + "poems/night-walk.html")
    candidate = store.get_candidate(finding.candidate_id)
    assert candidate.status == ANALYSED
    assert candidate.page is not None
    assert candidate.page.title == "Night walk — a poem"
    assert candidate.page.alt == "a man in a dark coat" and candidate.page.caption == "The stranger"
    assert all(line in (candidate.page.text or "") for line in POEM)
    assert candidate.page.credit == "Illustration: The Thug, by J. Painter"
    assert candidate.headers["content-type"] == "image/jpeg"
    assert candidate.fetched_at is not None
    # Exact bytes, content-addressed; the WARC file holds the page and the image and passes `warcio check`.
    assert mon.blobs.get(finding.image_sha256) == site.copy
    assert finding.image_sha256 == hashlib.sha256(site.copy).hexdigest()
    assert candidate.warc_path is not None
    warc = home / candidate.warc_path
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", str(warc)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    from warcio.archiveiterator import ArchiveIterator

    with warc.open("rb") as fh:
        responses = {
            r.rec_headers.get_header("WARC-Target-URI"): r.content_stream().read()
            for r in ArchiveIterator(fh)
            if r.rec_type == "response"
        }
    assert responses[base + "media/night-walk.jpg"] == site.copy
    assert "The night was long" in responses[base + "poems/night-walk.html"].decode()

    # Each finding raised its alert in-process (the inbox; no channel is configured).
    assert summary["alerts"] == 2
    alerts = mon.alert_store.list()
    assert {a.page_url for a in alerts} == {base + "poems/night-walk.html", base + "poems/"}

    # Crawling again adds nothing: same pages, same bytes, no second alert (and the same with
    # the analyses on a thread of the crawl's process).
    again = monitor_cli(monitor_env(home, None, discovery__analysis_process=False), "crawl", base)
    assert again[-1]["analysis"] == "thread"
    assert not any(line.get("new") for line in again if line["type"] == "candidate")
    assert again[-1]["alerts"] == 0
    assert store.count_candidates() == len(site.pairs)
    assert store.count_analyses() == 4
    assert [(a.id, a.occurrences) for a in mon.alert_store.list()] == [(a.id, 1) for a in alerts]

    listed = monitor_cli(monitor_env(home, None), "findings")
    assert {line["page_url"] for line in listed} == {base + "poems/night-walk.html", base + "poems/"}
    poem = next(line for line in listed if line["page_url"].endswith("night-walk.html"))
    assert POEM[0] in poem["page"]["text"] and poem["warc_path"] == candidate.warc_path


def test_loopback_is_refused_unless_the_settings_allow_it(
    tmp_path: Path, blog: tuple[Blog, str, list[str]]
) -> None:
    _, base, requested = blog
    env = monitor_env(tmp_path / "home", None, allow_private_addresses=False)
    lines = monitor_cli(env, "crawl", base)
    assert lines[-1]["type"] == "crawl" and lines[-1]["pages"] == 0
    assert requested == []  # not even robots.txt


def test_page_limit_and_depth(tmp_path: Path, blog: tuple[Blog, str, list[str]]) -> None:
    _, base, requested = blog
    env = monitor_env(tmp_path / "home", None)
    lines = monitor_cli(env, "crawl", base, "--depth", "0")
    assert lines[-1]["pages"] == 1
    assert [p for p in requested if p.endswith((".html", "/"))] == ["/"]
    requested.clear()
    lines = monitor_cli(env, "crawl", base + "poems/", "--max-pages", "2")
    assert lines[-1]["pages"] == 2


def test_a_crawl_shows_the_user_no_library_warning(tmp_path: Path, blog: tuple[Blog, str, list[str]]) -> None:
    _, base, _ = blog
    done = run_in_repo(
        monitor_env(tmp_path / "home", None), "-m", "monitor.cli", "crawl", base, "--depth", "0", "--json"
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "DeprecationWarning" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-4000:]


@pytest.mark.parametrize("spider", ["sitemap", "feed", "urls"])
def test_sitemap_feed_and_urls_spiders(
    tmp_path: Path, blog: tuple[Blog, str, list[str]], spider: str
) -> None:
    site, base, _ = blog
    write_sitemap_and_feed(site.root, base)
    home = tmp_path / "home"
    register(home, site.work, "thug")
    start = {
        "sitemap": [base + "sitemap.xml"],
        "feed": [base + "feed.xml"],
        "urls": [base + "poems/night-walk.html", base + "media/sky.jpg"],
    }[spider]
    lines = monitor_cli(monitor_env(home, None), "crawl", *start, "--spider", spider)
    candidates = [line for line in lines if line["type"] == "candidate"]
    pages = {c["page_url"] for c in candidates}
    assert base + "poems/night-walk.html" in pages
    assert any(c["findings"] for c in candidates)
    if spider == "sitemap":
        assert pages == {base + "poems/night-walk.html", base + "travel/temple.html"}
    if spider == "feed":  # the enclosure is a candidate of the entry's page, with the entry's text
        sky = next(c for c in candidates if c["image_url"] == base + "media/sky.jpg")
        assert sky["page_url"] == base + "poems/night-walk.html"
    if spider == "urls":  # an image URL on its own has no page
        assert {c["image_url"] for c in candidates if c["page_url"] is None} == {base + "media/sky.jpg"}


def test_scrapy_crawl_works_from_the_repository_root(
    tmp_path: Path, blog: tuple[Blog, str, list[str]]
) -> None:
    site, base, _ = blog
    home = tmp_path / "home"
    register(home, site.work, "thug")
    done = run_in_repo(
        monitor_env(home, None), "-m", "scrapy", "crawl", "site", "-a", f"urls={base}", "-a", "depth=1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = open_home(home).discovery
    assert {f.page_url for f in store.list_findings()} == {base + "poems/night-walk.html", base + "poems/"}
