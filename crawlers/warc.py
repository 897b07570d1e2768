"""WARC capture: the page and image responses of a crawl, as fetched, in one ``.warc.gz`` file.

Written with warcio (request + response record pairs, block and payload digests), so the file
passes ``warcio check``. Bodies are written as Scrapy hands them to the spider: after
content-decoding (``Content-Encoding`` is removed and ``Content-Length`` set to match).

Records are built, digested, gzipped and written by one writer thread fed through a bounded
queue, so the crawl's reactor thread only hands the response over; :meth:`WarcFile.close`
(called when the spider closes) writes everything still queued before closing the file.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
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
    """One gzipped WARC file, appended record by record by its writer thread."""

    def __init__(self, path: Path, *, relative_to: Path, software: str, queue_size: int = 512) -> None:
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
        self._lock = threading.Lock()
        self.errors = 0
        info = self._writer.create_warcinfo_record(
            path.name, {"software": software, "format": "WARC File Format 1.0"}
        )
        self._write(info)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._drain, name=f"warc-{path.stem}", daemon=True)
        self._thread.start()

    def _write(self, *records: object) -> None:
        with self._lock:
            for record in records:
                self._writer.write_record(record)

    def _drain(self) -> None:
        while True:
            exchange = self._queue.get()
            try:
                if exchange is None:
                    return
                self.write_exchange(**exchange)
            except Exception as exc:  # keep writing the others; the crawl goes on
                self.errors += 1
                log.error("could not write a WARC record of %s: %s", (exchange or {}).get("url"), exc)
            finally:
                self._queue.task_done()

    def add_exchange(self, **exchange: Any) -> None:
        """Queue the request and response records of one fetch (see :meth:`write_exchange`) for
        the writer thread; blocks only when the queue is full."""
        if self._fh.closed:
            raise RegistryError(f"the WARC file {self.path} is closed")
        self._queue.put(exchange)

    def flush(self) -> None:
        """Wait until every queued exchange is written and flushed to the file."""
        self._queue.join()
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()

    def write_exchange(
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
    ) -> None:
        """Append the request and response records of one fetch (in the calling thread)."""
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
        response = self._writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict=warc_headers
        )
        target = url.split("://", 1)[-1]
        path = "/" + target.split("/", 1)[1] if "/" in target else "/"
        request_http = StatusAndHeaders(f"{method} {path} HTTP/1.1", request_headers, is_http_request=True)
        request = self._writer.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(b""),
            http_headers=request_http,
            warc_headers_dict={
                "WARC-Date": date,
                "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID"),
            },
        )
        self._write(response, request)

    def close(self) -> None:
        """Write what is still queued, then close the file (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                self._fh.close()
