"""``SqlCopyRegistry``: the :class:`~monitor.watermark.copies.CopyRegistry` port in SQL.

One row per marked publication copy, unique per ``(work, channel)``: a concurrent second
insert for the same pair hits the constraint, rolls back and returns the winner's row, so a
work never gets two copy ids for one channel. Rows never leave this module.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.errors import NotFound, RegistryError
from monitor.registry._store import SqlStore, _reason
from monitor.registry.models import CopyRow
from monitor.watermark.copies import NewCopy, PublishedCopy


def _to_copy(row: CopyRow) -> PublishedCopy:
    return PublishedCopy(
        id=row.id,
        work_id=row.work_id,
        channel=row.channel,
        base_sha256=row.base_sha256,
        marked_sha256=row.marked_sha256,
        path=row.path,
        key_id=row.key_id,
        strength=row.strength,
        created_at=row.created_at,
    )


class SqlCopyRegistry(SqlStore):
    """Published copies in the registry's database (SQLite or PostgreSQL)."""

    _label = "copies"

    def __repr__(self) -> str:
        return f"SqlCopyRegistry({self._engine.url.render_as_string()!r})"

    def add(self, copy: NewCopy) -> tuple[PublishedCopy, bool]:
        existing = self.find(copy.work_id, copy.channel)
        if existing is not None:
            return existing, False
        now = datetime.now(UTC)
        values = {f.name: getattr(copy, f.name) for f in fields(NewCopy)}
        try:
            with self._sessions() as session, session.begin():
                session.execute(insert(CopyRow).values(created_at=now, updated_at=now, **values))
        except IntegrityError as exc:
            existing = self.find(copy.work_id, copy.channel)
            if existing is not None:
                return existing, False
            raise RegistryError(f"cannot record the copy ({_reason(exc)})") from exc
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot record the copy ({_reason(exc)})") from exc
        return PublishedCopy(created_at=now, **values), True

    def update(
        self, copy_id: str, *, base_sha256: str, marked_sha256: str, path: str | None, strength: float
    ) -> PublishedCopy:
        with self._session() as session, session.begin():
            done = session.execute(
                update(CopyRow)
                .where(CopyRow.id == copy_id)
                .values(
                    base_sha256=base_sha256,
                    marked_sha256=marked_sha256,
                    path=path,
                    strength=strength,
                    updated_at=datetime.now(UTC),
                )
            )
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"no published copy has id {copy_id!r}", item=copy_id)
        return self.get(copy_id)

    def get(self, copy_id: str) -> PublishedCopy:
        with self._session() as session:
            row = session.get(CopyRow, copy_id)
            if row is None:
                raise NotFound(f"no published copy has id {copy_id!r}", item=copy_id)
            return _to_copy(row)

    def find(self, work_id: str, channel: str) -> PublishedCopy | None:
        with self._session() as session:
            row = session.scalars(
                select(CopyRow).where(CopyRow.work_id == work_id, CopyRow.channel == channel)
            ).one_or_none()
            return None if row is None else _to_copy(row)

    def for_work(self, work_id: str) -> list[PublishedCopy]:
        with self._session() as session:
            rows = session.scalars(
                select(CopyRow).where(CopyRow.work_id == work_id).order_by(CopyRow.created_at, CopyRow.id)
            )
            return [_to_copy(row) for row in rows]

    def ids(self, key_id: str) -> list[str]:
        with self._session() as session:
            query = select(CopyRow.id).where(CopyRow.key_id == key_id).order_by(CopyRow.id)
            return list(session.scalars(query))
