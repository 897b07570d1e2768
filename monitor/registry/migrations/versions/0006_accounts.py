"""Accounts, API keys and jobs (issue 7).

Placeholder until the feature lands: a no-op that keeps the revision chain fixed, so each
feature fills in its own revision without renumbering the others.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
