"""What the console needs from the running gateway (``WayportApp`` provides it)."""

from __future__ import annotations

from typing import Any, Protocol

from wayport.security.keys import ApiKey
from wayport.security.roles import Principal
from wayport.store.filters import LogFilters


class ConsoleHost(Protocol):
    @property
    def auth_enabled(self) -> bool: ...

    def verify_token(self, token: str) -> ApiKey:
        """The active key of ``token``; raises ``GatewayError`` (401) otherwise."""
        ...

    def key_by_id(self, key_id: str) -> ApiKey | None: ...

    async def control_call(
        self,
        principal: Principal,
        method: str,
        path: str,
        *,
        query: str = "",
        body: Any = None,
        client: str | None = None,
    ) -> tuple[int, Any]: ...

    async def playground_call(
        self, principal: Principal, api_key: Any, ref: str, body: Any, virtual_key: str
    ) -> tuple[int, Any]: ...

    async def budget_usage(self, principal: Principal) -> dict[str, list[dict[str, Any]]]:
        """Per ``ak:<id>`` / ``vk:<id>``: each budget's limit, used and reserved (micro-USD or tokens)."""
        ...

    async def log_groups(
        self, principal: Principal, filters: LogFilters, dimension: str
    ) -> list[dict[str, Any]]: ...
