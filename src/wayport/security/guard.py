"""The control plane's authorisation: which scope a route needs, checked before it runs.

The gateway authenticates every control-plane request before FastAPI sees it and leaves the
:class:`Principal` in the ASGI scope; routers declare what they need with :func:`require` (one
scope) or :func:`resource_guard` (``<resource>.read`` for GET, ``<resource>.write`` otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import Request

from wayport.control.errors import ControlError
from wayport.security.roles import LOCAL_OPERATOR, Principal

PRINCIPAL_KEY = "wayport.principal"
_READ_METHODS = frozenset({"GET", "HEAD"})


def set_principal(scope: MutableMapping[str, Any], principal: Principal) -> None:
    scope[PRINCIPAL_KEY] = principal


def principal_of(request: Request) -> Principal:
    """The principal of a control-plane request. An app mounted without the gateway in front
    (tests of a router alone) acts as the local operator."""
    principal = request.scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else LOCAL_OPERATOR


def check(principal: Principal, scope: str) -> None:
    if not principal.can(scope):
        raise ControlError(
            403, f"this API key ({principal.name}, role {principal.role}) lacks the scope '{scope}'"
        )


def require(scope: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the principal, when it holds ``scope``; 403 otherwise."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        check(principal, scope)
        return principal

    return dependency


def resource_guard(resource: str) -> Callable[[Request], Principal]:
    """A router-wide dependency: ``<resource>.read`` for GET and HEAD, ``<resource>.write`` else."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        check(principal, f"{resource}.{'read' if request.method in _READ_METHODS else 'write'}")
        return principal

    return dependency
