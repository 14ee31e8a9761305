"""Saved configs and prompt templates (collections, prompts, versions, labels, partials).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from wayport.store.schema import UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamps(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(name, UTCDateTime(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "configs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        *_timestamps("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_configs"),
        sa.UniqueConstraint("slug", name="uq_configs_slug"),
    )
    op.create_index("ix_configs_workspace_id", "configs", ["workspace_id"])
    op.create_table(
        "config_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps("created_at"),
        sa.ForeignKeyConstraint(
            ["config_id"], ["configs.id"], name="fk_config_versions_config_id_configs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_config_versions"),
        sa.UniqueConstraint("config_id", "version", name="uq_config_versions_config_id_version"),
    )

    op.create_table(
        "prompt_collections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("parent_collection_id", sa.String(36), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        *_timestamps("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_collections"),
        sa.UniqueConstraint("slug", name="uq_prompt_collections_slug"),
    )
    op.create_index("ix_prompt_collections_workspace_id", "prompt_collections", ["workspace_id"])

    op.create_table(
        "prompts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("collection_id", sa.String(36), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("default_version", sa.Integer(), nullable=False),
        *_timestamps("created_at", "updated_at"),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["prompt_collections.id"],
            name="fk_prompts_collection_id_prompt_collections",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompts"),
        sa.UniqueConstraint("slug", name="uq_prompts_slug"),
    )
    op.create_index("ix_prompts_collection_id", "prompts", ["collection_id"])
    op.create_index("ix_prompts_workspace_id", "prompts", ["workspace_id"])
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("prompt_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("string", sa.Text(), nullable=False),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("virtual_key", sa.String(255), nullable=True),
        sa.Column("functions", _json(), nullable=True),
        sa.Column("tools", _json(), nullable=True),
        sa.Column("tool_choice", _json(), nullable=True),
        sa.Column("template_metadata", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_raw_template", sa.Boolean(), nullable=False),
        *_timestamps("created_at"),
        sa.ForeignKeyConstraint(
            ["prompt_id"], ["prompts.id"], name="fk_prompt_versions_prompt_id_prompts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        sa.UniqueConstraint("prompt_id", "version", name="uq_prompt_versions_prompt_id_version"),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(36), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps("updated_at"),
        sa.ForeignKeyConstraint(
            ["prompt_id"], ["prompts.id"], name="fk_prompt_labels_prompt_id_prompts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("prompt_id", "label", name="pk_prompt_labels"),
    )

    op.create_table(
        "prompt_partials",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("collection_id", sa.String(36), nullable=True),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("default_version", sa.Integer(), nullable=False),
        *_timestamps("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_partials"),
        sa.UniqueConstraint("slug", name="uq_prompt_partials_slug"),
    )
    op.create_index("ix_prompt_partials_name", "prompt_partials", ["name"])
    op.create_table(
        "prompt_partial_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("partial_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("string", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps("created_at"),
        sa.ForeignKeyConstraint(
            ["partial_id"],
            ["prompt_partials.id"],
            name="fk_prompt_partial_versions_partial_id_prompt_partials",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_partial_versions"),
        sa.UniqueConstraint("partial_id", "version", name="uq_prompt_partial_versions_partial_id_version"),
    )


def downgrade() -> None:
    for table in (
        "prompt_partial_versions",
        "prompt_partials",
        "prompt_labels",
        "prompt_versions",
        "prompts",
        "prompt_collections",
        "config_versions",
        "configs",
    ):
        op.drop_table(table)
