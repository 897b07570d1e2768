"""``feed``: RSS and Atom feeds; the pages of their entries and the images they enclose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scrapy.http import Response, TextResponse

from crawlers.spiders.base import CandidateSpider
from monitor.findings import PageCapture
from monitor.pages import page_text

_ENTRIES = "//item | //entry"
_LINK = "link[not(@rel) or @rel='alternate']/@href | link/text() | guid[@isPermaLink='true']/text()"
_IMAGES = (
    "enclosure[starts-with(@type, 'image')]/@url"
    " | content[starts-with(@medium, 'image') or starts-with(@type, 'image')]/@url"
    " | thumbnail/@url"
)


class FeedSpider(CandidateSpider):
    name = "feed"
    follow_links = False

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            return
        selector = response.selector
        selector.remove_namespaces()
        for entry in selector.xpath(_ENTRIES):
            link = (entry.xpath(_LINK).get() or "").strip()
            page_url = response.urljoin(link) if link else None
            title = " ".join((entry.xpath("title//text()").get() or "").split()) or None
            summary = entry.xpath("description/text() | summary//text() | content//text()").getall()
            text = page_text(" ".join(summary), limit=2 * self.context_chars) or None
            for raw in entry.xpath(_IMAGES).getall():
                page = PageCapture(url=page_url or response.url, title=title, text=text)
                yield from self.image_requests(response.urljoin(raw.strip()), page)
            if page_url:
                request = self.page_request(page_url, callback=self.parse_entry)
                if request is not None:
                    yield request

    def parse_entry(self, response: Response) -> Iterator[Any]:
        yield from self.parse_page(response, follow=False)
