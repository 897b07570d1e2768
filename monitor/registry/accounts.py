"""``SqlAccountStore``: accounts, API keys, ownership links and jobs in SQL.

Implements :class:`monitor.accounts.AccountStore` and :class:`monitor.jobs.JobStore`. Each call
is one short transaction; links are inserted with ``ON CONFLICT DO NOTHING`` (registering the
same work twice, two requests at once, leave one link), and a job leaves ``queued`` by a
conditional update (a job delivered twice runs once).

Watched sources belong to the discovery tables; :meth:`SqlAccountStore.update_source` changes a
source's period, limits or ``enabled`` flag, which the discovery store has no call for.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, insert, or_, select, update

from monitor.accounts import Account, AccountWork
from monitor.errors import ConfigError, NotFound
from monitor.jobs import QUEUED, RUNNING, Job
from monitor.registry._store import SqlStore
from monitor.registry.models import (
    AccountRow,
    AccountSourceRow,
    AccountWorkRow,
    ApiKeyRow,
    JobRow,
    SourceRow,
    WorkRow,
)
from monitor.registry.repository import _to_work

__all__ = ["SqlAccountStore"]


def _now() -> datetime:
    return datetime.now(UTC)


def _account(row: AccountRow) -> Account:
    return Account(id=row.id, name=row.name, created_at=row.created_at)


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        account_id=row.account_id,
        kind=row.kind,
        status=row.status,
        params=dict(row.params or {}),
        result=row.result,
        error=row.error,
        done=row.done,
        total=row.total,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlAccountStore(SqlStore):
    """The account tables on SQLite or PostgreSQL (migrated to head by ``upgrade_database``)."""

    _label = "account"

    # ------------------------------------------------------------------ accounts and keys

    def add_account(self, name: str) -> Account:
        values = {"id": secrets.token_hex(8), "name": name, "created_at": _now()}
        with self._tx() as session:
            if not self._insert_ignore(session, AccountRow, values):
                raise ConfigError(f"an account named {name!r} already exists")
            row = session.get(AccountRow, values["id"])
            assert row is not None
            return _account(row)

    def get_account(self, account_id: str) -> Account:
        with self._tx() as session:
            row = session.get(AccountRow, account_id)
            if row is None:
                raise NotFound(f"no account has id {account_id!r}", item=account_id)
            return _account(row)

    def find_account(self, name: str) -> Account | None:
        with self._tx() as session:
            row = session.scalars(select(AccountRow).where(AccountRow.name == name)).first()
            return _account(row) if row is not None else None

    def list_accounts(self) -> list[Account]:
        with self._tx() as session:
            rows = session.scalars(select(AccountRow).order_by(AccountRow.created_at, AccountRow.id))
            return [_account(r) for r in rows]

    def add_key(self, account_id: str, *, key_id: str, key_hash: str) -> None:
        with self._tx() as session:
            if session.get(AccountRow, account_id) is None:
                raise NotFound(f"no account has id {account_id!r}", item=account_id)
            session.execute(
                insert(ApiKeyRow).values(
                    id=key_id, account_id=account_id, key_hash=key_hash, created_at=_now(), revoked_at=None
                )
            )

    def account_for_key(self, key_id: str) -> tuple[Account, str] | None:
        with self._tx() as session:
            found = session.execute(
                select(AccountRow, ApiKeyRow.key_hash)
                .join(ApiKeyRow, ApiKeyRow.account_id == AccountRow.id)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            ).first()
            return (_account(found[0]), str(found[1])) if found is not None else None

    def key_is_live(self, key_id: str, account_id: str) -> bool:
        with self._tx() as session:
            row = session.get(ApiKeyRow, key_id)
            return row is not None and row.account_id == account_id and row.revoked_at is None

    def keys(self, account_id: str) -> list[dict[str, Any]]:
        with self._tx() as session:
            rows = session.scalars(
                select(ApiKeyRow).where(ApiKeyRow.account_id == account_id).order_by(ApiKeyRow.created_at)
            )
            return [
                {
                    "key_id": r.id,
                    "created_at": r.created_at.isoformat(),
                    "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                }
                for r in rows
            ]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as session:
            done = session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return bool(cast("CursorResult[Any]", done).rowcount)

    # ------------------------------------------------------------------ works

    def link_work(
        self, account_id: str, work_id: str, *, title: str | None, owner: str | None, filename: str | None
    ) -> bool:
        values = {
            "account_id": account_id,
            "work_id": work_id,
            "title": title,
            "owner": owner,
            "filename": filename,
            "added_at": _now(),
        }
        with self._tx() as session:
            return self._insert_ignore(session, AccountWorkRow, values)

    def _works_query(self, account_id: str, query: str | None) -> Any:
        stmt = (
            select(WorkRow, AccountWorkRow)
            .join(AccountWorkRow, AccountWorkRow.work_id == WorkRow.id)
            .where(AccountWorkRow.account_id == account_id)
        )
        text = (query or "").strip().lower()
        if text:
            pattern = f"%{_escape_like(text)}%"
            stmt = stmt.where(
                or_(
                    func.lower(AccountWorkRow.title).like(pattern, escape="\\"),
                    func.lower(AccountWorkRow.owner).like(pattern, escape="\\"),
                    func.lower(AccountWorkRow.filename).like(pattern, escape="\\"),
                    WorkRow.id.like(pattern, escape="\\"),
                    WorkRow.sha256.like(pattern, escape="\\"),
                )
            )
        return stmt

    @staticmethod
    def _account_work(work: WorkRow, link: AccountWorkRow) -> AccountWork:
        return AccountWork(
            work=_to_work(work),
            title=link.title,
            owner=link.owner,
            filename=link.filename,
            added_at=link.added_at,
        )

    def account_work(self, account_id: str, work_id: str) -> AccountWork | None:
        with self._tx() as session:
            found = session.execute(
                self._works_query(account_id, None).where(AccountWorkRow.work_id == work_id)
            ).first()
            return self._account_work(found[0], found[1]) if found is not None else None

    def account_works(
        self, account_id: str, *, query: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[AccountWork]:
        stmt = (
            self._works_query(account_id, query)
            .order_by(AccountWorkRow.added_at.desc(), WorkRow.seq.desc())
            .offset(max(0, offset))
            .limit(limit)
        )
        with self._tx() as session:
            return [self._account_work(w, link) for w, link in session.execute(stmt)]

    def count_account_works(self, account_id: str, *, query: str | None = None) -> int:
        stmt = select(func.count()).select_from(self._works_query(account_id, query).subquery())
        with self._tx() as session:
            return int(session.scalar(stmt) or 0)

    def work_ids(self, account_id: str) -> list[str]:
        with self._tx() as session:
            return list(
                session.scalars(select(AccountWorkRow.work_id).where(AccountWorkRow.account_id == account_id))
            )

    # ------------------------------------------------------------------ sources

    def link_source(self, account_id: str, source_id: str) -> bool:
        values = {"account_id": account_id, "source_id": source_id, "added_at": _now()}
        with self._tx() as session:
            return self._insert_ignore(session, AccountSourceRow, values)

    def unlink_source(self, account_id: str, source_id: str) -> bool:
        with self._tx() as session:
            row = session.get(AccountSourceRow, (account_id, source_id))
            if row is None:
                return False
            session.delete(row)
            return True

    def source_ids(self, account_id: str) -> list[str]:
        with self._tx() as session:
            return list(
                session.scalars(
                    select(AccountSourceRow.source_id).where(AccountSourceRow.account_id == account_id)
                )
            )

    def source_watchers(self, source_id: str) -> int:
        with self._tx() as session:
            stmt = select(func.count()).where(AccountSourceRow.source_id == source_id)
            return int(session.scalar(stmt) or 0)

    def update_source(
        self,
        source_id: str,
        *,
        every_seconds: int | None = None,
        depth: int | None = None,
        max_pages: int | None = None,
        enabled: bool | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if every_seconds is not None:
            values["every_seconds"] = int(every_seconds)
        if depth is not None:
            values["depth"] = int(depth)
        if max_pages is not None:
            values["max_pages"] = int(max_pages)
        if enabled is not None:
            values["enabled"] = bool(enabled)
            if enabled:
                values["next_crawl_at"] = _now()
        if not values:
            return
        with self._tx() as session:
            session.execute(update(SourceRow).where(SourceRow.id == source_id).values(**values))

    # ------------------------------------------------------------------ jobs

    def add_job(self, account_id: str, kind: str, params: dict[str, Any], *, total: int) -> Job:
        values = {
            "id": secrets.token_hex(8),
            "account_id": account_id,
            "kind": kind,
            "status": QUEUED,
            "params": params,
            "result": None,
            "error": None,
            "done": 0,
            "total": int(total),
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
        }
        with self._tx() as session:
            session.execute(insert(JobRow).values(**values))
            row = session.get(JobRow, values["id"])
            assert row is not None
            return _job(row)

    def get_job(self, job_id: str) -> Job:
        with self._tx() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job has id {job_id!r}", item=job_id)
            return _job(row)

    def account_job(self, account_id: str, job_id: str) -> Job | None:
        with self._tx() as session:
            row = session.scalars(
                select(JobRow).where(and_(JobRow.id == job_id, JobRow.account_id == account_id))
            ).first()
            return _job(row) if row is not None else None

    def list_jobs(self, account_id: str, *, limit: int | None = None) -> list[Job]:
        stmt = (
            select(JobRow)
            .where(JobRow.account_id == account_id)
            .order_by(JobRow.created_at.desc(), JobRow.id)
            .limit(limit)
        )
        with self._tx() as session:
            return [_job(r) for r in session.scalars(stmt)]

    def job_counts(self) -> dict[str, int]:
        """Jobs by status, over every account (for metrics)."""
        with self._tx() as session:
            rows = session.execute(select(JobRow.status, func.count()).group_by(JobRow.status))
            return {str(state): int(n) for state, n in rows}

    def start_job(self, job_id: str) -> bool:
        with self._tx() as session:
            done = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == QUEUED)
                .values(status=RUNNING, started_at=_now())
            )
            return bool(cast("CursorResult[Any]", done).rowcount)

    def progress_job(self, job_id: str, *, done: int, result: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"done": int(done)}
        if result is not None:
            values["result"] = result
        with self._tx() as session:
            session.execute(
                update(JobRow).where(JobRow.id == job_id, JobRow.status == RUNNING).values(**values)
            )

    def finish_job(
        self, job_id: str, *, status: str, result: dict[str, Any] | None, error: str | None
    ) -> Job:
        with self._tx() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job has id {job_id!r}", item=job_id)
            values: dict[str, Any] = {"status": status, "error": error, "finished_at": _now()}
            if result is not None:
                values["result"] = result
            if status == "finished":
                values["done"] = row.total
            session.execute(update(JobRow).where(JobRow.id == job_id).values(**values))
            session.refresh(row)
            return _job(row)
