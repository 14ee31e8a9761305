"""The workspace the current unit of work is limited to.

The control plane binds it for each request of a workspace key (:func:`bound`); the repositories
read it where they look rows up, list them or create them, so a workspace key can neither see nor
change another workspace's rows through any route, even one that forgets to check. Organisation
keys, the CLI and the gateway's own background work run unbound (every workspace).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import ColumnElement, or_, true

# rows made before workspaces existed (no workspace) belong to this one
DEFAULT_WORKSPACE = "default"

_WORKSPACE: ContextVar[str | None] = ContextVar("wayport_workspace", default=None)


def current_workspace() -> str | None:
    """The bound workspace, ``None`` when the caller may see every workspace."""
    return _WORKSPACE.get()


@contextmanager
def bound(workspace_id: str | None) -> Iterator[None]:
    token = _WORKSPACE.set(workspace_id)
    try:
        yield
    finally:
        _WORKSPACE.reset(token)


def visible(column: Any) -> ColumnElement[bool]:
    """A condition on a ``workspace_id`` column: rows of the bound workspace (all when unbound)."""
    workspace = _WORKSPACE.get()
    if workspace is None:
        return true()
    condition: ColumnElement[bool] = column == workspace
    if workspace == DEFAULT_WORKSPACE:
        condition = or_(condition, column.is_(None))
    return condition


def workspace_for_new(requested: str | None) -> str | None:
    """The workspace a new row goes to: the bound one, else what the caller asked for."""
    workspace = _WORKSPACE.get()
    return workspace if workspace is not None else requested


def listing_workspace(requested: str | None) -> str | None:
    """The workspace a listing asks for, when it may choose (unbound); bound listings are limited
    by :func:`visible` whatever they ask."""
    return requested if _WORKSPACE.get() is None else None
