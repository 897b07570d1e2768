"""Takedown tracking against a real HTTP server on loopback: online, then removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from monitor.fetching import HttpFetcher
from monitor.findings import Finding
from monitor.recheck import findings_due, recheck_finding
from tests.monitor.evidence_fakes import build_scenario, http_server, jpeg

PAGE = (
    b"<!doctype html><html><head><title>Summer</title></head>"
    b"<body><p>A poem</p><img src='/img/summer.jpg'></body></html>"
)


def test_recheck_marks_the_page_removed_once_the_server_stops_serving_it(tmp_path: Path) -> None:
    with http_server() as server:
        s = build_scenario(
            tmp_path,
            page_url=f"{server.base}/post.html",
            image_url=f"{server.base}/img/summer.jpg",
            allow_private_addresses=True,
        )
        server.routes["/post.html"] = (200, "text/html; charset=utf-8", PAGE)
        server.routes["/img/summer.jpg"] = (200, "image/jpeg", s.candidate_bytes)
        kwargs = {
            "findings": s.findings,
            "log": s.findings,
            "blobs": s.monitor.blobs,
            "home": s.settings.home,
        }
        with HttpFetcher.from_settings(s.settings) as fetcher:
            first = recheck_finding(s.finding.id, fetcher=fetcher, **kwargs)  # type: ignore[arg-type]
            assert first.recheck.online
            assert (first.recheck.page_status, first.recheck.image_status) == (200, 200)
            assert first.recheck.image_sha256 == s.finding.image_sha256

            del server.routes["/img/summer.jpg"]
            server.routes["/post.html"] = (200, "text/html", b"<html><body><p>A poem</p></body></html>")
            second = recheck_finding(s.finding.id, fetcher=fetcher, **kwargs)  # type: ignore[arg-type]
    assert not second.recheck.online
    assert (second.recheck.page_status, second.recheck.image_status) == (200, 404)
    assert "no longer shows the image" in (second.recheck.note or "")
    assert [r.online for r in second.history] == [True, False]
    # each visit is a new capture: a WARC with the responses and a summary record
    warc = s.settings.home / (first.recheck.warc_path or "")
    with warc.open("rb") as fh:
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI")) for r in ArchiveIterator(fh)]
    assert ("response", s.finding.image_url) in records and ("response", s.finding.page_url) in records
    assert records[-1][0] == "metadata"
    assert second.recheck.warc_path != first.recheck.warc_path
    assert second.to_json()["status"] == "removed"


def test_other_bytes_at_the_image_url_are_judged_by_the_matcher(tmp_path: Path) -> None:
    from PIL import Image

    with http_server() as server:
        s = build_scenario(
            tmp_path, page_url=None, image_url=f"{server.base}/a.jpg", allow_private_addresses=True
        )
        server.routes["/a.jpg"] = (200, "image/jpeg", jpeg(Image.new("RGB", (64, 64), (200, 200, 200))))
        seen: list[bytes] = []

        def still_matches(finding: Finding, data: bytes) -> bool:
            seen.append(data)
            return False

        with HttpFetcher.from_settings(s.settings) as fetcher:
            outcome = recheck_finding(
                s.finding.id,
                findings=s.findings,
                log=s.findings,
                fetcher=fetcher,
                blobs=s.monitor.blobs,
                home=s.settings.home,
                still_matches=still_matches,
            )
    assert len(seen) == 1 and not outcome.recheck.online
    assert outcome.recheck.page_status is None and outcome.recheck.image_status == 200
    assert "no longer show the work" in (outcome.recheck.note or "")


def test_findings_due_skips_recent_and_removed(tmp_path: Path) -> None:
    s = build_scenario(tmp_path)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    assert findings_due(s.findings, every=timedelta(days=1), now=now) == [s.finding.id]
    s.findings.add_recheck(s.finding.id, page_status=200, image_status=200, online=True, checked_at=now)
    assert findings_due(s.findings, every=timedelta(days=1), now=now + timedelta(hours=2)) == []
    assert findings_due(s.findings, every=timedelta(days=1), now=now + timedelta(days=2)) == [s.finding.id]
    s.findings.add_recheck(s.finding.id, page_status=404, image_status=404, online=False, checked_at=now)
    assert findings_due(s.findings, every=timedelta(days=1), now=now + timedelta(days=9)) == []
