"""Scrapy settings derived from the monitor's settings (one source of truth for both)."""

from __future__ import annotations

from typing import Any

from scrapy.settings import default_settings as scrapy_defaults

from monitor.errors import ConfigError
from monitor.settings import Settings

#: Where each component sits in Scrapy's chains (lower = closer to the engine).
ITEM_PIPELINES = {
    "crawlers.pipelines.ValidatePipeline": 100,
    "crawlers.pipelines.DedupePipeline": 200,
    # Capture, store and enqueue: handed to the crawl's writer thread (crawlers.pipelines).
    "crawlers.pipelines.StoreCandidatePipeline": 400,
}
DOWNLOADER_MIDDLEWARES = {
    # Before robots.txt (100) so not even robots.txt is fetched from a refused address.
    "crawlers.middlewares.AddressPolicyMiddleware": 50,
    # After decompression (590) and redirects (600) in the response chain: sees what the spider sees.
    "crawlers.middlewares.WarcCaptureMiddleware": 560,
}

#: Scrapy 2.19 renamed DNS_RESOLVER (now deprecated) to TWISTED_DNS_RESOLVER.
DNS_RESOLVER_SETTING = (
    "TWISTED_DNS_RESOLVER" if hasattr(scrapy_defaults, "TWISTED_DNS_RESOLVER") else "DNS_RESOLVER"
)


def scrapy_settings(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Scrapy's settings for a crawl under ``settings`` (polite and safe by default)."""
    d = settings.discovery
    values: dict[str, Any] = {
        "BOT_NAME": "image-infringement-monitor",
        "SPIDER_MODULES": ["crawlers.spiders"],
        "NEWSPIDER_MODULE": "crawlers.spiders",
        "USER_AGENT": settings.user_agent,
        "ROBOTSTXT_OBEY": d.obey_robots,
        "AUTOTHROTTLE_ENABLED": d.autothrottle,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": d.autothrottle_target_concurrency,
        "AUTOTHROTTLE_START_DELAY": max(d.download_delay, 0.1),
        "DOWNLOAD_DELAY": d.download_delay,
        "CONCURRENT_REQUESTS": d.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": d.concurrency_per_domain,
        # Outputs of one callback processed at once: a page yields a few images and links, and
        # Scrapy starts this many asyncio tasks per response whatever it yields (default 100).
        "CONCURRENT_ITEMS": 16,
        "DOWNLOAD_TIMEOUT": settings.fetch_timeout,
        "DOWNLOAD_MAXSIZE": settings.fetch_max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_TIMES": 2,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "DEPTH_PRIORITY": 1,  # breadth first: the pages near the start come first
        "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        "ITEM_PIPELINES": dict(ITEM_PIPELINES),
        "DOWNLOADER_MIDDLEWARES": dict(DOWNLOADER_MIDDLEWARES),
        # The address policy again on every DNS answer used to connect (no DNS rebinding).
        DNS_RESOLVER_SETTING: "crawlers.resolver.PolicyResolver",
        "EXTENSIONS": {"crawlers.middlewares.CrawlLimits": 500},
        "CRAWL_MAX_BYTES": d.max_bytes,
        "MONITOR_SETTINGS": settings,
    }
    if d.distributed:
        if not settings.redis_url:
            raise ConfigError("discovery.distributed needs MONITOR_REDIS_URL (the shared scheduler)")
        values.update(
            {
                # scrapy-redis: every crawler process shares one request queue and one dupefilter.
                "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
                "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
                "SCHEDULER_PERSIST": True,
                "SCHEDULER_IDLE_BEFORE_CLOSE": 5,
                "SCHEDULER_QUEUE_KEY": "monitor:%(spider)s:requests",
                "SCHEDULER_DUPEFILTER_KEY": "monitor:%(spider)s:dupefilter",
                "REDIS_URL": settings.redis_url,
            }
        )
    values.update(overrides)
    return values
