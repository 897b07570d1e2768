"""The API's jobs on a real worker: with a broker the API queues the job, a Celery worker
(its own process, real Redis) runs it and records the result the API then reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.app import open_monitor
from tests.fixtures.services import RedisServer, WorkerProcess, monitor_env
from tests.fixtures.site import registered_work
from tests.monitor.api.conftest import china_work, make_settings, new_tenant


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_batch_upload_job_runs_on_the_worker(tmp_path: Path, redis_server: RedisServer) -> None:
    home = tmp_path / "home"
    mon = open_monitor(make_settings(home, redis_url=redis_server.url))
    worker = WorkerProcess(monitor_env(home, redis_server.url), "jobs", tmp_path).start()
    try:
        with TestClient(create_app(mon)) as client:
            assert client.get("/health").json()["jobs"] == "workers"
            t = new_tenant(mon, "queued")
            files = [("files", ("a.jpg", registered_work())), ("files", ("b.jpg", china_work()))]
            response = client.post("/api/works", headers=t.headers, files=files, data={"title": "batch"})
            assert response.status_code == 202, response.text
            job_id = response.json()["job"]["job_id"]
            deadline = time.monotonic() + 60
            while True:
                job = client.get(f"/api/jobs/{job_id}", headers=t.headers).json()
                if job["status"] in ("finished", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert job["status"] == "finished", (job, worker.output()[-3000:])
            assert [i["status"] for i in job["result"]["items"]] == ["ok", "ok"]
            assert client.get("/api/works?q=batch", headers=t.headers).json()["total"] == 2
            assert "workers.jobs.run_job" in worker.output()
    finally:
        worker.stop()
