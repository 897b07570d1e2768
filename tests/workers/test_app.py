"""The Celery app built from the settings: routes and beat schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from celery.schedules import crontab

from monitor.settings import Settings
from tests.fixtures.services import REPO
from workers.app import create_celery


def test_beat_runs_the_alert_sweep_and_only_the_rechecks_and_digest_turned_on(tmp_path: Path) -> None:
    default = create_celery(Settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0")).conf.beat_schedule
    assert "recheck-due" in default  # takedown tracking is on unless turned off
    plain = create_celery(
        Settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0", alerts={"recheck_every": 0})
    ).conf.beat_schedule
    assert plain["alert-sweep"] == {"task": "workers.tasks.alert_sweep", "schedule": 300.0}
    assert "recheck-due" not in plain and "daily-digest" not in plain

    settings = Settings(
        home=tmp_path,
        redis_url="redis://127.0.0.1:1/0",
        alerts={"recheck_every": 86400, "digest": True, "digest_hour": 7, "sweep_every": 60},
    )
    app = create_celery(settings)
    schedule = app.conf.beat_schedule
    assert schedule["alert-sweep"]["schedule"] == 60
    assert schedule["recheck-due"] == {"task": "workers.tasks.alert_recheck_due", "schedule": 3600.0}
    assert schedule["daily-digest"]["task"] == "workers.tasks.alert_digest"
    assert schedule["daily-digest"]["schedule"] == crontab(minute=0, hour=7)
    # Every alert task is routed to the alert queue.
    for name in ("alert_finding", "alert_sweep", "alert_recheck_due", "alert_recheck", "alert_digest"):
        assert app.amqp.router.route({}, f"workers.tasks.{name}")["queue"].name == "alert"


def test_lower_priority_makes_the_process_nicer_and_never_less_nice() -> None:
    # In a child process: niceness cannot be taken back without root.
    code = "from workers.app import lower_priority as p; print(p(5), p(3), p(7))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    base = os.nice(0)
    assert done.stdout.split() == [str(max(base, 5)), str(max(base, 5)), str(max(base, 7))]
