"""One feedback per prediction: duplicates removed (the latest kept), a unique key on
``feedback.prediction_id`` (a second feedback replaces the first, by upsert).

Revision ID: 0003_one_feedback
Revises: 0002_monitoring
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_one_feedback"
down_revision: str | None = "0002_monitoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keep the latest feedback of each prediction (window functions: PostgreSQL, SQLite >= 3.25).
DELETE_OLDER = """
DELETE FROM feedback WHERE id NOT IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY prediction_id ORDER BY created_at DESC, id DESC
        ) AS n FROM feedback
    ) AS ranked WHERE n = 1
)
"""


def upgrade() -> None:
    op.execute(DELETE_OLDER)
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_prediction_id")
        batch.create_unique_constraint("uq_feedback_prediction_id", ["prediction_id"])


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_constraint("uq_feedback_prediction_id", type_="unique")
        batch.create_index("ix_feedback_prediction_id", ["prediction_id"])
