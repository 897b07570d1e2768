"""Scrapy project of the monitor: spiders find pages and images, pipelines capture and queue them.

``scrapy crawl site -a urls=https://example.org/`` from the repository root, or
``monitor crawl URL...`` (which runs the same crawl in-process). Spiders (``crawlers.spiders``)
only find pages and images and yield :class:`~crawlers.items.CandidateItem` items; the item
pipelines (``crawlers.pipelines``) validate and dedupe them and hand them to the crawl's writer
thread, which captures the bytes, stores the candidates and queues (or, without Redis, runs)
their analyses. Downloader middlewares (``crawlers.middlewares``) refuse private addresses and
hand every response to the WARC writer (``crawlers.warc``); both writers run on
``crawlers.batches.BatchThread``, off the reactor thread.
"""
