"""Thin tasks: ids in, a service call inside (``monitor.discovery``). Names are fixed forever
(queued messages outlive deployments) and route the task to its queue (``workers.app``)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

from celery import Celery, Task, shared_task

from monitor import discovery
from monitor.alerts import email_channel_from_settings, send_digest, unalerted_findings
from monitor.errors import AnalysisBusy, FetchTimeout, NotFound, RegistryUnavailable
from monitor.matching import Matcher
from monitor.recheck import findings_due
from monitor.settings import Settings

log = logging.getLogger(__name__)

#: Faults worth a retry with backoff; anything else is recorded once.
TRANSIENT = (RegistryUnavailable, AnalysisBusy, FetchTimeout)


class _Runtime:
    """The adapters of one worker process, built on its first task (after the fork)."""

    def __init__(self, settings: Settings) -> None:
        from monitor.app import open_monitor

        self.settings = settings
        self.monitor = open_monitor(settings)
        self._matcher: Matcher | None = None
        self._seq = -1
        self._lock = threading.Lock()

    def matcher(self) -> Matcher:
        """The matcher, brought up to date when works were registered since it was built."""
        from monitor.services import load_matcher

        with self._lock:
            seq = self.monitor.registry.max_seq()
            if self._matcher is None or seq != self._seq:
                self._matcher = load_matcher(self.monitor.registry, self.settings)
                self._seq = seq
            return self._matcher


_runtimes: dict[int, _Runtime] = {}
_runtimes_lock = threading.Lock()


def runtime(app: Celery) -> _Runtime:
    with _runtimes_lock:
        found = _runtimes.get(id(app))
        if found is None:
            settings = app.conf.monitor_settings
            if not isinstance(settings, Settings):
                from monitor.settings import load_settings

                settings = load_settings()
            found = _runtimes[id(app)] = _Runtime(settings)
        return found


_RETRYING: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(bind=True, name="workers.tasks.analyse_candidate", **_RETRYING)
def analyse_candidate(self: Task, candidate_id: str) -> dict[str, Any]:
    """Analyse one stored candidate (idempotent: a second delivery changes nothing)."""
    rt = runtime(self.app)
    mon = rt.monitor
    try:
        outcome = discovery.analyse_candidate(
            candidate_id,
            store=mon.discovery,
            blobs=mon.blobs,
            matcher=rt.matcher,
            registry=mon.registry,
            settings=rt.settings,
            inspectors=mon.inspectors,
        )
    except NotFound:
        log.warning("candidate %s does not exist (any more): nothing to analyse", candidate_id)
        return {"candidate_id": candidate_id, "status": "missing"}
    # The findings are committed: now their alerts (idempotent, so a redelivery queues harmless
    # duplicates; a message lost here is picked up by ``alert_sweep``).
    queue_alerts(self.app, [f.id for f in outcome.findings])
    return {
        "candidate_id": candidate_id,
        "status": outcome.candidate.status,
        "analysed": outcome.analysed,
        "findings": [f.id for f in outcome.findings],
    }


ALERT_TASK = "workers.tasks.alert_finding"


def queue_alerts(app: Celery, finding_ids: list[str]) -> int:
    """Queue the alert of each finding; those that cannot be queued are left to the sweep."""
    sent = 0
    for finding_id in finding_ids:
        try:
            app.send_task(ALERT_TASK, args=[finding_id])
            sent += 1
        except Exception as exc:  # kombu/redis connection errors: alert_sweep recovers
            log.warning("could not queue the alert of finding %s (%s); the sweep will", finding_id, exc)
    return sent


@shared_task(bind=True, name="workers.tasks.alert_finding", **_RETRYING)
def alert_finding(self: Task, finding_id: str) -> dict[str, Any]:
    """Raise (and deliver) the alert of one finding; a second run is a ``duplicate``."""
    try:
        outcome = runtime(self.app).monitor.alert_finding(finding_id)
    except NotFound:
        log.warning("finding %s does not exist (any more): no alert", finding_id)
        return {"finding_id": finding_id, "status": "missing"}
    return {
        "finding_id": finding_id,
        "alert_id": outcome.alert.id,
        "status": outcome.status,
        "delivered": {d.channel: d.ok for d in outcome.deliveries},
    }


@shared_task(bind=True, name="workers.tasks.alert_sweep", **_RETRYING)
def alert_sweep(self: Task) -> int:
    """Queue the alerts of findings still without one after ``alerts.sweep_after`` seconds."""
    rt = runtime(self.app)
    ids = unalerted_findings(rt.monitor.alert_store, after=rt.settings.alerts.sweep_after)
    sent = queue_alerts(self.app, ids)
    if ids:
        log.info("alert sweep: queued %d alert(s) of findings that had none", sent)
    return sent


@shared_task(bind=True, name="workers.tasks.alert_recheck_due", **_RETRYING)
def alert_recheck_due(self: Task) -> list[str]:
    """Queue a recheck of each finding due (``alerts.recheck_every``; beat runs this)."""
    rt = runtime(self.app)
    every = rt.settings.alerts.recheck_every
    if every <= 0:
        return []
    ids = findings_due(rt.monitor.discovery, every=timedelta(seconds=every))
    for finding_id in ids:
        self.app.send_task("workers.tasks.alert_recheck", args=[finding_id])
    return ids


@shared_task(bind=True, name="workers.tasks.alert_recheck", **_RETRYING)
def alert_recheck(self: Task, finding_id: str) -> dict[str, Any]:
    """Visit a finding's page and image again and record online/removed."""
    try:
        outcome = runtime(self.app).monitor.recheck(finding_id)
    except NotFound:
        return {"finding_id": finding_id, "status": "missing"}
    return outcome.to_json()


@shared_task(bind=True, name="workers.tasks.alert_digest", **_RETRYING)
def alert_digest(self: Task) -> int:
    """Email the daily digest of the alerts not yet in one; the number of alerts in it."""
    rt = runtime(self.app)
    channel = email_channel_from_settings(rt.settings.alerts)
    if channel is None:
        log.warning("alerts.digest is on but alerts.email.host is not set: no digest sent")
        return 0
    deliveries = send_digest(rt.monitor.alert_store, channel)
    return len({d.alert_id for d in deliveries if d.ok})


@shared_task(bind=True, name="workers.tasks.sweep_pending", **_RETRYING)
def sweep_pending(self: Task) -> int:
    """Queue again the candidates left ``pending`` too long (lost messages, broker restarts)."""
    rt = runtime(self.app)
    ids = discovery.sweep_pending(rt.monitor.discovery, rt.settings)
    for candidate_id in ids:
        self.app.send_task("workers.tasks.analyse_candidate", args=[candidate_id])
    if ids:
        log.info("sweep: requeued %d pending candidate(s)", len(ids))
    return len(ids)


@shared_task(bind=True, name="workers.tasks.crawl_due_sources", **_RETRYING)
def crawl_due_sources(self: Task) -> list[str]:
    """Queue a crawl of each watched source that is due."""
    rt = runtime(self.app)
    sources = discovery.due_sources(rt.monitor.discovery)
    for source in sources:
        self.app.send_task("workers.tasks.crawl_source", args=[source.id])
    return [s.id for s in sources]


@shared_task(
    bind=True,
    name="workers.tasks.crawl_source",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(RegistryUnavailable,),
    retry_backoff=5,
    max_retries=3,
)
def crawl_source(self: Task, source_id: str) -> dict[str, Any]:
    """Crawl one watched source in a child process (Twisted's reactor starts once per process)."""
    rt = runtime(self.app)
    source = rt.monitor.discovery.get_source(source_id)
    command = [sys.executable, "-m", "crawlers.runner", "--spider", source.spider, "--source-id", source.id]
    if source.depth is not None:
        command += ["--depth", str(source.depth)]
    if source.max_pages is not None:
        command += ["--max-pages", str(source.max_pages)]
    command.append(source.url)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log.error("crawl of %s failed (exit %d): %s", source.url, done.returncode, done.stderr[-2000:])
        return {"source_id": source_id, "status": "failed", "exit_code": done.returncode}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"source_id": source_id, "status": "finished", "summary": lines[-1] if lines else None}
