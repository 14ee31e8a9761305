"""Security: workspaces, gateway API keys, virtual keys and their vault, budget counters, audit log.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from wayport.store.schema import UTCDateTime

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("virtual_key", sa.String(255), nullable=True))
        batch.create_index("ix_logs_provider_created_at", ["provider", "created_at", "id"])
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("workspace_id", sa.String(64), nullable=True))
        batch.create_index("ix_feedback_workspace_id", ["workspace_id"])
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scopes", _json(), nullable=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("usage_limits", _json(), nullable=True),
        sa.Column("rate_limits", _json(), nullable=True),
        _at("expires_at", nullable=True),
        _at("revoked_at", nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_workspace_id", "api_keys", ["workspace_id"])
    op.create_index("ix_api_keys_updated_at", "api_keys", ["updated_at"])
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("settings", _json(), nullable=True),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("usage_limits", _json(), nullable=True),
        sa.Column("rate_limits", _json(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_keys"),
        sa.UniqueConstraint("slug", name="uq_virtual_keys_slug"),
    )
    op.create_index("ix_virtual_keys_workspace_id", "virtual_keys", ["workspace_id"])
    op.create_index("ix_virtual_keys_updated_at", "virtual_keys", ["updated_at"])
    op.create_table(
        "vault_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_vault_secrets"),
    )
    op.create_table(
        "budget_counters",
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("scope", "period", name="pk_budget_counters"),
    )
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.String(36), nullable=False),
        _at("created_at"),
        sa.Column("actor_key_id", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(255), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("before", _json(), nullable=True),
        sa.Column("after", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_logs"),
    )
    op.create_index("ix_audit_logs_created_at", "audit_logs", ["created_at"])
    op.create_index("ix_audit_logs_workspace_id", "audit_logs", ["workspace_id"])


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_index("ix_logs_provider_created_at")
        batch.drop_column("virtual_key")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_workspace_id")
        batch.drop_column("workspace_id")
    for table in ("audit_logs", "budget_counters", "vault_secrets", "virtual_keys", "api_keys", "workspaces"):
        op.drop_table(table)
