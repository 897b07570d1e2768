"""Jobs: long work asked for through the API (scan these URLs now, register this batch).

A job is written ``queued`` and its id returned at once; :func:`run_job` then runs it — on a
Celery worker (``workers.jobs.run_job``) when ``MONITOR_REDIS_URL`` is set, else in a
background thread of the API process — and records ``running``, the progress, and
``finished`` or ``failed`` with its result. Moving out of ``queued`` is a conditional update,
so a job delivered twice runs once.

Kinds:

* ``scan``: one crawl of the given URLs (spider ``urls`` by default: just these pages or
  images) in a child process (``python -m crawlers.runner``; Twisted's reactor starts once per
  process). Candidates and findings are stored as for any crawl; with a broker their analysis
  goes on in the workers after the job is done.
* ``register``: the files of a batch upload, spooled under ``MONITOR_HOME/spool/<job id>``,
  registered one by one and made the account's; the spool is removed afterwards.

The storage port is :class:`JobStore` (SQL in ``monitor.registry.SqlAccountStore``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, SecretStr

from monitor.errors import MonitorError, describe

if TYPE_CHECKING:
    from monitor.app import Monitor
    from monitor.services import RegisterOptions
    from monitor.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "FAILED",
    "FINISHED",
    "QUEUED",
    "RUNNING",
    "Job",
    "JobStore",
    "run_job",
    "settings_env",
]

QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"
KINDS = ("scan", "register")


@dataclass(frozen=True, kw_only=True)
class Job:
    id: str
    account_id: str
    kind: str
    status: str
    params: dict[str, Any]
    created_at: datetime
    result: dict[str, Any] | None = None
    error: str | None = None
    done: int = 0
    total: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in (FINISHED, FAILED)

    def to_json(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k != "files"}
        if "files" in self.params:
            params["files"] = [f.get("filename") for f in self.params["files"]]
        return {
            "job_id": self.id,
            "kind": self.kind,
            "status": self.status,
            "params": params,
            "done": self.done,
            "total": self.total,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class JobStore(Protocol):
    def add_job(self, account_id: str, kind: str, params: dict[str, Any], *, total: int) -> Job: ...

    def get_job(self, job_id: str) -> Job:
        """The job, or :class:`~monitor.errors.NotFound`."""
        ...

    def account_job(self, account_id: str, job_id: str) -> Job | None: ...

    def list_jobs(self, account_id: str, *, limit: int | None = None) -> list[Job]: ...

    def start_job(self, job_id: str) -> bool:
        """``queued`` -> ``running``; ``False`` when the job was not queued (already taken)."""
        ...

    def progress_job(self, job_id: str, *, done: int, result: dict[str, Any] | None = None) -> None: ...

    def finish_job(
        self, job_id: str, *, status: str, result: dict[str, Any] | None, error: str | None
    ) -> Job: ...


#: A job runner: the job, and a callback to record progress (done, partial result).
Runner = Callable[[Job, Callable[[int, dict[str, Any] | None], None]], dict[str, Any]]


def run_job(job_id: str, *, jobs: JobStore, runners: dict[str, Runner]) -> Job:
    """Run a queued job once; a job already taken (delivered twice) is returned as it is."""
    if not jobs.start_job(job_id):
        return jobs.get_job(job_id)
    job = jobs.get_job(job_id)
    runner = runners.get(job.kind)
    if runner is None:
        return jobs.finish_job(job_id, status=FAILED, result=None, error=f"unknown job kind {job.kind!r}")

    def progress(done: int, result: dict[str, Any] | None = None) -> None:
        jobs.progress_job(job_id, done=done, result=result)

    try:
        result = runner(job, progress)
    except MonitorError as exc:
        return jobs.finish_job(job_id, status=FAILED, result=None, error=describe(exc))
    except Exception as exc:  # a job must end, whatever happened; the log keeps the traceback
        log.exception("job %s failed", job_id)
        return jobs.finish_job(job_id, status=FAILED, result=None, error=f"error: {type(exc).__name__}")
    return jobs.finish_job(job_id, status=FINISHED, result=result, error=None)


# ------------------------------------------------------------------ runners


def runners_for(monitor: Monitor) -> dict[str, Runner]:
    """The runners of every job kind, over one opened monitor."""
    return {"scan": lambda job, progress: run_scan(job, monitor.settings), "register": _register(monitor)}


def spool_dir(settings: Settings, job_id: str) -> Path:
    return settings.home / "spool" / job_id


def run_scan(job: Job, settings: Settings) -> dict[str, Any]:
    """One crawl of ``params.urls`` in a child process; returns the crawl's id and size."""
    from monitor.errors import ConfigError

    p = job.params
    command = [sys.executable, "-m", "crawlers.runner", "--spider", str(p.get("spider") or "urls")]
    if p.get("depth") is not None:
        command += ["--depth", str(int(p["depth"]))]
    if p.get("max_pages") is not None:
        command += ["--max-pages", str(int(p["max_pages"]))]
    command += [str(u) for u in p["urls"]]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env=settings_env(settings),
            timeout=settings.api.scan_timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise MonitorError(f"the scan took longer than {settings.api.scan_timeout:.0f} s") from exc
    if done.returncode != 0:
        log.error("scan job %s failed (exit %d): %s", job.id, done.returncode, done.stderr[-2000:])
        last = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        message = last[-1].removeprefix("error:").strip() if last else "the crawler failed"
        raise ConfigError(message) if done.returncode == 2 else MonitorError(message)
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    return {
        "crawl_id": summary.get("crawl_id"),
        "mode": summary.get("mode"),
        "pages": summary.get("pages", 0),
        "images": summary.get("candidates", 0),
    }


def _register(monitor: Monitor) -> Runner:
    def run(job: Job, progress: Callable[[int, dict[str, Any] | None], None]) -> dict[str, Any]:
        p = job.params
        folder = spool_dir(monitor.settings, job.id)
        items: list[dict[str, Any]] = []
        try:
            for n, entry in enumerate(p.get("files", []), start=1):
                path = folder / entry["spool"]
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    items.append({"filename": entry.get("filename"), "status": "error", "error": str(exc)})
                    continue
                line = register_upload(
                    monitor,
                    job.account_id,
                    data,
                    filename=entry.get("filename") or entry["spool"],
                    title=p.get("title"),
                    owner=p.get("owner"),
                    options=p.get("options") or {},
                )
                items.append(line)
                progress(n, {"items": items})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {"items": items}

    return run


# ------------------------------------------------------------------ registering for an account

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None, fallback: str = "upload") -> str:
    """A file name with no directory part and only harmless characters (at most 100)."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    cleaned = _UNSAFE.sub("_", base).strip("._")[:100]
    return cleaned or fallback


def register_options(options: dict[str, Any], out_dir: Path) -> RegisterOptions:
    """The registration options of an API request (the CLI's flags, as JSON)."""
    from monitor.services import RegisterOptions

    box = options.get("visible_mark")
    return RegisterOptions(
        watermark=bool(options.get("watermark")),
        channels=tuple(str(c) for c in options.get("channels") or ()),
        out_dir=out_dir,
        visible_mark=tuple(int(v) for v in box) if box else None,  # type: ignore[arg-type]
        add_visible_mark=options.get("add_visible_mark") or None,
        visible_mark_corner=str(options.get("corner") or "br"),
    )


def register_upload(
    monitor: Monitor,
    account_id: str,
    data: bytes,
    *,
    filename: str,
    title: str | None,
    owner: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Register uploaded bytes and make the work the account's (with the account's own title,
    owner and file name; the shared work record gets none of them). One JSON-able line back."""
    from monitor.services import register_bytes

    name = safe_filename(filename)
    out_dir = monitor.settings.home / "published" / account_id
    # The shared work record (and its dossier) gets a name that says nothing about the account.
    neutral = f"upload-{hashlib.sha256(data).hexdigest()[:16]}{Path(name).suffix.lower()[:8]}"
    result = register_bytes(
        data,
        path=neutral,
        registry=monitor.registry,
        blobs=monitor.blobs,
        settings=monitor.settings,
        title="",
        owner=None,
        options=register_options(options, out_dir),
        steps=monitor.registration_steps,
    )
    line: dict[str, Any] = {
        "filename": filename,
        "status": result.status,
        "error": result.error,
        "work_id": None,
        "created": False,
    }
    if result.work is not None:
        created = monitor.accounts.link_work(
            account_id, result.work.id, title=title or Path(name).stem, owner=owner, filename=filename
        )
        line.update(work_id=result.work.id, sha256=result.work.sha256, created=created)
        copies = result.extra.get("copies") or (
            [{"channel": None, "copy_id": result.extra["copy_id"]}] if result.extra.get("copy_id") else []
        )
        line["copies"] = [{"channel": c.get("channel"), "copy_id": c.get("copy_id")} for c in copies]
    return line


# ------------------------------------------------------------------ child processes


def _env_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def _flatten(model: BaseModel, prefix: str, out: dict[str, str]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            _flatten(value, key + "__", out)
            continue
        text = _env_value(value.resolve() if isinstance(value, Path) else value)
        if text is not None:
            out[key] = text


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that must see exactly these settings: this
    process's environment without its ``MONITOR_*`` variables, plus every setting as one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    values: dict[str, str] = {}
    _flatten(settings, "MONITOR_", values)
    env.update(values)
    return env
