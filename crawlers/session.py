"""What one crawler process shares between its spider, middlewares and pipelines.

:func:`session_for` builds it once per crawler from the monitor's settings: the opened
:class:`~monitor.app.Monitor`, the discovery store, the crawl record, the WARC writer and the
way candidates reach analysis — a Celery task on the ``analyse`` queue when ``redis_url`` is
set, else the crawl's own analyses (embedded mode: no server needed), in the child process of
:mod:`crawlers.analysis` or on a thread here.
"""

from __future__ import annotations

import gc
import logging
import resource
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.crawler import Crawler

from crawlers.analysis import EmbeddedAnalysis, raise_alert
from crawlers.warc import WarcFile
from monitor.alerts import unalerted_findings
from monitor.discovery import AnalysisOutcome, Crawl
from monitor.errors import MonitorError
from monitor.findings import Candidate
from monitor.settings import Settings, load_settings

if TYPE_CHECKING:
    from celery import Celery

    from monitor.app import Monitor
    from monitor.registry import SqlDiscoveryStore

log = logging.getLogger(__name__)

#: Called (from the candidate writer's threads) with each stored candidate and, embedded, its analysis.
CandidateListener = Callable[[Candidate, "AnalysisOutcome | None", bool], None]


class CrawlSession:
    def __init__(self, crawler: Crawler, settings: Settings) -> None:
        from monitor.app import open_monitor

        self.crawler = crawler
        self.settings = settings
        self.monitor: Monitor = open_monitor(settings)
        self.store: SqlDiscoveryStore = self.monitor.discovery
        self.crawl: Crawl | None = None
        self.warc: WarcFile | None = None
        self.listener: CandidateListener | None = crawler.settings.get("MONITOR_LISTENER")
        self.source_id: str | None = crawler.settings.get("MONITOR_SOURCE_ID")
        self.queued = settings.redis_url is not None
        self._celery: Celery | None = None
        self._started: tuple[float, float, float] | None = None
        self._children_cpu_at_start = 0.0
        self._gc_frozen = 0  # objects frozen when the crawl opened (0: not by this session)
        self.analysis: EmbeddedAnalysis | None = None
        if not self.queued:
            self.analysis = EmbeddedAnalysis(self.monitor, process=settings.discovery.analysis_process)
        self.counts = {
            "candidates": 0,
            "new_candidates": 0,
            "queued": 0,
            "unqueued": 0,
            "findings": 0,
            "alerts": 0,
            "lost": 0,
        }
        self._counts_lock = threading.Lock()
        if self.queued:
            self._prepare_queue()
        crawler.signals.connect(self._opened, signal=signals.spider_opened)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)

    # ------------------------------------------------------------------ lifecycle

    def _opened(self, spider: Any) -> None:
        self._started = _clocks()
        self._children_cpu_at_start = _children_cpu()
        urls = [str(u) for u in getattr(spider, "start_urls", [])]
        self.crawl = self.store.start_crawl(spider.name, urls, source_id=self.source_id)
        if self.settings.discovery.warc:
            path = self.settings.warc_dir / f"{self.crawl.id}.warc.gz"
            self.warc = WarcFile(path, relative_to=self.settings.home, software=self.settings.user_agent)
        if self.analysis is not None:  # the analysis process (or the matcher here) gets ready meanwhile
            self.analysis.start()
        log.info("crawl %s started (%s mode)", self.crawl.id, "queued" if self.queued else "embedded")
        self._gc_frozen = _freeze_gc()

    def _closed(self, spider: Any, reason: str) -> None:
        if self._gc_frozen:
            gc.unfreeze()
        if self.warc is not None:
            self.warc.close()
        if self.analysis is not None:  # the pipelines have closed: every analysis asked for is done
            self.analysis.close()
            self.alert_missed()
        stats: dict[str, Any] = dict(self.counts)
        if self.analysis is not None:
            stats["analysis"] = self.analysis.mode
            if self.analysis.lost:
                stats["analysis_lost"] = self.analysis.lost
        collected = self.crawler.stats.get_stats() if self.crawler.stats else {}
        for key in ("response_received_count", "downloader/response_bytes", "item_scraped_count"):
            if key in collected:
                stats[key.replace("/", "_")] = collected[key]
        stats["pages"] = getattr(spider, "pages_parsed", 0)
        stats["gc_frozen"] = self._gc_frozen
        now = _clocks()
        # Over the same window: wall time, CPU time of the process (every thread) and of the reactor's.
        elapsed, cpu, reactor_cpu = (round(b - a, 3) for a, b in zip(self._started or now, now, strict=True))
        stats.update(elapsed_seconds=elapsed, cpu_seconds=cpu, reactor_cpu_seconds=reactor_cpu)
        if self.analysis is not None and self.analysis.pid is not None:  # the child's, once it has ended
            stats["analysis_cpu_seconds"] = round(_children_cpu() - self._children_cpu_at_start, 3)
        stats["finish_reason"] = reason
        if self.crawl is not None:
            status = "finished" if reason in ("finished", "closespider_pagecount") else f"stopped:{reason}"
            try:
                self.store.finish_crawl(self.crawl.id, status=status[:16], stats=stats)
            except MonitorError as exc:
                log.error("could not record the end of crawl %s: %s", self.crawl.id, exc)

    @property
    def crawl_id(self) -> str | None:
        return self.crawl.id if self.crawl else None

    def count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[key] = self.counts.get(key, 0) + n

    # ------------------------------------------------------------------ analysis

    def celery(self) -> Celery:
        if self._celery is None:
            from workers.app import create_celery

            self._celery = create_celery(self.settings)
        return self._celery

    def _prepare_queue(self) -> None:
        """Build the Celery app and load the broker's transport now, while the crawler starts
        (as Scrapy loads its own components), not on the first candidate in the middle of the
        crawl. Nothing connects yet: an unreachable broker is met, and survived, when queueing."""
        try:
            import workers.messages  # noqa: F401 - imported here so the crawl does not pay for it

            connection = self.celery().connection_for_write()  # resolves (imports) the transport
            connection.release()
        except Exception as exc:  # met again, and reported, when the first candidates are queued
            log.warning("could not prepare the broker connection (%s)", exc)

    def enqueue(self, candidate_id: str) -> bool:
        """Queue the analysis of a stored candidate; ``False`` when the broker cannot be reached
        (the candidate stays ``pending`` and the sweep queues it later)."""
        return self.enqueue_many([candidate_id]) == 1

    def enqueue_many(self, candidate_ids: list[str]) -> int:
        """:meth:`enqueue` for several candidates: a few ids per message, all over one broker
        connection (:func:`workers.messages.queue_analyses`); how many were queued (the
        others stay ``pending`` for the sweep)."""
        if not candidate_ids:
            return 0
        from workers.messages import queue_analyses

        unqueued = queue_analyses(self.celery(), candidate_ids)
        queued = len(candidate_ids) - len(unqueued)
        self.count("queued", queued)
        if unqueued:
            self.count("unqueued", len(unqueued))
        return queued

    def analyse_here(self, candidate_ids: list[str]) -> dict[str, AnalysisOutcome]:
        """Embedded mode: analyse these candidates now, together, and alert their findings (in
        the analysis process, or here: :mod:`crawlers.analysis`); their outcomes by id. Those
        whose analysis could not be done now (a busy or unreachable database) are left out and
        stay ``pending`` for the next crawl."""
        if not candidate_ids:
            return {}
        assert self.analysis is not None, "analyse_here is for embedded crawls"
        done = self.analysis.analyse(candidate_ids)
        for warning in done.warnings:
            log.warning("%s", warning)
        self.count("findings", done.findings)
        self.count("alerts", done.alerts)
        return done.outcomes

    def alert(self, finding_id: str) -> None:
        """Embedded mode: raise (and deliver) a finding's alert now (:func:`raise_alert`)."""
        created, warning = raise_alert(self.monitor, finding_id)
        if warning is not None:
            log.warning("%s", warning)
        if created:
            self.count("alerts")

    def alert_missed(self) -> None:
        """Embedded mode, at the end of a crawl: alert every finding that has no alert yet (no
        beat sweeps for an embedded installation)."""
        try:
            missed = unalerted_findings(self.monitor.alert_store, after=0)
        except MonitorError as exc:
            log.warning("could not look for findings without an alert: %s", exc)
            return
        for finding_id in missed:
            self.alert(finding_id)

    def report(self, candidate: Candidate, outcome: AnalysisOutcome | None, created: bool) -> None:
        if self.listener is not None:
            self.listener(candidate, outcome, created)


def _clocks() -> tuple[float, float, float]:
    """Wall time, CPU time of the process, CPU time of this thread (the reactor's: Scrapy sends
    its signals on it)."""
    return time.monotonic(), time.process_time(), time.thread_time()


def _freeze_gc() -> int:
    """Move every object alive when the crawl opens (Scrapy, SQLAlchemy, the settings, the
    monitor's modules: about 200,000 of them) out of the cyclic garbage collector's sight, as
    :func:`gc.freeze` is meant for, and return how many (0 when something else froze first:
    left as it is). They live as long as the crawl, yet each full collection during the crawl
    walked them all: about 0.1 s of CPU each, one or more per 1,000 pages. What the crawl makes
    is still collected as usual; :meth:`CrawlSession._closed` unfreezes."""
    if gc.get_freeze_count():
        return 0
    gc.freeze()
    return gc.get_freeze_count()


def _children_cpu() -> float:
    """CPU time of this process's ended (and waited for) children: the analysis process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def session_for(crawler: Crawler) -> CrawlSession:
    """The crawler's session, built on first use."""
    session = getattr(crawler, "_monitor_session", None)
    if session is None:
        settings = crawler.settings.get("MONITOR_SETTINGS")
        if not isinstance(settings, Settings):
            settings = load_settings()
        session = CrawlSession(crawler, settings)
        crawler._monitor_session = session  # type: ignore[attr-defined]
    return session
