"""``SqlAlertStore``: alerts, their sightings, the delivery log and evidence exports in SQL.

Implements :class:`monitor.alerts.AlertStore` and :class:`monitor.evidence.ExportLog`.
Each call is one short transaction. Races are settled by unique keys, never by reading first:
``alerts.key`` (one alert per work × page: two workers raising the same alert get the same
row) and ``alert_findings.finding_id`` (a finding is counted once, however often the task runs).
"""

from __future__ import annotations

import builtins
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, insert, select, update

from monitor.alerts import Alert, Delivery, NewAlert
from monitor.errors import NotFound
from monitor.registry._store import SqlStore
from monitor.registry.models import (
    AlertDeliveryRow,
    AlertFindingRow,
    AlertRow,
    EvidenceExportRow,
    FindingRow,
)

__all__ = ["SqlAlertStore"]


def _alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        key=row.key,
        finding_id=row.finding_id,
        first_finding_id=row.first_finding_id,
        work_id=row.work_id,
        candidate_id=row.candidate_id,
        page_url=row.page_url,
        image_url=row.image_url,
        image_sha256=row.image_sha256,
        verdict=row.verdict,
        similarity=float(row.similarity),
        flags=list(row.flags or []),
        severity=row.severity,
        summary=row.summary,
        occurrences=row.occurrences,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        acked_at=row.acked_at,
    )


def _delivery(row: AlertDeliveryRow) -> Delivery:
    return Delivery(
        alert_id=row.alert_id,
        channel=row.channel,
        event=row.event,
        attempt=row.attempt,
        ok=row.ok,
        at=row.at,
        target=row.target,
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
    )


class SqlAlertStore(SqlStore):
    """The alert tables on SQLite or PostgreSQL (migrated to head by ``upgrade_database``)."""

    _label = "alert"

    # ------------------------------------------------------------------ alerts

    def create(self, alert: NewAlert, *, at: datetime) -> tuple[Alert, bool]:
        values = {
            "id": secrets.token_hex(8),
            "key": alert.key,
            "finding_id": alert.finding_id,
            "first_finding_id": alert.finding_id,
            "work_id": alert.work_id,
            "candidate_id": alert.candidate_id,
            "page_url": alert.page_url,
            "image_url": alert.image_url,
            "image_sha256": alert.image_sha256,
            "verdict": alert.verdict,
            "similarity": float(alert.similarity),
            "flags": list(alert.flags),
            "severity": alert.severity,
            "summary": alert.summary,
            "occurrences": 1,
            "created_at": at,
            "last_seen_at": at,
            "acked_at": None,
        }
        with self._tx() as session:
            created = self._insert_ignore(session, AlertRow, values)
            row = session.scalars(select(AlertRow).where(AlertRow.key == alert.key)).one()
            if created:
                self._insert_ignore(
                    session,
                    AlertFindingRow,
                    {"finding_id": alert.finding_id, "alert_id": row.id, "seen_at": at},
                )
            return _alert(row), created

    def attach(self, alert_id: str, finding_id: str, *, at: datetime) -> bool:
        with self._tx() as session:
            return self._insert_ignore(
                session, AlertFindingRow, {"finding_id": finding_id, "alert_id": alert_id, "seen_at": at}
            )

    def update_sighting(
        self,
        alert_id: str,
        *,
        finding_id: str,
        verdict: str,
        similarity: float,
        flags: list[str],
        severity: str,
        summary: str,
        at: datetime,
    ) -> Alert:
        with self._tx() as session:
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise NotFound(f"no alert has id {alert_id!r}", item=alert_id)
            escalated = severity != row.severity
            values: dict[str, Any] = {
                "finding_id": finding_id,
                "verdict": verdict,
                "similarity": float(similarity),
                "flags": list(flags),
                "severity": severity,
                "summary": summary,
                "occurrences": AlertRow.occurrences + 1,
                "last_seen_at": at,
            }
            if escalated:
                values["acked_at"] = None
            session.execute(update(AlertRow).where(AlertRow.id == alert_id).values(**values))
            session.refresh(row)
            return _alert(row)

    def get(self, alert_id: str) -> Alert:
        with self._tx() as session:
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise NotFound(f"no alert has id {alert_id!r}", item=alert_id)
            return _alert(row)

    def list(
        self, *, since: datetime | None = None, unacked: bool = False, limit: int | None = None
    ) -> builtins.list[Alert]:
        query = select(AlertRow).order_by(AlertRow.last_seen_at.desc(), AlertRow.id)
        if since is not None:
            query = query.where(AlertRow.last_seen_at >= since)
        if unacked:
            query = query.where(AlertRow.acked_at.is_(None))
        with self._tx() as session:
            return [_alert(row) for row in session.scalars(query.limit(limit))]

    def ack(self, alert_id: str, *, at: datetime) -> Alert:
        with self._tx() as session:
            session.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.acked_at.is_(None))
                .values(acked_at=at)
            )
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise NotFound(f"no alert has id {alert_id!r}", item=alert_id)
            return _alert(row)

    # ------------------------------------------------------------------ deliveries

    def add_delivery(self, delivery: Delivery) -> None:
        with self._tx() as session:
            session.execute(
                insert(AlertDeliveryRow).values(
                    alert_id=delivery.alert_id,
                    channel=delivery.channel,
                    event=delivery.event,
                    attempt=delivery.attempt,
                    ok=delivery.ok,
                    at=delivery.at,
                    target=delivery.target,
                    status_code=delivery.status_code,
                    error=delivery.error,
                    duration_ms=delivery.duration_ms,
                )
            )

    def deliveries(self, alert_id: str) -> builtins.list[Delivery]:
        with self._tx() as session:
            rows = session.scalars(
                select(AlertDeliveryRow)
                .where(AlertDeliveryRow.alert_id == alert_id)
                .order_by(AlertDeliveryRow.at, AlertDeliveryRow.id)
            )
            return [_delivery(row) for row in rows]

    def not_delivered(self, channel: str, *, limit: int | None = None) -> builtins.list[Alert]:
        delivered = exists().where(
            and_(
                AlertDeliveryRow.alert_id == AlertRow.id,
                AlertDeliveryRow.channel == channel,
                AlertDeliveryRow.ok.is_(True),
                AlertDeliveryRow.at >= AlertRow.last_seen_at,  # seen again since: digest it again
            )
        )
        query = select(AlertRow).where(~delivered).order_by(AlertRow.created_at, AlertRow.id).limit(limit)
        with self._tx() as session:
            return [_alert(row) for row in session.scalars(query)]

    def findings_without_alert(self, older_than: datetime, *, limit: int) -> builtins.list[str]:
        """Ids of findings created before ``older_than`` that no alert counts yet, oldest first."""
        counted = exists().where(AlertFindingRow.finding_id == FindingRow.id)
        query = (
            select(FindingRow.id)
            .where(FindingRow.created_at < older_than, ~counted)
            .order_by(FindingRow.created_at, FindingRow.id)
            .limit(limit)
        )
        with self._tx() as session:
            return list(session.scalars(query))

    # ------------------------------------------------------------------ exports

    def add_export(
        self, *, finding_id: str, path: str, manifest_sha256: str, key_sha256: str, members: int, at: datetime
    ) -> None:
        with self._tx() as session:
            session.execute(
                insert(EvidenceExportRow).values(
                    id=secrets.token_hex(8),
                    finding_id=finding_id,
                    path=path,
                    manifest_sha256=manifest_sha256,
                    key_sha256=key_sha256,
                    members=members,
                    exported_at=at,
                )
            )

    def exports(self, finding_id: str) -> builtins.list[dict[str, Any]]:
        with self._tx() as session:
            rows = session.scalars(
                select(EvidenceExportRow)
                .where(EvidenceExportRow.finding_id == finding_id)
                .order_by(EvidenceExportRow.exported_at, EvidenceExportRow.id)
            )
            return [
                {
                    "finding_id": r.finding_id,
                    "path": r.path,
                    "manifest_sha256": r.manifest_sha256,
                    "key_sha256": r.key_sha256,
                    "members": r.members,
                    "exported_at": r.exported_at.isoformat(),
                }
                for r in rows
            ]
