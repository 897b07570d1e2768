"""``SqlWorkRegistry``: the :class:`~monitor.works.WorkRegistry` port on SQLAlchemy.

Each call uses its own short session; ORM rows never leave this module, callers get
:class:`~monitor.works.Work` dataclasses. SQLAlchemy errors become :class:`RegistryError`.

``seq`` is assigned inside the insert as ``max(seq) + 1``, guarded by its unique
constraint: a writer that computed the same number fails and retries. Unlike a sequence
or an autoincrement column, this makes ``seq`` order the order in which works become
visible, so an index checkpoint "everything up to seq N" never misses a work committed
late with a smaller number.
"""

from __future__ import annotations

import builtins
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.errors import RegistryError, WorkNotFound
from monitor.fingerprints import FORMAT_VERSION, WorkFingerprint
from monitor.registry._store import SqlStore, _reason
from monitor.registry.models import FingerprintRow, WorkRow
from monitor.works import NewWork, Work

#: Attempts at inserting a work before giving up (a retry follows a lost race for a ``seq``).
ADD_ATTEMPTS = 50
#: Ids per ``IN (...)`` query when loading fingerprints.
_IN_CHUNK = 500


def _to_work(row: WorkRow) -> Work:
    return Work(
        id=row.id,
        seq=row.seq,
        created_at=row.created_at,
        sha256=row.sha256,
        pixel_sha256=row.pixel_sha256,
        format=row.format,
        width=row.width,
        height=row.height,
        frames=row.frames,
        size_bytes=row.size_bytes,
        title=row.title,
        owner=row.owner,
        source_path=row.source_path,
    )


class SqlWorkRegistry(SqlStore):
    """Works and fingerprints in a SQL database (SQLite or PostgreSQL), migrated to head."""

    _label = "registry"

    def __repr__(self) -> str:
        return f"SqlWorkRegistry({self._engine.url.render_as_string()!r})"

    # ------------------------------------------------------------------ writes

    def add(self, work: NewWork, fingerprint: WorkFingerprint) -> tuple[Work, bool]:
        """Store a work; the same ``sha256`` again returns the stored work with ``created=False``.

        Race-safe across threads and processes: a losing concurrent insert hits the unique
        ``sha256`` (or ``seq``) constraint, rolls back and reads the winner.
        """
        existing = self.find_by_sha256(work.sha256)
        if existing is not None:
            return existing, False
        blob = fingerprint.to_bytes()
        values = {field.name: getattr(work, field.name) for field in fields(NewWork)}
        next_seq = select(func.coalesce(func.max(WorkRow.seq), 0) + 1).scalar_subquery()
        for attempt in range(ADD_ATTEMPTS):
            work_id = secrets.token_hex(8)
            created_at = datetime.now(UTC)
            try:
                with self._sessions() as session, session.begin():
                    seq = session.execute(
                        insert(WorkRow)
                        .values(id=work_id, seq=next_seq, created_at=created_at, **values)
                        .returning(WorkRow.seq)
                    ).scalar_one()
                    session.execute(
                        insert(FingerprintRow).values(work_id=work_id, version=FORMAT_VERSION, data=blob)
                    )
            except IntegrityError:
                existing = self.find_by_sha256(work.sha256)
                if existing is not None:
                    return existing, False
                # Lost the race for a seq (or, very rarely, an id): try again.
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            except SQLAlchemyError as exc:
                raise RegistryError(f"cannot register the work ({_reason(exc)})") from exc
            return Work(id=work_id, seq=seq, created_at=created_at, **values), True
        raise RegistryError(f"cannot register the work: no free seq after {ADD_ATTEMPTS} attempts")

    # ------------------------------------------------------------------ reads

    def get(self, work_id: str) -> Work:
        with self._session() as session:
            row = session.get(WorkRow, work_id)
            if row is None:
                raise WorkNotFound(f"no registered work has id {work_id!r}", item=work_id)
            return _to_work(row)

    def find_by_sha256(self, sha256: str) -> Work | None:
        with self._session() as session:
            row = session.scalars(select(WorkRow).where(WorkRow.sha256 == sha256)).one_or_none()
            return None if row is None else _to_work(row)

    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[Work]:
        """Works with these exact pixels (in any file format), in registration order."""
        with self._session() as session:
            rows = session.scalars(
                select(WorkRow).where(WorkRow.pixel_sha256 == pixel_sha256).order_by(WorkRow.seq)
            )
            return [_to_work(row) for row in rows]

    def count(self) -> int:
        with self._session() as session:
            return session.scalar(select(func.count()).select_from(WorkRow)) or 0

    def max_seq(self) -> int:
        """The highest ``seq`` registered, 0 when empty."""
        with self._session() as session:
            return session.scalar(select(func.coalesce(func.max(WorkRow.seq), 0))) or 0

    def fingerprints(self, work_ids: Sequence[str]) -> dict[str, WorkFingerprint]:
        """Fingerprints of the given works; unknown ids are left out."""
        wanted = builtins.list(dict.fromkeys(work_ids))
        blobs: dict[str, bytes] = {}
        with self._session() as session:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = session.execute(
                    select(FingerprintRow.work_id, FingerprintRow.data).where(
                        FingerprintRow.work_id.in_(chunk)
                    )
                )
                blobs.update((work_id, bytes(data)) for work_id, data in rows)
        return {work_id: WorkFingerprint.from_bytes(data) for work_id, data in blobs.items()}

    def iter_fingerprints(
        self, *, after_seq: int = 0, batch: int = 500
    ) -> Iterator[tuple[Work, WorkFingerprint]]:
        """Every work with ``seq > after_seq`` and its fingerprint, in ``seq`` order.

        Reads ``batch`` rows per query (keyset pagination on ``seq``); no transaction stays
        open while the caller consumes a batch.
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        last = after_seq
        while True:
            with self._session() as session:
                rows = session.execute(
                    select(WorkRow, FingerprintRow.data)
                    .join(FingerprintRow, FingerprintRow.work_id == WorkRow.id)
                    .where(WorkRow.seq > last)
                    .order_by(WorkRow.seq)
                    .limit(batch)
                ).all()
                page = [(_to_work(row), bytes(data)) for row, data in rows]
            for work, data in page:
                yield work, WorkFingerprint.from_bytes(data)
            if len(page) < batch:
                return
            last = page[-1][0].seq

    def list(self, *, limit: int | None = None, offset: int = 0) -> builtins.list[Work]:
        """Works in registration order."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("limit and offset cannot be negative")
        with self._session() as session:
            rows = session.scalars(select(WorkRow).order_by(WorkRow.seq).offset(offset).limit(limit))
            return [_to_work(row) for row in rows]
