"""Every prediction records the kind of answer it got (work, composer, not_sure, not_piano);
rows from before are composer answers. A "not piano music" answer has no composer.

Revision ID: 0004_answer_kind
Revises: 0003_one_feedback
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0004_answer_kind"
down_revision: str | None = "0003_one_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with _feedback_kept(), op.batch_alter_table("predictions") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="composer")
        )
        batch.alter_column("composer", existing_type=sa.String(128), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM predictions WHERE composer IS NULL")
    with _feedback_kept(), op.batch_alter_table("predictions") as batch:
        batch.alter_column("composer", existing_type=sa.String(128), nullable=False)
        batch.drop_column("kind")


@contextmanager
def _feedback_kept() -> Iterator[None]:
    """SQLite alters a column by copying the table and dropping the old one; with foreign keys
    on (they are: ``core.store.engine``) dropping ``predictions`` cascades to ``feedback``, and
    the pragma cannot be turned off inside the migration's transaction. So keep the feedback
    aside and put it back. PostgreSQL alters in place: nothing to do."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("CREATE TEMP TABLE feedback_kept AS SELECT * FROM feedback")
    yield
    op.execute(
        "INSERT INTO feedback SELECT * FROM feedback_kept"
        " WHERE prediction_id IN (SELECT id FROM predictions)"
    )
    op.execute("DROP TABLE feedback_kept")
