"""``SqlDossierStore``: the dossier chain and the attribution records in SQL.

Implements :class:`~monitor.dossier.DossierStore` and
:class:`~monitor.attribution.AttributionStore`. An insert that loses a race (the same
``seq``, or the same ``(work, kind, content_hash)``) raises :class:`DossierConflict`, and
:func:`monitor.dossier.append_entry` re-reads and retries. Rows never leave this module.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.attribution import Attribution, VisibleMark, mark_json
from monitor.dossier import DossierEntry, Timestamp
from monitor.errors import DossierConflict, RegistryError
from monitor.registry._store import SqlStore, _reason
from monitor.registry.models import DossierEntryRow, WorkAttributionRow


def _to_entry(row: DossierEntryRow) -> DossierEntry:
    stamp = None
    if row.tsa_url is not None:
        stamp = Timestamp(
            row.tsa_url,
            token=bytes(row.tsa_token) if row.tsa_token is not None else None,
            time=row.tsa_time,
            error=row.tsa_error,
        )
    return DossierEntry(
        work_id=row.work_id,
        seq=row.seq,
        kind=row.kind,
        payload=json.loads(row.payload),
        content_hash=row.content_hash,
        created_at=row.created_at,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
        timestamp=stamp,
    )


class SqlDossierStore(SqlStore):
    _label = "dossier"

    # ------------------------------------------------------------------ dossier

    def entries(self, work_id: str) -> list[DossierEntry]:
        with self._session() as session:
            rows = session.scalars(
                select(DossierEntryRow)
                .where(DossierEntryRow.work_id == work_id)
                .order_by(DossierEntryRow.seq)
            )
            return [_to_entry(row) for row in rows]

    def last_entry(self, work_id: str) -> DossierEntry | None:
        with self._session() as session:
            row = session.scalars(
                select(DossierEntryRow)
                .where(DossierEntryRow.work_id == work_id)
                .order_by(DossierEntryRow.seq.desc())
                .limit(1)
            ).first()
            return None if row is None else _to_entry(row)

    def find_entry(self, work_id: str, kind: str, content_hash: str) -> DossierEntry | None:
        with self._session() as session:
            row = session.scalars(
                select(DossierEntryRow).where(
                    DossierEntryRow.work_id == work_id,
                    DossierEntryRow.kind == kind,
                    DossierEntryRow.content_hash == content_hash,
                )
            ).first()
            return None if row is None else _to_entry(row)

    def insert_entry(self, entry: DossierEntry) -> None:
        stamp = entry.timestamp
        values = {
            "work_id": entry.work_id,
            "seq": entry.seq,
            "kind": entry.kind,
            "content_hash": entry.content_hash,
            "payload": json.dumps(entry.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            "created_at": entry.created_at,
            "prev_hash": entry.prev_hash,
            "entry_hash": entry.entry_hash,
            "tsa_url": stamp.tsa_url if stamp else None,
            "tsa_token": stamp.token if stamp else None,
            "tsa_time": stamp.time if stamp else None,
            "tsa_error": stamp.error if stamp else None,
        }
        try:
            with self._sessions() as session, session.begin():
                session.execute(insert(DossierEntryRow).values(**values))
        except IntegrityError as exc:
            raise DossierConflict(f"dossier entry {entry.work_id}#{entry.seq} was taken") from exc
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot write the dossier entry ({_reason(exc)})") from exc

    # ------------------------------------------------------------------ attribution

    def get_attribution(self, work_id: str) -> Attribution | None:
        with self._session() as session:
            row = session.get(WorkAttributionRow, work_id)
            if row is None:
                return None
            return Attribution(
                work_id=row.work_id,
                published_sha256=row.published_sha256,
                width=row.width,
                height=row.height,
                mark=VisibleMark.from_json(json.loads(row.mark)) if row.mark else None,
                cmi=json.loads(row.cmi),
                updated_at=row.updated_at,
            )

    def put_attribution(self, attribution: Attribution) -> None:
        values = {
            "work_id": attribution.work_id,
            "published_sha256": attribution.published_sha256,
            "width": attribution.width,
            "height": attribution.height,
            "mark": mark_json(attribution.mark),
            "cmi": json.dumps(attribution.cmi, sort_keys=True, ensure_ascii=False),
            "updated_at": attribution.updated_at or datetime.now(UTC),
        }
        try:
            with self._sessions() as session, session.begin():
                session.execute(
                    delete(WorkAttributionRow).where(WorkAttributionRow.work_id == attribution.work_id)
                )
                session.execute(insert(WorkAttributionRow).values(**values))
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot store the attribution record ({_reason(exc)})") from exc
