"""Alerts, the findings that sighted them, deliveries and evidence exports (issue 6).

Rechecks live in 0004 (discovery). Finding ids are indexed here, not foreign keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("finding_id", sa.String(32), nullable=False),
        sa.Column("first_finding_id", sa.String(32), nullable=False),
        sa.Column("work_id", sa.String(32), nullable=False),
        sa.Column("candidate_id", sa.String(32), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("last_seen_at"),
        _when("acked_at", True),
        sa.ForeignKeyConstraint(
            ["work_id"], ["works.id"], name=op.f("fk_alerts_work_id_works"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_alerts_key")),
    )
    op.create_index(op.f("ix_alerts_finding_id"), "alerts", ["finding_id"], unique=False)
    op.create_index(op.f("ix_alerts_work_id"), "alerts", ["work_id"], unique=False)
    op.create_index(op.f("ix_alerts_last_seen_at"), "alerts", ["last_seen_at"], unique=False)

    op.create_table(
        "alert_findings",
        sa.Column("finding_id", sa.String(32), nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False),
        _when("seen_at"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_findings_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("finding_id", name=op.f("pk_alert_findings")),
    )
    op.create_index(op.f("ix_alert_findings_alert_id"), "alert_findings", ["alert_id"], unique=False)

    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        _when("at"),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_deliveries_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    op.create_index(op.f("ix_alert_deliveries_alert_id"), "alert_deliveries", ["alert_id"], unique=False)

    op.create_table(
        "evidence_exports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("finding_id", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        _when("exported_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_exports")),
    )
    op.create_index(op.f("ix_evidence_exports_finding_id"), "evidence_exports", ["finding_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_evidence_exports_finding_id"), table_name="evidence_exports")
    op.drop_table("evidence_exports")
    op.drop_index(op.f("ix_alert_deliveries_alert_id"), table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index(op.f("ix_alert_findings_alert_id"), table_name="alert_findings")
    op.drop_table("alert_findings")
    op.drop_index(op.f("ix_alerts_last_seen_at"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_work_id"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_finding_id"), table_name="alerts")
    op.drop_table("alerts")
