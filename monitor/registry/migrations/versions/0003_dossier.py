"""Authorship dossier, visible marks and copyright metadata (issue 4).

``dossier_entries``: the hash-chained dossier of each work (with RFC 3161 tokens);
``work_attribution``: the published copy's visible mark and CMI.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dossier_entries",
        sa.Column("work_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("tsa_url", sa.Text(), nullable=True),
        sa.Column("tsa_token", sa.LargeBinary(), nullable=True),
        sa.Column("tsa_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tsa_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["work_id"], ["works.id"], name=op.f("fk_dossier_entries_work_id_works"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("work_id", "seq", name=op.f("pk_dossier_entries")),
        sa.UniqueConstraint("work_id", "kind", "content_hash", name=op.f("uq_dossier_entries_work_id")),
    )
    op.create_table(
        "work_attribution",
        sa.Column("work_id", sa.String(32), nullable=False),
        sa.Column("published_sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("mark", sa.Text(), nullable=True),
        sa.Column("cmi", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_id"], ["works.id"], name=op.f("fk_work_attribution_work_id_works"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("work_id", name=op.f("pk_work_attribution")),
    )


def downgrade() -> None:
    op.drop_table("work_attribution")
    op.drop_table("dossier_entries")
