"""The store's tables, one declarative ``Base`` for SQLite and PostgreSQL.

Every table of Wayport (logs and feedback now; configs, prompts, keys and budgets later) is a class
on :class:`Base`, so one ``MetaData`` describes the whole database and Alembic revisions are
written against it. Types that differ between engines are declared once here: timestamps are
UTC-aware on both, JSON is ``JSONB`` on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["Base", "FeedbackRow", "LogRow", "UTCDateTime"]

# Stable constraint and index names, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz``; SQLite keeps naive UTC text with microseconds, which sorts
    and compares correctly as text.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> TypeEngine[Any]:
    """JSON text on SQLite, JSONB on PostgreSQL (indexable, compact)."""
    return JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LogRow(Base):
    """One request (see ``wayport.observability.record.LogRecord``); append-only."""

    __tablename__ = "logs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    trace_id: Mapped[str] = mapped_column(String(255))
    span_id: Mapped[str | None] = mapped_column(String(255))
    parent_span_id: Mapped[str | None] = mapped_column(String(255))
    span_name: Mapped[str | None] = mapped_column(String(255))
    workspace_id: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    virtual_key: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(64))
    model_requested: Mapped[str | None] = mapped_column(String(255))
    model_served: Mapped[str | None] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    stream: Mapped[bool] = mapped_column(Boolean)
    latency_ms: Mapped[int] = mapped_column(Integer)
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    cache_write_tokens: Mapped[int] = mapped_column(Integer)
    reasoning_tokens: Mapped[int] = mapped_column(Integer)
    # integer micro-dollars; NULL when the model's price is unknown (never guessed)
    cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    cost_breakdown: Mapped[dict[str, Any]] = mapped_column(_json())
    currency: Mapped[str] = mapped_column(String(3))
    cache_status: Mapped[str] = mapped_column(String(16))
    cache_similarity: Mapped[float | None] = mapped_column(Float)
    cost_saved_micros: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(_json())
    retries: Mapped[int] = mapped_column(Integer)
    fallbacks: Mapped[int] = mapped_column(Integer)
    # the attribute cannot be called ``metadata`` on a declarative class
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", _json())
    # metadata["_user"], a column of its own so that per-user queries use an index
    end_user: Mapped[str | None] = mapped_column(String(255))
    request_body: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # keyset pagination and every time-range query
        Index("ix_logs_created_at_id", "created_at", "id"),
        Index("ix_logs_trace_id", "trace_id"),
        Index("ix_logs_provider_model", "provider", "model_requested", "created_at"),
        # the console's provider filter, newest first, without sorting the provider's rows
        Index("ix_logs_provider_created_at", "provider", "created_at", "id"),
        Index("ix_logs_model_served", "model_served", "created_at"),
        Index("ix_logs_status", "status", "created_at"),
        Index("ix_logs_end_user", "end_user", "created_at"),
        Index("ix_logs_cache_status", "cache_status", "created_at"),
        # metadata key=value filters use JSONB containment on PostgreSQL
        Index(
            "ix_logs_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class FeedbackRow(Base):
    """Feedback on a trace (Portkey's ``POST /v1/feedback``): value -10..10, weight 0..1."""

    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(255), index=True)
    value: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", _json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)

    __table_args__ = (
        CheckConstraint("value >= -10 AND value <= 10", name="value_range"),
        CheckConstraint("weight >= 0 AND weight <= 1", name="weight_range"),
    )


# -- saved configs and prompt templates (wayport.catalog) -------------------------------------------
# Each versioned object keeps ``current_version``, the newest version number: a writer bumps it with
# one conditional UPDATE and inserts the version row under that number, so concurrent writers get
# distinct numbers; the (owner, version) unique constraint is the backstop.


class ConfigRow(Base):
    """A saved gateway config (``pc-...``); its content lives in :class:`ConfigVersionRow`."""

    __tablename__ = "configs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    is_default: Mapped[bool] = mapped_column(Boolean)
    # active | archived (a deleted config is archived: its slug is never reused)
    status: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConfigVersionRow(Base):
    """One immutable version of a saved config."""

    __tablename__ = "config_versions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    config_id: Mapped[str] = mapped_column(String(36), ForeignKey("configs.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(_json())
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("config_id", "version"),)


class PromptCollectionRow(Base):
    """A folder of prompts and partials; each workspace has a default one."""

    __tablename__ = "prompt_collections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    parent_collection_id: Mapped[str | None] = mapped_column(String(36))
    is_default: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptRow(Base):
    """A prompt template (``pp-...``): versions, a default (published) version and labels."""

    __tablename__ = "prompts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    collection_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("prompt_collections.id", ondelete="RESTRICT"), index=True
    )
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int] = mapped_column(Integer)
    default_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptVersionRow(Base):
    """One immutable version of a prompt: the template, its model and hyperparameters."""

    __tablename__ = "prompt_versions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(36), ForeignKey("prompts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # chat templates hold the messages as JSON text
    string: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(_json())
    model: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(64))
    virtual_key: Mapped[str | None] = mapped_column(String(255))
    functions: Mapped[list[Any] | None] = mapped_column(_json())
    tools: Mapped[list[Any] | None] = mapped_column(_json())
    tool_choice: Mapped[Any | None] = mapped_column(_json())
    template_metadata: Mapped[dict[str, Any]] = mapped_column(_json())
    description: Mapped[str | None] = mapped_column(Text)
    is_raw_template: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("prompt_id", "version"),)


class PromptLabelRow(Base):
    """A label (``production``, ``staging``, custom) pointing at one version of one prompt."""

    __tablename__ = "prompt_labels"

    prompt_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptPartialRow(Base):
    """A reusable template piece, included as ``{{>slug}}`` or ``{{>name}}``; versioned like prompts."""

    __tablename__ = "prompt_partials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    collection_id: Mapped[str | None] = mapped_column(String(36))
    workspace_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int] = mapped_column(Integer)
    default_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptPartialVersionRow(Base):
    """One immutable version of a partial."""

    __tablename__ = "prompt_partial_versions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    partial_id: Mapped[str] = mapped_column(String(36), ForeignKey("prompt_partials.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    string: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("partial_id", "version"),)


__all__ += [
    "ConfigRow",
    "ConfigVersionRow",
    "PromptCollectionRow",
    "PromptLabelRow",
    "PromptPartialRow",
    "PromptPartialVersionRow",
    "PromptRow",
    "PromptVersionRow",
]


# -- security (wayport.security): workspaces, gateway keys, virtual keys, budgets, audit --------------


class WorkspaceRow(Base):
    """A workspace: every key, virtual key, config, prompt and log belongs to one."""

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    """A gateway API key. Only a keyed hash of the token is stored; ``prefix`` identifies it to people."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(255))
    # None: an organisation key (owner/admin roles), else the workspace the key acts in
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[list[str] | None] = mapped_column(_json())
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    usage_limits: Mapped[dict[str, Any] | None] = mapped_column(_json())
    rate_limits: Mapped[list[dict[str, Any]] | None] = mapped_column(_json())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class VirtualKeyRow(Base):
    """A provider and its secret(s): ``secret`` is AES-GCM ciphertext under the master key ``key_id``."""

    __tablename__ = "virtual_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    # settings that are not secret (Azure resource and deployment, AWS region, Vertex project, ...)
    settings: Mapped[dict[str, Any] | None] = mapped_column(_json())
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32))
    usage_limits: Mapped[dict[str, Any] | None] = mapped_column(_json())
    rate_limits: Mapped[list[dict[str, Any]] | None] = mapped_column(_json())
    # active | archived (a deleted virtual key is archived: its slug is never reused)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class VaultSecretRow(Base):
    """A secret of Wayport itself (e.g. the key that hashes API keys), encrypted like provider secrets."""

    __tablename__ = "vault_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BudgetCounterRow(Base):
    """Spend of one budget in one period: ``used`` is settled, ``reserved`` is held by requests in
    flight. Units are micro-USD for cost budgets and tokens for token budgets. Writers only ever
    change it with conditional UPDATEs (``used + reserved + amount <= limit``), never read-then-write.
    """

    __tablename__ = "budget_counters"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditLogRow(Base):
    """One control-plane change: who, what, when, from where, before and after (secrets masked)."""

    __tablename__ = "audit_logs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_key_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str] = mapped_column(String(255))
    workspace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[int] = mapped_column(Integer)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[Any] = mapped_column(_json(), nullable=True)
    after: Mapped[Any] = mapped_column(_json(), nullable=True)


__all__ += [
    "ApiKeyRow",
    "AuditLogRow",
    "BudgetCounterRow",
    "VaultSecretRow",
    "VirtualKeyRow",
    "WorkspaceRow",
]
