"""Downloader middlewares and the limits extension of the crawlers.

* :class:`AddressPolicyMiddleware` refuses, before anything is fetched (robots.txt included),
  URLs whose host resolves to a private, loopback, link-local or otherwise non-global address
  — the policy of :func:`monitor.fetching.blocked_reason` — unless ``allow_private_addresses``.
  Every redirect hop comes back through it.
* :class:`WarcCaptureMiddleware` writes every response the spider sees, with its request, to
  the crawl's WARC file, and stamps ``fetched_at`` and ``warc_path`` on the request's meta.
* :class:`CrawlLimits` stops the crawl once it has downloaded ``discovery.max_bytes``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawlers.session import session_for
from monitor.fetching import blocked_reason, resolve_host

log = logging.getLogger(__name__)


class RefusedByPolicy(IgnoreRequest):
    """The URL's host resolves to an address the settings do not allow."""


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, values in headers.items():
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        for value in values:
            pairs.append((key, value.decode("latin-1") if isinstance(value, bytes) else str(value)))
    return pairs


def response_headers(response: Response) -> dict[str, str]:
    """Response headers, lowercase names, repeated headers joined with ", "."""
    out: dict[str, str] = {}
    for name, value in _header_pairs(response.headers):
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class AddressPolicyMiddleware:
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._verdicts: dict[tuple[str, int], str | None] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AddressPolicyMiddleware:
        settings = session_for(crawler).settings
        if settings.allow_private_addresses:  # nothing to refuse: not a step of every request
            raise NotConfigured("allow_private_addresses is on")
        return cls(settings.allow_private_addresses)

    def _verdict(self, host: str, port: int) -> str | None:
        """Why ``host`` is refused, or ``None`` (DNS failures are left to the download)."""
        try:
            addresses = resolve_host(host, port)
        except (OSError, UnicodeError):
            return None
        for address in addresses:
            reason = blocked_reason(address)
            if reason is not None:
                shown = host if host == str(address) else f"{host} resolves to {address}, which"
                return f"refused: {shown} is a {reason} address"
        return None

    async def process_request(self, request: Request) -> None:
        if self.allow_private:
            return None
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RefusedByPolicy(f"refused {request.url}: only http and https URLs are fetched")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.hostname, port)
        if key not in self._verdicts:
            self._verdicts[key] = await maybe_deferred_to_future(deferToThread(self._verdict, *key))
        reason = self._verdicts[key]
        if reason is not None:
            log.info("%s (fetching %s)", reason, request.url)
            raise RefusedByPolicy(f"{reason} (fetching {request.url})")
        return None


class WarcCaptureMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.session = session_for(crawler)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcCaptureMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        now = datetime.now(UTC)
        request.meta["fetched_at"] = now
        warc = self.session.warc
        if warc is not None and not urlsplit(response.url).path.endswith("/robots.txt"):
            ip = getattr(response, "ip_address", None)
            warc.add_exchange(
                url=response.url,
                method=request.method,
                request_headers=_header_pairs(request.headers),
                status=response.status,
                response_headers=_header_pairs(response.headers),
                body=response.body,
                fetched_at=now,
                ip=str(ip) if ip is not None else None,
            )
            request.meta["warc_path"] = warc.relative_path
        return response


class CrawlLimits:
    """Closes the crawl when the downloaded bytes pass ``CRAWL_MAX_BYTES``."""

    def __init__(self, crawler: Crawler, max_bytes: int) -> None:
        self.crawler = crawler
        self.max_bytes = max_bytes
        self.received = 0
        self.closing = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlLimits:
        max_bytes = crawler.settings.getint("CRAWL_MAX_BYTES")
        if max_bytes <= 0:
            raise NotConfigured("CRAWL_MAX_BYTES")
        ext = cls(crawler, max_bytes)
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        return ext

    def response_received(self, response: Response, request: Request, spider: Spider) -> None:
        self.received += len(response.body)
        if self.received > self.max_bytes and not self.closing and self.crawler.engine is not None:
            self.closing = True
            log.info("crawl byte limit reached (%d > %d bytes): stopping", self.received, self.max_bytes)
            deferred_from_coro(self.crawler.engine.close_spider_async(reason="closespider_bytes"))
