"""The cache's part of a log: the similarity of a semantic hit and the cost a hit saved.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("cache_similarity", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cost_saved_micros", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("cost_saved_micros")
        batch.drop_column("cache_similarity")
