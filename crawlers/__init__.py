"""Scrapy project of the monitor: spiders find pages and images, pipelines capture and queue them.

``scrapy crawl site -a urls=https://example.org/`` from the repository root, or
``monitor crawl URL...`` (which runs the same crawl in-process). Spiders (``crawlers.spiders``)
only find pages and images and yield :class:`~crawlers.items.CandidateItem` items; the item
pipelines (``crawlers.pipelines``) validate, dedupe, capture the bytes, store the candidate
and queue (or, without Redis, run) its analysis. Downloader middlewares
(``crawlers.middlewares``) refuse private addresses and write the WARC file.
"""
