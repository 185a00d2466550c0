"""Monitoring summaries: one row per monitored window (drift, feedback accuracy, decision).

Revision ID: 0002_monitoring
Revises: 0001_initial
Create Date: 2025-02-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_monitoring"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitoring_summaries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=True),
        sa.Column("drifted_columns", sa.Integer(), nullable=True),
        sa.Column("n_columns", sa.Integer(), nullable=True),
        sa.Column("prediction_drift", sa.Boolean(), nullable=True),
        sa.Column("prediction_drift_score", sa.Float(), nullable=True),
        sa.Column("prediction_mix", sa.JSON(), nullable=True),
        sa.Column("feedback_rows", sa.Integer(), nullable=False),
        sa.Column("feedback_accuracy", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("report_html", sa.String(1024), nullable=True),
        sa.Column("report_json", sa.String(1024), nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitoring_summaries"),
        sa.UniqueConstraint(
            "window_start", "window_end", name="uq_monitoring_summaries_window_start"
        ),
    )


def downgrade() -> None:
    op.drop_table("monitoring_summaries")
