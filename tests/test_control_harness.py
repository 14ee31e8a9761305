"""The control API served for tests: uvicorn on loopback in a background thread, on a store of
its own (a SQLite file, or a PostgreSQL schema dropped afterwards), with a real log writer.

The server's event loop owns the engine; tests reach the store through :meth:`ControlServer.call`,
which runs a coroutine on that loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from tests.conftest import free_port
from wayport.control import ControlState, create_control_app
from wayport.http_server import server_options
from wayport.observability.record import LogRecord
from wayport.observability.writer import LogWriter
from wayport.settings import Settings
from wayport.store import Feedback, FeedbackRepository, LogRepository, create_engine, upgrade

T = TypeVar("T")
PG_URL = os.environ.get("WAYPORT_TEST_DATABASE_URL")
PG_SKIP_REASON = (
    "WAYPORT_TEST_DATABASE_URL is not set; the PostgreSQL half of the control API suite needs it "
    "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
)
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class ControlServer:
    """``create_control_app`` on uvicorn, with the repositories, writer and cache callback it uses."""

    def __init__(self, kind: str, tmp_path: Path, **state_options: Any) -> None:
        self.kind = kind
        self.schema: str | None = None
        if kind == "postgresql":
            if not PG_URL:
                pytest.skip(PG_SKIP_REASON)
            self.schema = f"wayport_ctl_{uuid.uuid4().hex[:16]}"
            self.engine = create_engine(
                PG_URL, tmp_path, connect_args={"server_settings": {"search_path": self.schema}}
            )
        else:
            self.engine = create_engine(None, tmp_path)
        self._tmp_path = tmp_path
        self.logs = LogRepository(self.engine)
        self.feedback = FeedbackRepository(self.engine)
        self.writer = LogWriter(self.logs.insert_many, flush_interval_s=0.01)
        self.cleared: list[str | None] = []
        state_options.setdefault("submit", self.writer.submit)
        state_options.setdefault("clear_cache", self._clear_cache)
        self.state = ControlState(logs=self.logs, feedback=self.feedback, **state_options)
        self.app = create_control_app(self.state)
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

    async def _clear_cache(self, namespace: str | None) -> int:
        self.cleared.append(namespace)
        return 3 if namespace else 7

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def insert(self, records: Sequence[LogRecord]) -> None:
        self.call(self.logs.insert_many(records))

    def insert_feedback(self, items: Sequence[Feedback]) -> None:
        self.call(self.feedback.insert_many(items))

    def start(self) -> ControlServer:
        self._thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        else:
            raise RuntimeError("the control API did not start")
        self.call(self._prepare())
        return self

    async def _prepare(self) -> None:
        if self.schema is not None:
            await self._admin(f'CREATE SCHEMA "{self.schema}"')
        await upgrade(self.engine)
        await self.writer.start()

    async def _admin(self, statement: str) -> None:
        assert PG_URL
        admin = create_engine(PG_URL, self._tmp_path)
        try:
            async with admin.begin() as connection:
                await connection.execute(text(statement))
        finally:
            await admin.dispose()

    async def _teardown(self) -> None:
        await self.writer.close()
        await self.engine.dispose()
        if self.schema is not None:
            await self._admin(f'DROP SCHEMA "{self.schema}" CASCADE')

    def stop(self) -> None:
        self.http.close()
        try:
            self.call(self._teardown())
        finally:
            self.server.should_exit = True
            self._thread.join(10)
            self.loop.close()


@contextmanager
def running_server(kind: str, tmp_path: Path, **state_options: Any) -> Iterator[ControlServer]:
    """A started :class:`ControlServer`; ``state_options`` go to ``ControlState`` (``submit=None``
    inserts custom logs directly; by default they go through a real ``LogWriter``)."""
    server = ControlServer(kind, tmp_path, **state_options).start()
    try:
        yield server
    finally:
        server.stop()


def make_log(n: int, **fields: Any) -> LogRecord:
    """A varied log ``n`` seconds after :data:`T0`."""
    values: dict[str, Any] = {
        "trace_id": f"trace-{n % 5}",
        "created_at": T0 + timedelta(seconds=n),
        "provider": ["openai", "anthropic", "groq"][n % 3],
        "model_requested": ["gpt-4o", "claude-3-5-sonnet", "llama-3.1-8b-instant"][n % 3],
        "model_served": ["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "llama-3.1-8b-instant"][n % 3],
        "status": [200, 200, 429, 500, 400, 200][n % 6],
        "latency_ms": 100 + n * 10,
        "ttft_ms": 40 + n,
        "cost_micros": None if n % 5 == 0 else n * 100,
        "cache_status": ["HIT", "MISS", "DISABLED"][n % 3],
        "metadata": {"_user": f"user-{n % 4}", "env": "prod" if n % 2 else "dev"},
        "prompt_tokens": n,
        "completion_tokens": 2 * n,
        "request_body": f'{{"n": {n}}}',
        "response_body": f'{{"answer": {n}}}',
    }
    values.update(fields)
    return LogRecord(**values)


def assert_failure(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The response is the control API's failure envelope, naming ``field`` when given."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "failure"
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)
    if field is not None:
        assert body["message"].startswith(f"{field}: "), body
        assert body["errors"][0]["field"] == field
    return body
