"""The Celery application: ``create_celery(settings)``; ``celery -A workers worker`` uses ``workers.app``.

Queues by kind of work, routed by task name: ``crawl`` (crawls of watched sources and the
beat job that finds them), ``analyse`` (candidate analysis and the sweep) and ``alert``
(alerts of new findings and their sweep, rechecks, the daily digest). Tasks are acknowledged
late and rejected back to the queue when their worker dies (they are idempotent); one task at
a time per worker process. A worker lowers its own priority when it starts
(``discovery.worker_nice``), so the analyses it runs give way to a crawl or the API on the same
machine.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_init

from monitor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
QUEUES = ("crawl", "analyse", "alert")
TASK_ROUTES = {
    "workers.tasks.crawl_*": {"queue": "crawl"},
    "workers.tasks.analyse_*": {"queue": "analyse"},
    "workers.tasks.sweep_*": {"queue": "analyse"},
    "workers.tasks.alert_*": {"queue": "alert"},
}


def create_celery(settings: Settings) -> Celery:
    """A Celery app over ``settings.redis_url`` (Redis) with the monitor's tasks and beat schedule."""
    d, a = settings.discovery, settings.alerts
    app = Celery(
        "monitor", broker=settings.redis_url or DEFAULT_BROKER, include=["workers.tasks", "workers.jobs"]
    )
    conf: dict[str, Any] = {
        "task_default_queue": "analyse",
        "task_routes": TASK_ROUTES,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_connection_timeout": 5,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_transport_options": {
            "visibility_timeout": d.visibility_timeout,
            "socket_timeout": 15,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
        },
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        "task_annotations": {
            "workers.tasks.analyse_candidate": {"max_retries": d.max_retries},
            "workers.tasks.analyse_candidates": {"max_retries": d.max_retries},
        },
        "beat_schedule": {
            "crawl-due-sources": {"task": "workers.tasks.crawl_due_sources", "schedule": d.watch_every},
            "sweep-pending": {"task": "workers.tasks.sweep_pending", "schedule": d.sweep_every},
            "alert-sweep": {"task": "workers.tasks.alert_sweep", "schedule": a.sweep_every},
        },
        "beat_schedule_filename": str(settings.home / "celerybeat-schedule"),
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }
    if a.recheck_every > 0:  # look for due rechecks at least hourly
        conf["beat_schedule"]["recheck-due"] = {
            "task": "workers.tasks.alert_recheck_due",
            "schedule": min(a.recheck_every, 3600.0),
        }
    if a.digest:
        conf["beat_schedule"]["daily-digest"] = {
            "task": "workers.tasks.alert_digest",
            "schedule": crontab(minute=0, hour=a.digest_hour),
        }
    app.conf.update(conf)
    app.conf.monitor_settings = settings
    return app


def lower_priority(niceness: int) -> int:
    """Make this process at least ``niceness`` nice (never less nice: only root may raise a
    priority). Returns the niceness it has now; 0 where the platform has no niceness."""
    if not hasattr(os, "nice"):
        return 0
    current = os.nice(0)
    if niceness > current:
        current = os.nice(niceness - current)
    return current


@worker_init.connect(dispatch_uid="monitor.workers.lower_priority")
def _lower_worker_priority(sender: Any = None, **_: Any) -> None:
    """Celery's ``worker_init`` (main process, before the pool's processes are forked, so they
    inherit it): apply ``discovery.worker_nice`` of the worker's app."""
    settings = getattr(getattr(getattr(sender, "app", None), "conf", None), "monitor_settings", None)
    if isinstance(settings, Settings) and settings.discovery.worker_nice > 0:
        now = lower_priority(settings.discovery.worker_nice)
        log.info("worker runs at niceness %d (discovery.worker_nice)", now)
