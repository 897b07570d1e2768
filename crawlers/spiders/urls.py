"""``urls``: exactly the given page or image URLs, no link followed."""

from __future__ import annotations

from crawlers.spiders.base import CandidateSpider


class UrlsSpider(CandidateSpider):
    name = "urls"
    follow_links = False
