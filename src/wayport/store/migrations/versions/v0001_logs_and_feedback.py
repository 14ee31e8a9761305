"""Logs and feedback.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from wayport.store.schema import UTCDateTime

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "logs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("trace_id", sa.String(255), nullable=False),
        sa.Column("span_id", sa.String(255), nullable=True),
        sa.Column("parent_span_id", sa.String(255), nullable=True),
        sa.Column("span_name", sa.String(255), nullable=True),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("api_key_id", sa.String(64), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("model_requested", sa.String(255), nullable=True),
        sa.Column("model_served", sa.String(255), nullable=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("cost_breakdown", _json(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("cache_status", sa.String(16), nullable=False),
        sa.Column("attempts", _json(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("fallbacks", sa.Integer(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("end_user", sa.String(255), nullable=True),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_logs"),
    )
    op.create_index("ix_logs_created_at_id", "logs", ["created_at", "id"])
    op.create_index("ix_logs_trace_id", "logs", ["trace_id"])
    op.create_index("ix_logs_provider_model", "logs", ["provider", "model_requested", "created_at"])
    op.create_index("ix_logs_model_served", "logs", ["model_served", "created_at"])
    op.create_index("ix_logs_status", "logs", ["status", "created_at"])
    op.create_index("ix_logs_end_user", "logs", ["end_user", "created_at"])
    op.create_index("ix_logs_cache_status", "logs", ["cache_status", "created_at"])
    if op.get_context().dialect.name == "postgresql":
        op.create_index(
            "ix_logs_metadata",
            "logs",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("trace_id", sa.String(255), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("value >= -10 AND value <= 10", name=op.f("ck_feedback_value_range")),
        sa.CheckConstraint("weight >= 0 AND weight <= 1", name=op.f("ck_feedback_weight_range")),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_trace_id", "feedback", ["trace_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("logs")
