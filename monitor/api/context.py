"""What every request handler reaches: the opened monitor, the job dispatcher, the session
signer, the metrics registry, and the dependencies that authenticate the caller."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from monitor.accounts import Account, AccountScope, authenticate
from monitor.api.sessions import COOKIE, SessionSigner
from monitor.app import Monitor
from monitor.errors import MonitorError, NotFound, describe
from monitor.jobs import FAILED, Job, run_job, runners_for

log = logging.getLogger(__name__)

JOB_TASK = "workers.jobs.run_job"


class JobDispatcher:
    """Runs jobs on the Celery workers when ``redis_url`` is set, else in a background thread."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.queued = monitor.settings.redis_url is not None
        self._celery: Any = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "workers" if self.queued else "in-process"

    def submit(self, job: Job) -> Job:
        if self.queued:
            try:
                if self._celery is None:
                    from workers.app import create_celery

                    self._celery = create_celery(self.monitor.settings)
                queue = "crawl" if job.kind == "scan" else "analyse"
                self._celery.send_task(JOB_TASK, args=[job.id], queue=queue)
            except Exception as exc:  # broker unreachable: the job cannot run, say so on it
                log.error("could not queue job %s: %s", job.id, exc)
                return self.monitor.accounts.finish_job(
                    job.id, status=FAILED, result=None, error=f"queue_unavailable: {type(exc).__name__}"
                )
            return job
        thread = threading.Thread(target=self._run, args=(job.id,), name=f"job-{job.id}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return job

    def _run(self, job_id: str) -> None:
        try:
            run_job(job_id, jobs=self.monitor.accounts, runners=runners_for(self.monitor))
        except MonitorError as exc:
            log.error("job %s could not be recorded: %s", job_id, describe(exc))

    def join(self, timeout: float | None = None) -> None:
        """Wait for the in-process jobs (tests, shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)


@dataclass
class ApiContext:
    monitor: Monitor
    signer: SessionSigner
    dispatcher: JobDispatcher
    metrics: CollectorRegistry
    extra: dict[str, Any] = field(default_factory=dict)

    def scope(self, account: Account) -> AccountScope:
        mon = self.monitor
        return AccountScope(
            account=account,
            accounts=mon.accounts,
            registry=mon.registry,
            findings=mon.discovery,
            discovery=mon.discovery,
            alerts=mon.alert_store,
        )


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


Context = Annotated[ApiContext, Depends(context)]

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer mk_...`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (alternative).")


def api_scope(
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> AccountScope:
    """The caller's account, from the API key (401 without a valid one)."""
    key = credentials.credentials if credentials is not None else header_key
    found = authenticate(ctx.monitor.accounts, key) if key else None
    if found is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid API key is needed (Authorization: Bearer mk_...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return ctx.scope(found[0])


Scope = Annotated[AccountScope, Depends(api_scope)]


def session_scope(request: Request, ctx: ApiContext) -> AccountScope | None:
    """The dashboard's account, from the session cookie (``None`` when not logged in)."""
    session = ctx.signer.read(request.cookies.get(COOKIE))
    if session is None or not ctx.monitor.accounts.key_is_live(session.key_id, session.account_id):
        return None
    try:
        account = ctx.monitor.accounts.get_account(session.account_id)
    except NotFound:
        return None
    return ctx.scope(account)
