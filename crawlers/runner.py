"""Run one crawl in this process (Scrapy's ``CrawlerProcess``) and sum it up.

``monitor crawl`` calls :func:`run_crawl`; the ``crawl`` queue's task runs
``python -m crawlers.runner`` in a child process (Twisted's reactor starts once per process,
so a long-lived worker cannot run crawls in itself). Per-candidate results reach ``listener``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from crawlers.config import scrapy_settings
from crawlers.session import CandidateListener
from monitor.discovery import SPIDERS
from monitor.errors import ConfigError, MonitorError
from monitor.settings import Settings, load_settings


@dataclass
class CrawlSummary:
    crawl_id: str | None
    spider: str
    start_urls: list[str]
    mode: str  # "embedded" | "queued"
    pages: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "crawl",
            "crawl_id": self.crawl_id,
            "spider": self.spider,
            "start_urls": self.start_urls,
            "mode": self.mode,
            "pages": self.pages,
            **{k: v for k, v in self.stats.items() if k not in ("pages",)},
        }


def run_crawl(
    settings: Settings,
    urls: list[str],
    *,
    spider: str = "site",
    depth: int | None = None,
    max_pages: int | None = None,
    source_id: str | None = None,
    listener: CandidateListener | None = None,
    log_level: str = "WARNING",
    extra: dict[str, Any] | None = None,
) -> CrawlSummary:
    """Crawl ``urls`` with ``spider`` until done (or a limit is reached). Blocks; once per process."""
    if spider not in SPIDERS:
        raise ConfigError(f"unknown spider {spider!r}: use one of {', '.join(SPIDERS)}")
    if not urls:
        raise ConfigError("give at least one URL to crawl")
    bad = [u for u in urls if not u.lower().startswith(("http://", "https://"))]
    if bad:
        raise ConfigError(f"not an http(s) URL: {bad[0]}")
    values = scrapy_settings(
        settings,
        LOG_LEVEL=log_level,
        MONITOR_LISTENER=listener,
        MONITOR_SOURCE_ID=source_id,
        **(extra or {}),
    )
    process = _crawler_process(values, install_root_handler=log_level != "NONE")
    crawler = process.create_crawler(spider)
    kwargs: dict[str, Any] = {"urls": list(urls)}
    if depth is not None:
        kwargs["depth"] = depth
    if max_pages is not None:
        kwargs["max_pages"] = max_pages
    process.crawl(crawler, **kwargs)
    process.start()
    session = getattr(crawler, "_monitor_session", None)
    if session is None:
        raise MonitorError("the crawl did not start (see the log above)")
    crawl_id = session.crawl_id
    summary = CrawlSummary(
        crawl_id=crawl_id,
        spider=spider,
        start_urls=list(urls),
        mode="queued" if session.queued else "embedded",
        pages=getattr(crawler.spider, "pages_parsed", 0),
    )
    if crawl_id is not None:
        try:
            summary.stats = session.store.get_crawl(crawl_id).stats
        except MonitorError:
            summary.stats = dict(session.counts)
    return summary


def _crawler_process(values: dict[str, Any], *, install_root_handler: bool) -> Any:
    """Scrapy's ``CrawlerProcess``; whether it logs to the root handler is the
    ``LOG_INSTALL_ROOT_HANDLER`` setting where Scrapy has it (2.19+: the argument is deprecated
    there, and its warning would reach the user), the argument before."""
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import default_settings

    if hasattr(default_settings, "LOG_INSTALL_ROOT_HANDLER"):
        return CrawlerProcess({**values, "LOG_INSTALL_ROOT_HANDLER": install_root_handler})
    return CrawlerProcess(values, install_root_handler=install_root_handler)


def main(argv: list[str] | None = None) -> int:
    """``python -m crawlers.runner [--spider S] [--source-id ID] [--depth N] [--max-pages N] URL...``:
    one crawl; prints its summary as one JSON line. Used by the ``crawl`` queue's task."""
    parser = argparse.ArgumentParser(prog="python -m crawlers.runner")
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--spider", default="site", choices=SPIDERS)
    parser.add_argument("--source-id")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--max-pages", type=int)
    args = parser.parse_args(argv)
    try:
        summary = run_crawl(
            load_settings(),
            args.urls,
            spider=args.spider,
            depth=args.depth,
            max_pages=args.max_pages,
            source_id=args.source_id,
            log_level="INFO",
        )
    except MonitorError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write(json.dumps(summary.to_json()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
