"""Monitoring counts each kind of answer per window: ``answer_kinds`` (kind -> count) and
``not_piano_share`` on ``monitoring_summaries`` (a jump in non-music uploads is input drift).

Revision ID: 0005_answer_kinds
Revises: 0004_answer_kind
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_answer_kinds"
down_revision: str | None = "0004_answer_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("monitoring_summaries") as batch:
        batch.add_column(sa.Column("answer_kinds", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("not_piano_share", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitoring_summaries") as batch:
        batch.drop_column("not_piano_share")
        batch.drop_column("answer_kinds")
