"""``site``: from the start URLs, every page of their hosts up to ``depth`` links away."""

from __future__ import annotations

from crawlers.spiders.base import CandidateSpider


class SiteSpider(CandidateSpider):
    name = "site"
    follow_links = True
