"""``sitemap``: the pages listed by the sites' sitemaps (a sitemap URL, a ``robots.txt`` URL, or a
site root, for which ``/robots.txt`` and ``/sitemap.xml`` are read). No other link is followed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import scrapy
from scrapy.http import Response
from scrapy.spiders import SitemapSpider as _ScrapySitemapSpider

from crawlers.spiders.base import CandidateSpider


def sitemap_urls(url: str) -> list[str]:
    path = urlsplit(url).path.lower()
    if path.endswith((".xml", ".xml.gz", "/robots.txt", ".txt")):
        return [url]
    return [urljoin(url, "/robots.txt"), urljoin(url, "/sitemap.xml")]


class SitemapSpider(CandidateSpider, _ScrapySitemapSpider):
    name = "sitemap"
    follow_links = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sitemap_urls = [s for u in self.start_urls for s in sitemap_urls(u)]
        self.sitemap_rules = [("", "parse_listed")]
        self._cbs = [(re.compile(""), self.parse_listed)]
        self._follow = [re.compile("")]
        self.sitemap_alternate_links = False

    async def start(self) -> AsyncIterator[Any]:
        for url in self.sitemap_urls:
            yield scrapy.Request(url, callback=self._parse_sitemap, dont_filter=True)

    def _parse_sitemap(self, response: Response) -> Iterable[Any]:
        for request in super()._parse_sitemap(response):
            if request.callback == self.parse_listed:
                listed = self.page_request(request.url, callback=self.parse_listed)
                if listed is not None:
                    yield listed
            else:
                yield request

    def parse_listed(self, response: Response) -> Iterator[Any]:
        yield from self.parse_page(response, follow=False)
