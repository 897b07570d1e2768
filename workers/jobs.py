"""The API's jobs on the workers: ``workers.jobs.run_job`` (a scan, a batch upload).

Thin like the other tasks: the job id in, :func:`monitor.jobs.run_job` inside. The API sends
scans to the ``crawl`` queue (they run a crawler child process) and uploads to ``analyse``.
A job leaves ``queued`` by a conditional update, so a redelivered message runs nothing twice.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from monitor.errors import NotFound, RegistryUnavailable
from monitor.jobs import run_job as run
from monitor.jobs import runners_for
from workers.tasks import runtime


@shared_task(
    bind=True,
    name="workers.jobs.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(RegistryUnavailable,),
    retry_backoff=2,
    max_retries=5,
)
def run_job(self: Task, job_id: str) -> dict[str, Any]:
    mon = runtime(self.app).monitor
    try:
        job = run(job_id, jobs=mon.accounts, runners=runners_for(mon))
    except NotFound:
        return {"job_id": job_id, "status": "missing"}
    return {"job_id": job.id, "status": job.status}
