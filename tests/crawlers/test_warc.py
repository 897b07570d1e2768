"""The WARC file of a crawl (``crawlers/warc.py``): every exchange handed over is written,
each record its own gzip member, and the file passes ``warcio check``."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawlers.warc import WarcFile, _compressed
from monitor.errors import RegistryError


def _exchange(n: int, body: bytes | None = None, **changes: Any) -> dict[str, Any]:
    exchange: dict[str, Any] = {
        "url": f"http://site.example/p/{n}.html",
        "method": "GET",
        "request_headers": [("User-Agent", "monitor-test"), ("Accept", "text/html")],
        "status": 200,
        "response_headers": [("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
        "body": body if body is not None else f"<html><p>page {n}</p></html>".encode(),
        "fetched_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "ip": "192.0.2.7",
    }
    exchange.update(changes)
    return exchange


def _records(path: Path) -> list[Any]:
    with path.open("rb") as fh:
        return [
            (
                r.rec_type,
                r.rec_headers.get_header("WARC-Target-URI"),
                r.http_headers.get_header("Content-Length") if r.http_headers else None,
                r.content_stream().read(),
                r.rec_headers.get_header("WARC-IP-Address"),
            )
            for r in ArchiveIterator(fh)
        ]


def _check(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_exchange_is_written_in_order_as_a_response_and_request_pair(tmp_path: Path) -> None:
    path = tmp_path / "warc" / "crawl.warc.gz"
    warc = WarcFile(path, relative_to=tmp_path, software="monitor-test", batch=8)
    assert warc.relative_path == "warc/crawl.warc.gz"
    image = bytes(range(256)) * 40  # larger than a page, not text
    for n in range(50):
        warc.add_exchange(**_exchange(n, body=image if n == 7 else None))
    warc.close()
    warc.close()  # idempotent
    records = _records(path)
    assert records[0][0] == "warcinfo"
    pairs = records[1:]
    assert [r[0] for r in pairs] == ["response", "request"] * 50
    assert [r[1] for r in pairs[::2]] == [f"http://site.example/p/{n}.html" for n in range(50)]
    assert pairs[14][3] == image and pairs[14][2] == str(len(image))  # Content-Length of the body
    assert pairs[0][3] == b"<html><p>page 0</p></html>" and pairs[0][4] == "192.0.2.7"
    # Each record is its own gzip member, as WARC readers expect.
    assert len(gzip.decompress(path.read_bytes()).split(b"WARC/1.")) - 1 == 101
    _check(path)
    with pytest.raises(RegistryError):
        warc.add_exchange(**_exchange(99))


def test_flush_waits_for_what_is_queued_without_waiting_for_a_full_batch(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    warc = WarcFile(path, relative_to=tmp_path, software="monitor-test", batch=1000, max_delay=30)
    try:
        for n in range(3):
            warc.add_exchange(**_exchange(n))
        started = time.monotonic()
        warc.flush()
        assert time.monotonic() - started < 10  # flush wakes the writer; it does not wait 30 s
        assert [r[0] for r in _records(path)] == ["warcinfo"] + ["response", "request"] * 3
    finally:
        warc.close()


def test_a_bad_exchange_is_counted_and_the_others_are_still_written(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    warc = WarcFile(path, relative_to=tmp_path, software="monitor-test")
    warc.add_exchange(**_exchange(1))
    warc.add_exchange(**_exchange(2, fetched_at="not a date"))
    warc.add_exchange(**_exchange(3))
    warc.close()
    assert warc.errors == 1
    assert [r[1] for r in _records(path) if r[0] == "response"] == [
        "http://site.example/p/1.html",
        "http://site.example/p/3.html",
    ]
    _check(path)


def test_a_full_queue_holds_the_crawl_back_until_the_writer_catches_up(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    warc = WarcFile(path, relative_to=tmp_path, software="monitor-test", queue_size=4, batch=2)
    added: list[int] = []

    def crawl() -> None:
        for n in range(40):
            warc.add_exchange(**_exchange(n))
            added.append(n)

    with warc._lock:  # the writer cannot write: the queue fills up and the crawl waits
        thread = threading.Thread(target=crawl)
        thread.start()
        time.sleep(0.5)
        assert len(added) < 40
    thread.join(timeout=30)
    warc.close()
    assert added == list(range(40))
    assert len([r for r in _records(path) if r[0] == "response"]) == 40


def test_images_are_stored_and_pages_deflated_each_in_its_own_member(tmp_path: Path) -> None:
    """Image bytes are compressed already: their records are stored (gzip level 0), which costs
    next to nothing; text is deflated. Told by the leading bytes, so a JPEG/PNG/WebP header
    before compressible bytes is stored all the same. Either way the file reads back and checks."""
    text = b"<p>the same words again</p>" * 2000
    bodies = [b"\xff\xd8\xff\xe0" + text, b"\x89PNG\r\n\x1a\n" + text, b"RIFF\0\0\0\0WEBPVP8 " + text]
    bodies.append(b"<html><body>" + text + b"</body></html>")
    for n, body in enumerate(bodies):
        path = tmp_path / f"{n}.warc.gz"
        warc = WarcFile(path, relative_to=tmp_path, software="monitor-test")
        before = path.stat().st_size
        warc.add_exchange(**_exchange(n, body=body))
        warc.close()
        written = path.stat().st_size - before  # the response and request members
        assert _records(path)[1][3] == body
        _check(path)
        if n < 3:
            assert _compressed(body) and written > len(body)
        else:
            assert not _compressed(body) and written < len(body) // 20
    assert not _compressed(random.Random(5).randbytes(64))


def test_records_read_back_as_written_and_non_ascii_headers_are_percent_encoded(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    warc = WarcFile(path, relative_to=tmp_path, software="monitor-test")
    headers = [("Content-Type", "image/jpeg"), ("Content-Disposition", 'inline; filename="café.jpg"')]
    warc.add_exchange(**_exchange(1, body=b"\xff\xd8 jpeg bytes", response_headers=headers, ip=None))
    warc.add_exchange(**_exchange(2, url="http://site.example/", method="HEAD"))
    warc.close()
    with path.open("rb") as fh:
        records = [(r.rec_headers, r.http_headers, r.content_stream().read()) for r in ArchiveIterator(fh)]
    response, request = records[1], records[2]
    assert response[1].get_header("Content-Disposition") == "inline; filename*=UTF-8''caf%C3%A9.jpg"
    assert response[1].get_statuscode() == "200" and response[2] == b"\xff\xd8 jpeg bytes"
    assert response[0].get_header("WARC-IP-Address") is None
    assert request[0].get_header("WARC-Concurrent-To") == response[0].get_header("WARC-Record-ID")
    assert request[1].protocol == "GET" and request[1].get_header("User-Agent") == "monitor-test"
    assert records[4][1].protocol == "HEAD" and records[4][1].statusline.startswith("/ ")
    _check(path)  # block and payload digests verified
