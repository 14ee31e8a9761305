"""Shared fixtures of the catalog suites: a store (a SQLite file, or a PostgreSQL schema of its own
dropped afterwards) and the catalog routers served by uvicorn on loopback in a background thread.

The server's event loop owns its engine; tests reach the store through :meth:`CatalogServer.call`,
which runs a coroutine on that loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import free_port
from tests.test_store_logs import store_engine as empty_store_engine
from wayport.catalog import CatalogState, configs_router, prompts_router
from wayport.http_server import server_options
from wayport.providers import ProviderRegistry
from wayport.security.ssrf import HostPolicy
from wayport.security.vault import Vault
from wayport.settings import Settings
from wayport.store import create_engine, upgrade

T = TypeVar("T")
PG_URL = os.environ.get("WAYPORT_TEST_DATABASE_URL")
PG_SKIP_REASON = (
    "WAYPORT_TEST_DATABASE_URL is not set; the PostgreSQL half of the catalog suites needs it "
    "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
)
KINDS = ["sqlite", "postgresql"]

_REGISTRY = ProviderRegistry()
_HOSTS = HostPolicy()


def check_provider(name: str) -> str | None:
    return _REGISTRY.problem(name)


# one master key for every state of a test run: two states over one store read each other's configs
VAULT_KEY = secrets.token_bytes(32)
VAULT = Vault(VAULT_KEY)


def make_state(engine: AsyncEngine, **options: Any) -> CatalogState:
    return CatalogState.create(
        engine, VAULT, check_provider=check_provider, check_host=_HOSTS.check_url, **options
    )


async def _admin(statement: str, tmp_path: Path) -> None:
    assert PG_URL
    admin = create_engine(PG_URL, tmp_path)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()


@asynccontextmanager
async def store_engine(kind: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty store of ``kind``; skips the test for PostgreSQL without its URL."""
    async with empty_store_engine(kind, tmp_path) as engine:
        await upgrade(engine)
        yield engine


class QueryCounter:
    """Counts the statements an engine sends to the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self._engine = engine
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._seen)


def catalog_app(state: CatalogState) -> FastAPI:
    app = FastAPI()
    app.include_router(configs_router(state))
    app.include_router(prompts_router(state))
    return app


class CatalogServer:
    """The catalog routers on uvicorn, over a store of their own."""

    def __init__(self, kind: str, tmp_path: Path, **state_options: Any) -> None:
        self.kind = kind
        self.schema: str | None = None
        self._tmp_path = tmp_path
        if kind == "postgresql":
            if not PG_URL:
                pytest.skip(PG_SKIP_REASON)
            self.schema = f"wayport_cat_{uuid.uuid4().hex[:16]}"
            self.engine = create_engine(
                PG_URL, tmp_path, connect_args={"server_settings": {"search_path": self.schema}}
            )
        else:
            self.engine = create_engine(None, tmp_path)
        self.state = make_state(self.engine, **state_options)
        self.app = catalog_app(self.state)
        self.port = free_port()
        options = {**server_options(Settings()), "log_level": "warning"}
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="asyncio", **options)
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def start(self) -> CatalogServer:
        self._thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        else:
            raise RuntimeError("the catalog API did not start")
        self.call(self._prepare())
        return self

    async def _prepare(self) -> None:
        if self.schema is not None:
            await _admin(f'CREATE SCHEMA "{self.schema}"', self._tmp_path)
        await upgrade(self.engine)
        await self.state.start()

    async def _teardown(self) -> None:
        await self.engine.dispose()
        if self.schema is not None:
            await _admin(f'DROP SCHEMA "{self.schema}" CASCADE', self._tmp_path)

    def stop(self) -> None:
        self.http.close()
        try:
            self.call(self._teardown())
        finally:
            self.server.should_exit = True
            self._thread.join(10)
            self.loop.close()


@contextmanager
def running_server(kind: str, tmp_path: Path, **state_options: Any) -> Iterator[CatalogServer]:
    server = CatalogServer(kind, tmp_path, **state_options).start()
    try:
        yield server
    finally:
        server.stop()


def assert_failure(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is the catalog's failure envelope with ``status``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "failure"
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)
    return body
