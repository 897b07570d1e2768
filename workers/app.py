"""The Celery application: ``create_celery(settings)``; ``celery -A workers worker`` uses ``workers.app``.

Queues by kind of work, routed by task name: ``crawl`` (crawls of watched sources and the
beat job that finds them), ``analyse`` (candidate analysis and the sweep) and ``alert``
(alerts of new findings and their sweep, rechecks, the daily digest). Tasks are acknowledged
late and rejected back to the queue when their worker dies (they are idempotent); one task at
a time per worker process.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab

from monitor.settings import Settings

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
