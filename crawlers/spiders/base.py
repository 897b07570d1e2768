"""The reusable spider: turns pages into image requests and image responses into items.

Concrete spiders (``site``, ``sitemap``, ``feed``, ``urls``) only decide which pages to visit.
Arguments (``scrapy crawl NAME -a urls=... -a depth=2 -a max_pages=100``):

* ``urls`` (or ``url``): start URLs, separated by commas or whitespace;
* ``depth``: links followed from the start pages (``site`` only; default ``discovery.depth``);
* ``max_pages``: pages fetched by this crawl (default ``discovery.max_pages``);
* ``domains``: hosts whose links are followed (default: the start URLs' hosts).

An image is fetched once per crawl process: a later page showing the same image URL gets its
own item from the first fetch (same bytes, headers, WARC file), so every page still gets its
candidate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import scrapy
from scrapy.crawler import Crawler
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError, TCPTimedOutError, TimeoutError
from twisted.python.failure import Failure

from crawlers.items import CandidateItem
from crawlers.middlewares import RefusedByPolicy, response_headers
from crawlers.session import session_for
from monitor.findings import PageCapture
from monitor.pages import page_in_context

_SPLIT = re.compile(r"[\s,]+")
_IMAGE_TYPES = ("image/",)


def split_urls(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [u for v in value for u in split_urls(v)]
    return [u for u in _SPLIT.split(value.strip()) if u]


@dataclass(frozen=True)
class _Fetched:
    sha256: str | None
    status: int | None
    headers: dict[str, str]
    fetched_at: Any
    warc_path: str | None
    error: str | None


class CandidateSpider(scrapy.Spider):
    """Base of the monitor's spiders (not run by itself)."""

    name = "candidates"
    follow_links = False
    # set by from_crawler, from the spider's arguments or else the settings
    depth: int
    max_pages: int
    context_chars: int
    distributed: bool
    allowed_domains: list[str]

    def __init__(
        self,
        urls: str | list[str] | None = None,
        url: str | None = None,
        depth: str | int | None = None,
        max_pages: str | int | None = None,
        domains: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_urls = split_urls(urls) + split_urls(url)
        self._depth_arg = depth
        self._max_pages_arg = max_pages
        self._domains_arg = domains
        self.pages_parsed = 0
        self._pages_scheduled = 0
        self._seen_pages: set[str] = set()
        self._images: dict[str, _Fetched] = {}
        self._links = LinkExtractor()

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = session_for(crawler).settings
        d = settings.discovery
        spider.depth = int(spider._depth_arg) if spider._depth_arg not in (None, "") else d.depth
        spider.max_pages = (
            int(spider._max_pages_arg) if spider._max_pages_arg not in (None, "") else d.max_pages
        )
        spider.context_chars = d.context_chars
        spider.distributed = d.distributed
        hosts = split_urls(spider._domains_arg) or [urlsplit(u).hostname or "" for u in spider.start_urls]
        spider.allowed_domains = sorted({h for h in hosts if h})
        return spider

    # ------------------------------------------------------------------ pages

    async def start(self) -> AsyncIterator[Any]:
        for url in self.start_urls:
            request = self.page_request(url, callback=self.parse, start=True)
            if request is not None:
                yield request

    def page_request(
        self, url: str, *, callback: Any, start: bool = False, **meta: Any
    ) -> scrapy.Request | None:
        """A request for a page, within this crawl's page budget; ``None`` once it is spent."""
        key = url.split("#", 1)[0]
        if key in self._seen_pages:
            return None
        if self._pages_scheduled >= self.max_pages:
            return None
        self._seen_pages.add(key)
        self._pages_scheduled += 1
        # Start URLs bypass the dupefilter (a re-crawl must fetch them), except when several
        # crawler processes share one (distributed): then only one of them fetches each page.
        return scrapy.Request(
            url, callback=callback, meta={"role": "page", **meta}, dont_filter=start and not self.distributed
        )

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """A start page: its images, then (``site``) its links."""
        yield from self.parse_page(response)

    def parse_page(self, response: Response, *, follow: bool | None = None) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            if self._is_image(response):  # an image URL given as a page
                yield self._item_from_response(response, page=None)
            return
        if not isinstance(response, HtmlResponse):
            return
        self.pages_parsed += 1
        # One walk over the lxml tree Scrapy has already parsed (the link extractor uses it too).
        title, images = page_in_context(response.selector.root, response.url, around=self.context_chars)
        for found in images:
            page = PageCapture(
                url=response.url,
                title=title,
                text=found.text,
                alt=found.image.alt,
                caption=found.image.caption,
                credit=found.credit,
            )
            yield from self.image_requests(found.image.url, page)
        if follow if follow is not None else self.follow_links:
            yield from self.follow(response)

    def follow(self, response: TextResponse) -> Iterator[scrapy.Request]:
        if response.meta.get("depth", 0) >= self.depth:
            return
        for link in self._links.extract_links(response):
            if not self.in_scope(link.url):
                continue
            request = self.page_request(link.url, callback=self.parse_follow)
            if request is not None:
                yield request

    def in_scope(self, url: str) -> bool:
        """Whether ``url`` is on one of the crawled hosts (or their subdomains)."""
        host = (urlsplit(url).hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def parse_follow(self, response: Response) -> Iterator[Any]:
        yield from self.parse_page(response)

    # ------------------------------------------------------------------ images

    def image_requests(self, url: str, page: PageCapture | None) -> Iterator[Any]:
        """The item for an image already fetched in this crawl, else a request for it."""
        done = self._images.get(url)
        if done is not None:
            yield CandidateItem(
                image_url=url,
                page=page,
                sha256=done.sha256,
                status=done.status,
                headers=done.headers,
                fetched_at=done.fetched_at,
                warc_path=done.warc_path,
                error=done.error,
            )
            return
        yield scrapy.Request(
            url,
            callback=self.parse_image,
            errback=self.image_failed,
            meta={"role": "image", "candidate_page": page},
            dont_filter=True,  # one request per page showing it, unless fetched already (above)
            priority=10,  # images before new pages: keeps the queue and memory small
        )

    def _is_image(self, response: Response) -> bool:
        ctype = (response.headers.get(b"Content-Type") or b"").decode("latin-1").lower()
        return ctype.startswith(_IMAGE_TYPES) or not isinstance(response, TextResponse)

    def _item_from_response(self, response: Response, page: PageCapture | None) -> CandidateItem:
        body = response.body
        sha256 = hashlib.sha256(body).hexdigest() if body else None
        item = CandidateItem(
            image_url=response.url,
            page=page,
            body=body,
            sha256=sha256,
            status=response.status,
            headers=response_headers(response),
            fetched_at=response.meta.get("fetched_at"),
            warc_path=response.meta.get("warc_path"),
            error=None if body else "empty: the image response has no body",
        )
        requested = response.request.url if response.request is not None else response.url
        fetched = _Fetched(sha256, item.status, item.headers, item.fetched_at, item.warc_path, item.error)
        self._images[requested] = fetched
        self._images.setdefault(response.url, fetched)
        return item

    def parse_image(self, response: Response) -> Iterator[CandidateItem]:
        yield self._item_from_response(response, response.meta.get("candidate_page"))

    def image_failed(self, failure: Failure) -> Iterator[CandidateItem]:
        request = failure.request  # type: ignore[attr-defined]
        page = request.meta.get("candidate_page")
        if failure.check(RefusedByPolicy):
            self.crawler.stats.inc_value("monitor/images_refused")
            return
        if failure.check(HttpError):
            status = failure.value.response.status
            error = f"http_error: HTTP {status} for {request.url}"
        elif failure.check(TimeoutError, TCPTimedOutError):
            status, error = None, f"fetch_timeout: timed out fetching {request.url}"
        elif failure.check(DNSLookupError):
            status, error = None, f"fetch_error: cannot resolve the host of {request.url}"
        elif failure.check(scrapy.exceptions.IgnoreRequest):
            self.crawler.stats.inc_value("monitor/images_ignored")  # robots.txt, offsite, size
            return
        else:
            status, error = None, f"fetch_error: {failure.getErrorMessage()[:300]}"
        self._images[request.url] = _Fetched(None, status, {}, None, None, error)
        yield CandidateItem(image_url=request.url, page=page, status=status, error=error)
