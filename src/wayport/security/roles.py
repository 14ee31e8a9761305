"""Roles, scopes and the principal a request acts as.

An organisation has workspaces; a gateway API key belongs to the organisation (roles ``owner`` and
``admin``: every workspace) or to one workspace (``manager``, ``member``, ``viewer``). A role grants
a set of scopes; a key may narrow them further with its own list. Every route names the scope it
needs, and every row it touches must be in a workspace the principal can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wayport.store.tenancy import DEFAULT_WORKSPACE

__all__ = [
    "DEFAULT_WORKSPACE",
    "LOCAL_OPERATOR",
    "ORG_ROLES",
    "ROLE_SCOPES",
    "SCOPES",
    "Principal",
    "Role",
    "ScopeError",
    "parse_role",
    "parse_scopes",
]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MANAGER = "manager"
    MEMBER = "member"
    VIEWER = "viewer"


# Every scope a route can require. ``<resource>.read`` covers GET, ``<resource>.write`` the rest.
SCOPES = (
    "completions",
    "logs.read",
    "logs.write",
    "feedback.read",
    "feedback.write",
    "analytics.read",
    "prompts.read",
    "prompts.write",
    "configs.read",
    "configs.write",
    "virtual_keys.read",
    "virtual_keys.write",
    "api_keys.read",
    "api_keys.write",
    "workspaces.read",
    "workspaces.write",
    "audit_logs.read",
    "cache.write",
)

_READ = frozenset(
    {"logs.read", "feedback.read", "analytics.read", "prompts.read", "configs.read", "virtual_keys.read"}
)
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.OWNER: frozenset(SCOPES),
    Role.ADMIN: frozenset(SCOPES),
    # everything inside its workspace; workspaces themselves are the organisation's
    Role.MANAGER: frozenset(SCOPES) - {"workspaces.write", "audit_logs.read"},
    # uses the gateway and gives feedback; reads what the workspace has
    Role.MEMBER: _READ | {"completions", "feedback.write", "logs.write", "workspaces.read"},
    Role.VIEWER: _READ | {"workspaces.read"},
}
ORG_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class ScopeError(ValueError):
    """A role or scope name that does not exist; the message lists the known ones."""


def parse_role(value: str) -> Role:
    try:
        return Role(value.lower())
    except ValueError:
        raise ScopeError(f"unknown role {value!r}; roles: {', '.join(r.value for r in Role)}") from None


def parse_scopes(values: list[str] | tuple[str, ...] | None) -> frozenset[str] | None:
    """A key's own scope list (``None``: the role's scopes). Unknown names are refused."""
    if values is None:
        return None
    unknown = sorted(set(values) - set(SCOPES))
    if unknown:
        raise ScopeError(f"unknown scope(s) {', '.join(unknown)}; scopes: {', '.join(SCOPES)}")
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a gateway API key (or, without auth, the local operator)."""

    key_id: str | None
    name: str
    role: Role
    scopes: frozenset[str]
    # None: the organisation (every workspace); else the one workspace this key acts in
    workspace_id: str | None

    @classmethod
    def for_key(
        cls,
        key_id: str | None,
        name: str,
        role: Role,
        workspace_id: str | None,
        scopes: frozenset[str] | None = None,
    ) -> Principal:
        granted = ROLE_SCOPES[role]
        return cls(key_id, name, role, granted if scopes is None else granted & scopes, workspace_id)

    @property
    def is_org(self) -> bool:
        return self.workspace_id is None

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def sees(self, workspace_id: str | None) -> bool:
        """Whether a row of ``workspace_id`` is visible (rows without one belong to the default
        workspace)."""
        return self.workspace_id is None or self.workspace_id == (workspace_id or DEFAULT_WORKSPACE)

    def workspace(self, requested: str | None = None) -> str:
        """The workspace a new row goes to: a workspace key's own; an organisation key's choice
        (the default workspace when it names none)."""
        return self.workspace_id or requested or DEFAULT_WORKSPACE

    def workspace_filter(self, requested: str | None = None) -> str | None:
        """The workspace a listing is limited to: a workspace key's own, else the requested one
        (``None``: all)."""
        return self.workspace_id if self.workspace_id is not None else requested


# The operator of a gateway started with --no-auth (loopback only): every scope, every workspace.
LOCAL_OPERATOR = Principal(None, "local operator (auth off)", Role.OWNER, frozenset(SCOPES), None)
