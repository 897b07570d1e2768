"""Watermarked publication copies (issue 3): the ``copies`` table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "copies",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("work_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("base_sha256", sa.String(64), nullable=False),
        sa.Column("marked_sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_id"], ["works.id"], name=op.f("fk_copies_work_id_works"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_copies")),
        sa.UniqueConstraint("work_id", "channel", name=op.f("uq_copies_work_id")),
    )
    op.create_index(op.f("ix_copies_marked_sha256"), "copies", ["marked_sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_copies_marked_sha256"), table_name="copies")
    op.drop_table("copies")
