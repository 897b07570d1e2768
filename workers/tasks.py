"""Thin tasks: ids in, a service call inside (``monitor.discovery``). Names are fixed forever
(queued messages outlive deployments) and route the task to its queue (``workers.app``)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import Celery, Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from monitor import discovery
from monitor.alerts import email_channel_from_settings, send_digest, unalerted_findings
from monitor.errors import AnalysisBusy, FetchTimeout, NotFound, RegistryUnavailable
from monitor.matching import Matcher
from monitor.recheck import findings_due
from monitor.settings import Settings
from workers.messages import queue_analyses

log = logging.getLogger(__name__)

#: Faults worth a retry with backoff; anything else is recorded once.
TRANSIENT = (RegistryUnavailable, AnalysisBusy, FetchTimeout)


class _Runtime:
    """The adapters of one worker process, built on its first task (after the fork)."""

    def __init__(self, settings: Settings) -> None:
        from monitor.app import open_monitor

        self.settings = settings
        self.monitor = open_monitor(settings)

    def matcher(self) -> Matcher:
        """The matcher, with the works registered since the last task added to it."""
        return self.monitor.matcher


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


def _analysis_services(app: Celery) -> discovery.AnalysisServices:
    """What the analysis services take besides the ids: this worker process's monitor parts,
    with a matcher kept up to date with the registered works."""
    rt = runtime(app)
    return rt.monitor.analysis_services(matcher=rt.matcher)


def _analyse(app: Celery, candidate_id: str) -> dict[str, Any]:
    """Analyse one stored candidate, then queue the alerts of its findings."""
    try:
        outcome = discovery.analyse_candidate(candidate_id, _analysis_services(app))
    except NotFound:
        log.warning("candidate %s does not exist (any more): nothing to analyse", candidate_id)
        return {"candidate_id": candidate_id, "status": "missing"}
    # The findings are committed: now their alerts (idempotent, so a redelivery queues harmless
    # duplicates; a message lost here is picked up by ``alert_sweep``).
    queue_alerts(app, [f.id for f in outcome.findings])
    return {
        "candidate_id": candidate_id,
        "status": outcome.candidate.status,
        "analysed": outcome.analysed,
        "findings": [f.id for f in outcome.findings],
    }


@shared_task(bind=True, name="workers.tasks.analyse_candidate", **_RETRYING)
def analyse_candidate(self: Task, candidate_id: str) -> dict[str, Any]:
    """Analyse one stored candidate (idempotent: a second delivery changes nothing)."""
    return _analyse(self.app, candidate_id)


@dataclass
class BatchOutcome:
    """What :func:`analyse_each` did: a result per candidate done, the ids to try again later
    (transient faults) and the last of those faults."""

    done: list[dict[str, Any]] = field(default_factory=list)
    again: list[str] = field(default_factory=list)
    fault: Exception | None = None


def analyse_each(candidate_ids: Sequence[str], analyse: Callable[[str], dict[str, Any]]) -> BatchOutcome:
    """Call ``analyse`` on each id in turn. A transient fault (:data:`TRANSIENT`) puts the id
    on the list to retry; any other error is logged and recorded once (as the one-candidate
    task would), and the batch goes on with the next id."""
    outcome = BatchOutcome()
    for candidate_id in dict.fromkeys(candidate_ids):
        try:
            outcome.done.append(analyse(candidate_id))
        except TRANSIENT as exc:
            outcome.again.append(candidate_id)
            outcome.fault = exc
        except Exception as exc:
            log.exception("analysis of candidate %s failed", candidate_id)
            outcome.done.append({"candidate_id": candidate_id, "status": "failed", "error": repr(exc)[:300]})
    return outcome


def _backoff(task: Task) -> float:
    """Seconds before the next try, as ``retry_backoff`` computes them for the other tasks."""
    return float(
        get_exponential_backoff_interval(factor=1, retries=task.request.retries, maximum=60, full_jitter=True)
    )


@shared_task(
    bind=True,
    name="workers.tasks.analyse_candidates",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=8,
)
def analyse_candidates(self: Task, candidate_ids: list[str]) -> dict[str, Any]:
    """Analyse several stored candidates together (:func:`monitor.discovery.analyse_candidates`:
    each image once, a few transactions for the batch); idempotent, so a redelivered batch
    changes nothing. A transient database fault retries the batch; candidates whose bytes
    another worker is analysing are retried on their own, with backoff. Should the batch fail
    otherwise, each candidate is analysed by itself, so one bad candidate holds no other back.
    """
    try:
        batch = discovery.analyse_candidates(candidate_ids, _analysis_services(self.app))
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=_backoff(self)) from exc
    except Exception:
        log.exception(
            "batch analysis of %d candidate(s) failed: analysing them one by one", len(candidate_ids)
        )
        one_by_one = analyse_each(candidate_ids, lambda candidate_id: _analyse(self.app, candidate_id))
        if one_by_one.again:
            raise self.retry(
                args=[one_by_one.again], exc=one_by_one.fault, countdown=_backoff(self)
            ) from None
        return {"candidates": one_by_one.done}
    for candidate_id in batch.missing:
        log.warning("candidate %s does not exist (any more): nothing to analyse", candidate_id)
    # The findings are committed: now their alerts (see ``analyse_candidate``).
    queue_alerts(self.app, [f.id for outcome in batch.outcomes.values() for f in outcome.findings])
    if batch.busy:
        busy = AnalysisBusy(f"{len(batch.busy)} candidate(s) have bytes another worker is analysing")
        raise self.retry(args=[batch.busy], exc=busy, countdown=_backoff(self))
    return {
        "candidates": [
            {
                "candidate_id": candidate_id,
                "status": outcome.candidate.status,
                "analysed": outcome.analysed,
                "findings": [f.id for f in outcome.findings],
            }
            for candidate_id, outcome in batch.outcomes.items()
        ],
        "missing": batch.missing,
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
    unqueued = queue_analyses(self.app, ids)
    if ids:
        log.info("sweep: requeued %d pending candidate(s)", len(ids) - len(unqueued))
    return len(ids) - len(unqueued)


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
