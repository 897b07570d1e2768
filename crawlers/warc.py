"""WARC capture: the page and image responses of a crawl, as fetched, in one ``.warc.gz`` file.

Written with warcio (request + response record pairs, block and payload digests), so the file
passes ``warcio check``. Bodies are written as Scrapy hands them to the spider: after
content-decoding (``Content-Encoding`` is removed and ``Content-Length`` set to match).

Records are built, digested, gzipped and written by one writer thread, so the crawl's reactor
thread only hands the response over. The hand-over is cheap on purpose: the reactor appends
to a bounded list and wakes the writer only once a batch has gathered (or the writer wakes by
itself after ``max_delay``); the writer gzips each record as its own member in one call and
writes a whole batch with one ``write``. Every wake-up and every release of the GIL by the
writer is a chance for the reactor to wait for it, so there are few of both.
:meth:`WarcFile.close` (called when the spider closes) writes everything still queued before
closing the file.
"""

from __future__ import annotations

import io
import logging
import threading
import zlib
from collections import deque
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from monitor.errors import RegistryError

log = logging.getLogger(__name__)

_DROPPED = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WarcFile:
    """One gzipped WARC file, appended batch by batch by its writer thread."""

    def __init__(
        self,
        path: Path,
        *,
        relative_to: Path,
        software: str,
        queue_size: int = 512,
        batch: int = 32,
        max_delay: float = 0.1,
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
        self._writer = WARCWriter(self._fh, gzip=True)
        self._plain = WARCWriter(io.BytesIO(), gzip=False)  # builds records; we gzip them
        self._lock = threading.Lock()
        self.errors = 0
        info = self._writer.create_warcinfo_record(
            path.name, {"software": software, "format": "WARC File Format 1.0"}
        )
        with self._lock:
            self._writer.write_record(info)
        self._queue_size = queue_size
        self._batch = batch
        self._max_delay = max_delay
        self._pending: deque[dict[str, Any] | None] = deque()
        self._added = 0  # exchanges handed over
        self._written = 0  # exchanges written (or failed)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._drain, name=f"warc-{path.stem}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(self._max_delay)
                batch = list(self._pending)
                self._pending.clear()
                self._cond.notify_all()  # room again for a reactor waiting on a full queue
            done = batch.index(None) if None in batch else len(batch)
            self._write_batch(batch[:done])
            with self._cond:
                self._written += done
                self._cond.notify_all()
            if done < len(batch):
                return

    def _write_batch(self, batch: list[dict[str, Any] | None]) -> None:
        members: list[bytes] = []
        for exchange in batch:
            assert exchange is not None
            try:
                members.extend(self._gzipped(record) for record in self._records(**exchange))
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

    def _gzipped(self, record: Any) -> bytes:
        """One record as its own gzip member (as warcio writes them), in one zlib call."""
        out = io.BytesIO()
        self._plain.out = out
        self._plain.write_record(record)
        return zlib.compress(out.getvalue(), 6, wbits=16 + zlib.MAX_WBITS)

    def add_exchange(self, **exchange: Any) -> None:
        """Queue the response and request records of one fetch for the writer thread; blocks
        only when the queue is full. ``exchange``: ``url``, ``method``, ``request_headers``,
        ``status``, ``response_headers``, ``body``, ``fetched_at`` and ``ip`` (optional)."""
        if self._fh.closed:
            raise RegistryError(f"the WARC file {self.path} is closed")
        with self._cond:
            while len(self._pending) >= self._queue_size:
                self._cond.wait()
            self._pending.append(exchange)
            self._added += 1
            if len(self._pending) >= self._batch:
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every queued exchange is written and flushed to the file."""
        with self._cond:
            self._cond.notify_all()
            while self._written < self._added and self._thread.is_alive():
                self._cond.wait(self._max_delay)
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()

    def _records(
        self,
        *,
        url: str,
        method: str,
        request_headers: list[tuple[str, str]],
        status: int,
        response_headers: list[tuple[str, str]],
        body: bytes,
        fetched_at: datetime,
        ip: str | None = None,
    ) -> tuple[Any, Any]:
        """The response record and its request record of one fetch (writer thread only)."""
        date = _iso(fetched_at)
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        headers = [(k, v) for k, v in response_headers if k.lower() not in _DROPPED]
        headers.append(("Content-Length", str(len(body))))
        http = StatusAndHeaders(f"{status} {reason}", headers, protocol="HTTP/1.1")
        warc_headers = {"WARC-Date": date}
        if ip:
            warc_headers["WARC-IP-Address"] = ip
        response = self._plain.create_warc_record(
            url, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict=warc_headers
        )
        target = url.split("://", 1)[-1]
        path = "/" + target.split("/", 1)[1] if "/" in target else "/"
        request_http = StatusAndHeaders(f"{method} {path} HTTP/1.1", request_headers, is_http_request=True)
        request = self._plain.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(b""),
            http_headers=request_http,
            warc_headers_dict={
                "WARC-Date": date,
                "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID"),
            },
        )
        return response, request

    def close(self) -> None:
        """Write what is still queued, then close the file (idempotent)."""
        if self._thread.is_alive():
            with self._cond:
                self._pending.append(None)
                self._cond.notify_all()
            self._thread.join()
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                self._fh.close()
