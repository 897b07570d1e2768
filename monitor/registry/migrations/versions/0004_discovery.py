"""Discovery: watched sources, crawls, candidates, analyses, findings, rechecks (issue 5).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("spider", sa.String(32), nullable=False),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=True),
        sa.Column("max_pages", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("next_crawl_at"),
        _when("last_crawl_at", True),
        sa.Column("last_crawl_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("url", "spider", name="uq_sources_url_spider"),
    )
    op.create_index(op.f("ix_sources_next_crawl_at"), "sources", ["next_crawl_at"], unique=False)

    op.create_table(
        "crawls",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(32), nullable=True),
        sa.Column("spider", sa.String(32), nullable=False),
        sa.Column("start_urls", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _when("started_at"),
        _when("finished_at", True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_crawls_source_id_sources"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crawls")),
    )
    op.create_index(op.f("ix_crawls_source_id"), "crawls", ["source_id"], unique=False)

    op.create_table(
        "candidates",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("crawl_id", sa.String(32), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("page", sa.JSON(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _when("fetched_at", True),
        sa.Column("warc_path", sa.Text(), nullable=True),
        _when("created_at"),
        _when("queued_at"),
        _when("analysed_at", True),
        sa.ForeignKeyConstraint(
            ["crawl_id"], ["crawls.id"], name=op.f("fk_candidates_crawl_id_crawls"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("key", name=op.f("uq_candidates_key")),
    )
    op.create_index(op.f("ix_candidates_crawl_id"), "candidates", ["crawl_id"], unique=False)
    op.create_index(op.f("ix_candidates_sha256"), "candidates", ["sha256"], unique=False)
    op.create_index(op.f("ix_candidates_status"), "candidates", ["status"], unique=False)
    op.create_index(op.f("ix_candidates_queued_at"), "candidates", ["queued_at"], unique=False)

    op.create_table(
        "analyses",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token", sa.String(32), nullable=True),
        _when("claimed_at", True),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _when("finished_at", True),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_analyses")),
    )

    op.create_table(
        "findings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("candidate_id", sa.String(32), nullable=False),
        sa.Column("work_id", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("region", sa.JSON(), nullable=False),
        sa.Column("transform", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("reports", sa.JSON(), nullable=False),
        sa.Column("image_url", sa.Text(), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_findings_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["work_id"], ["works.id"], name=op.f("fk_findings_work_id_works"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("candidate_id", "work_id", name="uq_findings_candidate_id_work_id"),
    )
    op.create_index(op.f("ix_findings_work_id"), "findings", ["work_id"], unique=False)
    op.create_index(op.f("ix_findings_created_at"), "findings", ["created_at"], unique=False)

    op.create_table(
        "rechecks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("finding_id", sa.String(32), nullable=False),
        _when("checked_at"),
        sa.Column("page_status", sa.Integer(), nullable=True),
        sa.Column("image_status", sa.Integer(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("warc_path", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["finding_id"], ["findings.id"], name=op.f("fk_rechecks_finding_id_findings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rechecks")),
    )
    op.create_index(op.f("ix_rechecks_finding_id"), "rechecks", ["finding_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rechecks_finding_id"), table_name="rechecks")
    op.drop_table("rechecks")
    op.drop_index(op.f("ix_findings_created_at"), table_name="findings")
    op.drop_index(op.f("ix_findings_work_id"), table_name="findings")
    op.drop_table("findings")
    op.drop_table("analyses")
    for column in ("queued_at", "status", "sha256", "crawl_id"):
        op.drop_index(op.f(f"ix_candidates_{column}"), table_name="candidates")
    op.drop_table("candidates")
    op.drop_index(op.f("ix_crawls_source_id"), table_name="crawls")
    op.drop_table("crawls")
    op.drop_index(op.f("ix_sources_next_crawl_at"), table_name="sources")
    op.drop_table("sources")
