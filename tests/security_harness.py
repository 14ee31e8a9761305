"""A Wayport with auth on, its first owner key, and a way to make more keys over the API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import httpx

from tests.conftest import GatewayServer
from wayport.control.local_store import open_store, upgrade_store
from wayport.security.bootstrap import bootstrap_admin_key
from wayport.security.vault import Vault
from wayport.settings import Settings


def bootstrap(settings: Settings) -> str:
    """Migrate the store and create the first owner key, as `wayport serve` does; its token."""

    async def run() -> str | None:
        await upgrade_store(settings)
        engine = await open_store(settings)
        try:
            return await bootstrap_admin_key(engine, Vault.from_settings(settings))
        finally:
            await engine.dispose()

    token = asyncio.run(run())
    assert token is not None, "the store had keys already"
    return token


@dataclass
class SecuredGateway:
    server: GatewayServer
    admin: str

    def control(self, token: str | None = None) -> httpx.Client:
        headers = {"x-portkey-api-key": token} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=10)

    def create_key(self, role: str, workspace: str | None = "default", **extra: Any) -> tuple[str, str]:
        """(id, token) of a new key made by the owner through POST /v1/api-keys."""
        kind = "organisation" if role in ("owner", "admin") else "workspace"
        body = {"name": f"{role}-key", "role": role, "workspace_id": workspace, **extra}
        with self.control(self.admin) as client:
            answer = client.post(f"/v1/api-keys/{kind}/service", json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        return data["id"], data["key"]

    def create_workspace(self, workspace_id: str) -> None:
        with self.control(self.admin) as client:
            answer = client.post("/v1/workspaces", json={"id": workspace_id})
        assert answer.status_code in (200, 409), answer.text


def secured(settings: Settings) -> SecuredGateway:
    settings = replace(settings, auth=True)
    admin = bootstrap(settings)
    return SecuredGateway(GatewayServer(settings).start(), admin)
