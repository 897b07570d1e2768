"""WARC capture: the page and image responses of a crawl, as fetched, in one ``.warc.gz`` file.

Request + response record pairs with block and payload digests, so the file passes
``warcio check``. Bodies are written as Scrapy hands them to the spider: after
content-decoding (``Content-Encoding`` is removed and ``Content-Length`` set to match).

Records are built, digested, gzipped and written by one writer thread, so the crawl's reactor
thread only hands the response over. The hand-over is cheap on purpose: the reactor appends
to a bounded list and wakes the writer only once a batch has gathered (or the writer wakes by
itself after ``max_delay``); the writer gzips each record as its own member in one call and
writes a whole batch with one ``write``. Every wake-up and every release of the GIL by the
writer is a chance for the reactor to wait for it, so there are few of both. The writer
holds the GIL as little as it can: it lays out the two records of an exchange itself (the
WARC/1.0 format is a few header lines; warcio builds the same records with about ten times the
Python work, which the crawl's reactor thread pays for in GIL time) and leaves the rest to
``hashlib`` and ``zlib``, which release the GIL. warcio still writes the ``warcinfo`` record
and lays out HTTP headers that are not ASCII (percent-encoded as it does), and reads the files.
:meth:`WarcFile.close` (called when the spider closes) writes everything still queued before
closing the file.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import uuid
import zlib
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawlers.batches import BatchThread
from monitor.errors import RegistryError

log = logging.getLogger(__name__)

_DROPPED = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WarcFile:
    """One gzipped WARC file, appended batch by batch by its writer thread
    (:class:`~crawlers.batches.BatchThread`: at most ``queue_size`` exchanges, or
    ``max_bytes`` of bodies, wait for it; the crawl waits when they do)."""

    def __init__(
        self,
        path: Path,
        *,
        relative_to: Path,
        software: str,
        queue_size: int = 512,
        batch: int = 32,
        max_delay: float = 0.1,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("ab")
        except OSError as exc:
            raise RegistryError(f"cannot write the WARC file {path}: {exc.strerror or exc}") from exc
        self.path = path
        try:
            self.relative_path = str(path.relative_to(relative_to))
        except ValueError:
            self.relative_path = str(path)
        self._lock = threading.Lock()
        self.errors = 0
        writer = WARCWriter(self._fh, gzip=True)
        fields = {"software": software, "format": "WARC File Format 1.0"}
        info = writer.create_warcinfo_record(path.name, fields)
        with self._lock:
            writer.write_record(info)
        self._writer: BatchThread[dict[str, Any]] = BatchThread(
            self._write_batch,
            name=f"warc-{path.stem}",
            queue_size=queue_size,
            batch=batch,
            max_delay=max_delay,
            max_weight=max_bytes,
        )

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        members: list[bytes] = []
        for exchange in batch:
            try:
                response, request = _records(**exchange)
                members += [_gzipped(response, stored=_compressed(exchange["body"])), _gzipped(request)]
            except Exception as exc:  # keep writing the others; the crawl goes on
                self.errors += 1
                log.error("could not write a WARC record of %s: %s", exchange.get("url"), exc)
        if not members:
            return
        try:
            with self._lock:
                self._fh.write(b"".join(members))
                self._fh.flush()
        except Exception as exc:
            self.errors += len(batch)
            log.error("could not write %d WARC record(s) to %s: %s", len(members), self.path, exc)

    def add_exchange(self, **exchange: Any) -> None:
        """Queue the response and request records of one fetch for the writer thread; blocks
        only when the queue is full. ``exchange``: ``url``, ``method``, ``request_headers``,
        ``status``, ``response_headers``, ``body``, ``fetched_at`` and ``ip`` (optional)."""
        if self._fh.closed:
            raise RegistryError(f"the WARC file {self.path} is closed")
        self._writer.put(exchange, weight=len(exchange.get("body") or b""))

    def flush(self) -> None:
        """Wait until every queued exchange is written and flushed to the file."""
        self._writer.flush()
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()

    def close(self) -> None:
        """Write what is still queued, then close the file (idempotent)."""
        self._writer.close()
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                self._fh.close()


#: Leading bytes of payloads that are compressed already (JPEG, PNG, GIF, WebP, AVIF/HEIF):
#: deflate gains them ~2 % for ~2 ms of CPU per 75 kB image, so their records are stored.
_COMPRESSED_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


def _compressed(body: bytes) -> bool:
    if body.startswith(_COMPRESSED_MAGIC):
        return True
    return (body[:4] == b"RIFF" and body[8:12] == b"WEBP") or body[4:8] == b"ftyp"


def _gzipped(record: bytes, *, stored: bool = False) -> bytes:
    """One record as its own gzip member (as WARC readers expect); ``stored``: without deflating
    (level 0, still a gzip member), for a payload that is compressed already. The window is no
    larger than the record needs: zlib clears its tables for every new member, and for a page
    of a few kilobytes clearing those of the full 32 KiB window costs twice the compressing."""
    window = min(zlib.MAX_WBITS, max(12, len(record).bit_length()))
    return zlib.compress(record, 0 if stored else 6, wbits=16 + window)  # one call: one GIL release


def _digest(*parts: bytes) -> str:
    sha1 = hashlib.sha1()  # WARC-Block-Digest and WARC-Payload-Digest, as warcio writes them
    for part in parts:
        sha1.update(part)
    return "sha1:" + base64.b32encode(sha1.digest()).decode("ascii")


def _http_head(first_line: str, headers: list[tuple[str, str]], *, request: bool) -> bytes:
    """The HTTP head of a record (start line, headers, blank line): ASCII as it is, else
    percent-encoded by warcio's rule (RFC 8187) so the record reads back the same."""
    text = first_line + "\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        if request:
            head = StatusAndHeaders(first_line, list(headers), is_http_request=True)
        else:
            protocol, _, status = first_line.partition(" ")
            head = StatusAndHeaders(status, list(headers), protocol=protocol)
        return bytes(head.to_ascii_bytes())


_EMPTY_DIGEST = _digest(b"")


def _record(
    kind: str, url: str, fields: list[tuple[str, str]], head: bytes, body: bytes
) -> tuple[bytes, str]:
    """One WARC/1.0 record (``head`` + ``body`` as its HTTP block) and its record id."""
    record_id = f"<urn:uuid:{uuid.uuid4()}>"
    lines = [
        "WARC/1.0",
        *(f"{name}: {value}" for name, value in fields),
        f"WARC-Type: {kind}",
        f"WARC-Record-ID: {record_id}",
        f"WARC-Target-URI: {url}",
        f"WARC-Payload-Digest: {_digest(body) if body else _EMPTY_DIGEST}",
        f"WARC-Block-Digest: {_digest(head, body)}",
        f"Content-Type: application/http; msgtype={kind}",
        f"Content-Length: {len(head) + len(body)}",
    ]
    header = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return b"".join((header, head, body, b"\r\n\r\n")), record_id


def _records(
    *,
    url: str,
    method: str,
    request_headers: list[tuple[str, str]],
    status: int,
    response_headers: list[tuple[str, str]],
    body: bytes,
    fetched_at: datetime,
    ip: str | None = None,
) -> tuple[bytes, bytes]:
    """The response record and its request record of one fetch (writer thread only)."""
    date = _iso(fetched_at)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    headers = [(k, v) for k, v in response_headers if k.lower() not in _DROPPED]
    headers.append(("Content-Length", str(len(body))))
    fields = [("WARC-Date", date)]
    if ip:
        fields.append(("WARC-IP-Address", ip))
    head = _http_head(f"HTTP/1.1 {status} {reason}", headers, request=False)
    response, response_id = _record("response", url, fields, head, body)
    target = url.split("://", 1)[-1]
    path = "/" + target.split("/", 1)[1] if "/" in target else "/"
    head = _http_head(f"{method} {path} HTTP/1.1", request_headers, request=True)
    fields = [("WARC-Date", date), ("WARC-Concurrent-To", response_id)]
    request, _ = _record("request", url, fields, head, b"")
    return response, request
