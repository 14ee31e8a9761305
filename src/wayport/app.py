"""Assembles the ASGI application: the data plane on a direct path table, the rest on Starlette."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from wayport import __version__
from wayport.cache import MemoryBackend, RedisBackend, ResponseCache
from wayport.cache.local_embedder import local_semantic_cache
from wayport.cache.semantic_sync import SemanticSync
from wayport.catalog import CatalogError, CatalogState, configs_router, prompts_router
from wayport.console.app import Console
from wayport.console.budgets import budget_view
from wayport.console.session import SessionSigner
from wayport.control import ControlState, create_control_app
from wayport.control.analytics import Analytics
from wayport.control.api_keys_api import api_keys_router
from wayport.control.virtual_keys_api import virtual_keys_router
from wayport.control.workspaces_api import audit_router, workspaces_router
from wayport.errors import GatewayError
from wayport.gateway.breaker_redis import RedisCircuitBreakers
from wayport.gateway.caching import GatewayCache
from wayport.gateway.dataplane import PRESET_API_KEY, PRESET_PRINCIPAL, Gateway
from wayport.gateway.reply import JSON, Receive, Scope, Send, send_body
from wayport.gateway.retry import RetryRunner
from wayport.gateway.upstream import UpstreamClient
from wayport.observability.metrics import CONTENT_TYPE, Metrics
from wayport.observability.metrics_share import MetricsShare
from wayport.observability.pricing import PriceOverride, Pricer
from wayport.observability.record import BodyLogMode, LogRecord
from wayport.observability.recorder import BodyPolicy, RequestRecorder
from wayport.observability.tracing import tracer_from_environment
from wayport.observability.writer import LogWriter
from wayport.providers import ProviderRegistry
from wayport.providers.base import Endpoint
from wayport.security.audit import CHANGING_METHODS, AuditLog, note_change
from wayport.security.auth import AllowAll, Authenticator, KeyAuthenticator
from wayport.security.budgets import BudgetLedger
from wayport.security.enforcement import Enforcer
from wayport.security.guard import resource_guard, set_principal
from wayport.security.hardening import check_json_depth, oversized_headers, read_body, replay, secured
from wayport.security.keys import ApiKey, KeyRing, KeyStore
from wayport.security.limits import LimitError, parse_usage_limits
from wayport.security.ratelimit import MemoryRateLimiter, RedisRateLimiter
from wayport.security.roles import LOCAL_OPERATOR, Principal
from wayport.security.ssrf import HostPolicy
from wayport.security.usage_gate import UsageGate
from wayport.security.vault import Vault
from wayport.security.virtual_keys import VirtualKeyCache, VirtualKeyStore
from wayport.security.workspaces import WorkspaceStore
from wayport.settings import Settings
from wayport.store.changes import change_probe
from wayport.store.engine import create_engine
from wayport.store.feedback import FeedbackRepository
from wayport.store.filters import LogFilters
from wayport.store.logs import LogRepository
from wayport.store.migrate import upgrade
from wayport.store.tenancy import bound

log = logging.getLogger("wayport")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
# Control-plane paths, served by the FastAPI app of wayport.control (the rest of /v1 is data plane).
CONTROL_PREFIXES = (
    "/v1/logs",
    "/v1/feedback",
    "/v1/analytics",
    "/v1/cache",
    "/v1/control/",
    "/v1/configs",
    "/v1/prompts",
    "/v1/collections",
    "/v1/api-keys",
    "/v1/virtual-keys",
    "/v1/workspaces",
    "/v1/audit-logs",
)
# What the audit log keeps of a control-plane request body it has no better record of.
AUDIT_BODY_LIMIT = 64 * 1024
CHANGES_CHANNEL = "wayport:catalog:changes"


class WayportApp:
    """The whole service as one ASGI callable. State lives here, created at start-up."""

    def __init__(
        self,
        settings: Settings,
        *,
        authenticator: Authenticator | None = None,
        retry: RetryRunner | None = None,
    ) -> None:
        self.settings = settings
        # Shared state of a cluster (breakers now; cache and counters later) lives in Redis.
        self.redis = _redis_client(settings.redis_url) if settings.redis_url else None
        backend = (
            RedisBackend(self.redis) if self.redis is not None else MemoryBackend(settings.cache_max_bytes)
        )
        responses = ResponseCache(backend)
        # Semantic mode uses the local model of the `semantic` extra when it is installed (loaded by
        # the first semantic request); without it, semantic configs are served by exact matching.
        semantic = local_semantic_cache(responses, settings.semantic_cache_threshold)
        self.cache = GatewayCache(responses, semantic)
        # With Redis, the semantic index is shared: a question answered on one node hits on all.
        self.semantic_sync = (
            SemanticSync(self.redis, semantic) if self.redis is not None and semantic is not None else None
        )
        self.metrics = Metrics()
        # The writer joins at start-up, once the store is open.
        self.recorder = RequestRecorder(
            None,
            Pricer({model: PriceOverride.from_mapping(v) for model, v in settings.prices.items()}),
            self.metrics,
            BodyPolicy(BodyLogMode(settings.log_bodies), settings.log_body_limit),
            tracer=tracer_from_environment(),
        )
        self.engine: AsyncEngine | None = None
        self.writer: LogWriter | None = None
        # with `wayport serve --workers N`, what /metrics sums of the other workers
        self.metrics_share: MetricsShare | None = None
        # set at start-up when auth is on: checks keys on the control plane (the data plane's
        # authenticator is the same object)
        self.key_auth: KeyAuthenticator | None = None
        self._console: Console | None = None
        self._control: FastAPI | None = None
        policy = HostPolicy(settings.trusted_hosts)
        self.upstream = UpstreamClient(settings, policy)
        self.gateway = Gateway(
            registry=ProviderRegistry(settings.base_urls),
            upstream=self.upstream,
            policy=policy,
            authenticator=authenticator or AllowAll(),
            retry=retry or RetryRunner(),
            settings=settings,
            breakers=RedisCircuitBreakers(self.redis) if self.redis is not None else None,
            cache=self.cache,
            recorder=self.recorder,
        )
        gateway = self.gateway
        self._posts: dict[str, Handler] = {
            "/v1/chat/completions": lambda s, r, w: gateway.unified(s, r, w, Endpoint.CHAT),
            "/v1/completions": lambda s, r, w: gateway.unified(s, r, w, Endpoint.COMPLETE),
            "/v1/embeddings": lambda s, r, w: gateway.unified(s, r, w, Endpoint.EMBED),
            "/v1/messages": lambda s, r, w: gateway.unified(s, r, w, Endpoint.CHAT, messages=True),
        }
        self._web = Starlette(
            routes=[Route("/health", self._health), Route("/metrics", self._metrics), Route("/", self._root)],
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            oversized = oversized_headers(scope["headers"])
            if oversized is not None:
                await _failure(oversized.status, oversized.message, send)
                return
            path: str = scope["path"]
            if scope["method"] == "POST":
                handler = self._posts.get(path)
                if handler is not None:
                    await handler(scope, receive, send)
                    return
            if scope["method"] == "POST" and path.startswith("/v1/prompts/"):
                ref, _, action = path[len("/v1/prompts/") :].rpartition("/")
                if ref and action == "completions":
                    await self.gateway.prompt_completions(scope, receive, send, ref)
                    return
                if ref and action == "playground":
                    await self.gateway.prompt_playground(scope, receive, send, ref)
                    return
            if path.startswith(CONTROL_PREFIXES):
                await self._control_plane(scope, receive, send)
                return
            if path.startswith("/v1/"):
                await self.gateway.proxy(scope, receive, send)
                return
            if path == "/console" or path.startswith("/console/"):
                await self._console_app(scope, receive, send)
                return
        await self._web(scope, receive, send)

    async def _console_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        console = self._console
        if console is None:
            await _failure(503, "Wayport is starting", send)
            return
        await console({**scope, "root_path": "/console"}, receive, send)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.engine = create_engine(settings.database_url, settings.data_dir)
        await upgrade(self.engine)
        self.logs = LogRepository(self.engine)
        self.vault = Vault.from_settings(settings)
        self.catalog = CatalogState.create(
            self.engine,
            self.vault,
            check_provider=self.gateway.registry.problem,
            check_host=self.gateway.policy.check_url,
            on_config_change=self._config_changed,
            on_prompt_change=self._prompt_changed,
        )
        await self.catalog.start()
        hash_key = await self.vault.get_or_create_secret(self.engine, "api-key-hash")
        self.keys = KeyStore(self.engine, hash_key)
        self.key_ring = KeyRing(self.keys, hash_key)
        await self.key_ring.load()
        self.workspaces = WorkspaceStore(self.engine)
        await self.workspaces.ensure_default()
        self.audit = AuditLog(self.engine)
        self.vk_store = VirtualKeyStore(self.engine, self.vault, self.gateway.registry.problem)
        self.vk_cache = VirtualKeyCache(self.vk_store)
        await self.vk_cache.load()
        self.gateway.virtual_keys = self.vk_cache
        limiter = RedisRateLimiter(self.redis) if self.redis is not None else MemoryRateLimiter()
        self.budgets = BudgetLedger(self.engine)
        self.enforcer = Enforcer(UsageGate(self.budgets, limiter, self.recorder.pricer))
        self.gateway.enforcer = self.enforcer
        if settings.auth:
            self.key_auth = KeyAuthenticator(self.key_ring)
            self.gateway.authenticator = self.key_auth
        self.gateway.saved_configs = self.catalog.resolver
        self.gateway.prompts = self._render_prompt
        self._control = create_control_app(
            ControlState(
                logs=self.logs,
                feedback=FeedbackRepository(self.engine),
                submit=self._submit_log,
                clear_cache=self._clear_cache,
                pricer=self.recorder.pricer,
                body_mode=BodyLogMode(settings.log_bodies),
                max_body_bytes=settings.max_body_bytes,
            )
        )
        self._control.include_router(
            configs_router(self.catalog), dependencies=[Depends(resource_guard("configs"))]
        )
        self._control.include_router(
            prompts_router(self.catalog), dependencies=[Depends(resource_guard("prompts"))]
        )
        self._control.include_router(api_keys_router(self.keys, self.key_ring, self.workspaces))
        self._control.include_router(workspaces_router(self.workspaces))
        self._control.include_router(audit_router(self.audit))
        self._control.include_router(virtual_keys_router(self.vk_store, self.vk_cache, _audit_change))
        self._console = Console(
            self, SessionSigner(await self.vault.get_or_create_secret(self.engine, "console-session"))
        )
        # The caches follow the store; on SQLite only the rounds after a commit read it.
        probe = change_probe(self.engine)
        keys_task = asyncio.create_task(self.key_ring.follow(probe), name="wayport-key-ring")
        vk_task = asyncio.create_task(self.vk_cache.follow(1.0, probe), name="wayport-virtual-keys")
        # Changes made elsewhere (other nodes, other workers, the CLI) arrive through Redis, or
        # without Redis by re-reading the catalog every few seconds.
        changes = asyncio.create_task(
            self._follow_changes() if self.redis is not None else self.catalog.reload_every(5.0, probe),
            name="wayport-catalog-changes",
        )
        self.writer = LogWriter(
            self.logs.insert_many,
            flush_interval_s=settings.log_flush_interval_s,
            spool_path=settings.data_dir / "spool" / "logs.jsonl",
        )
        await self.writer.start()
        self.recorder.writer = self.writer if settings.log_requests else None
        share = None
        if settings.workers > 1:  # the workers of one `wayport serve` share a directory
            writer = self.writer
            self.metrics_share = MetricsShare(
                settings.data_dir / "metrics" / str(os.getppid()),
                self._metrics_text,
                lambda: (
                    self.metrics.observed,
                    writer.queued,
                    writer.written,
                    writer.dropped,
                    writer.spooled,
                ),
            )
            share = asyncio.create_task(self.metrics_share.run(), name="wayport-metrics-share")
        self.recorder.pricer.warm()
        await self.upstream.start()
        retention = (
            asyncio.create_task(self._prune_logs(settings.log_retention_days), name="wayport-log-retention")
            if settings.log_retention_days
            else None
        )
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise grow with it and pause requests.
        gc.collect()
        gc.freeze()
        sync = (
            asyncio.create_task(self.semantic_sync.run(), name="wayport-semantic-sync")
            if self.semantic_sync is not None
            else None
        )
        try:
            yield
        finally:
            for task in (retention, changes, sync, keys_task, vk_task, share):
                if task is not None:
                    task.cancel()
            if probe is not None:
                probe.close()
            await self.upstream.close()
            await self.enforcer.drain()
            # Flush the logs of every answered request before the process goes (SIGTERM included).
            self.recorder.writer = None
            await self.writer.close()
            await self.cache.close()
            await self.engine.dispose()
            if self.recorder.tracer is not None:
                self.recorder.tracer.shutdown()
            if self.redis is not None:
                await self.redis.aclose()

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def _control_plane(self, scope: Scope, receive: Receive, send: Send) -> None:
        control = self._control
        if control is None:  # before start-up finished
            await _failure(503, "Wayport is starting", send)
            return
        send = secured(send)
        principal: Principal = LOCAL_OPERATOR
        try:
            if self.key_auth is not None:
                principal = self.key_auth.control_principal(scope["headers"])
            if scope["method"] in CHANGING_METHODS:
                length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
                body = await read_body(
                    receive,
                    self.settings.max_body_bytes,
                    int(length) if length and length.isdigit() else None,
                )
                if body:
                    check_json_depth(body)
                receive = replay(body, receive)
        except GatewayError as exc:
            await _failure(exc.status, exc.message, send)
            return
        await self._as(principal, control, scope, receive, send)

    async def _as(
        self, principal: Principal, control: FastAPI, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve a control-plane request as ``principal``: its workspace bound, changes audited."""
        set_principal(scope, principal)
        with bound(principal.workspace_id):
            if scope["method"] not in CHANGING_METHODS:
                await control(scope, receive, send)
            else:
                await self._audited(control, principal, scope, receive, send)

    async def control_call(
        self,
        principal: Principal,
        method: str,
        path: str,
        *,
        query: str = "",
        body: Any = None,
        client: str | None = None,
    ) -> tuple[int, Any]:
        """A control-plane request made in-process (the console's): the same routes, scope checks,
        workspace rules and audit entries as over HTTP. Answers (status, decoded JSON)."""
        control = self._control
        if control is None:
            return 503, {"status": "failure", "message": "Wayport is starting"}
        return await _in_process(
            lambda scope, receive, send: self._as(principal, control, scope, receive, send),
            method,
            path,
            query,
            body,
            {"client": (client, 0)} if client else None,
        )

    async def playground_call(
        self, principal: Principal, api_key: Any, ref: str, body: Any, virtual_key: str
    ) -> tuple[int, Any]:
        """``POST /v1/prompts/{ref}/playground`` in-process, as the console's signed-in key, with
        the provider and its credentials from ``virtual_key``."""
        extra = {PRESET_PRINCIPAL: principal, PRESET_API_KEY: api_key}
        return await _in_process(
            lambda scope, receive, send: self.gateway.prompt_playground(scope, receive, send, ref),
            "POST",
            f"/v1/prompts/{ref}/playground",
            "",
            body,
            extra,
            [(b"x-portkey-virtual-key", virtual_key.encode())],
        )

    # -- what the console needs (wayport.console.host.ConsoleHost) ------------------------------

    @property
    def auth_enabled(self) -> bool:
        return self.key_auth is not None

    def verify_token(self, token: str) -> ApiKey:
        if self.key_auth is None:
            raise GatewayError("auth is off; no key is needed", status=400)
        return self.key_auth.verify(token)

    def key_by_id(self, key_id: str) -> ApiKey | None:
        return self.key_ring.by_id(key_id)

    async def budget_usage(self, principal: Principal) -> dict[str, list[dict[str, Any]]]:
        """The budgets of every API key and virtual key ``principal`` sees, with their spend now."""
        owners: list[tuple[str, str, Any]] = []
        with bound(principal.workspace_id):
            for key in await self.keys.list(workspace_id=principal.workspace_id):
                owners.append(("ak", key.id, key.usage_limits))
            for vk in await self.vk_store.list(workspace_id=principal.workspace_id):
                owners.append(("vk", vk.id, vk.usage_limits))
        usage: dict[str, list[dict[str, Any]]] = {}
        for kind, owner_id, limits in owners:
            try:
                budgets = parse_usage_limits(limits)
            except LimitError:
                continue
            for budget in budgets:
                used, reserved = await self.budgets.usage(f"{kind}:{owner_id}", budget)
                usage.setdefault(f"{kind}:{owner_id}", []).append(budget_view(budget, used, reserved))
        return usage

    async def log_groups(
        self, principal: Principal, filters: LogFilters, dimension: str
    ) -> list[dict[str, Any]]:
        with bound(principal.workspace_id):
            return await Analytics(self.logs).groups(filters, dimension)

    async def _audited(
        self, control: FastAPI, principal: Principal, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run a changing control-plane request; its audit entry is written (and the change
        announced to other nodes) before the answer starts, so a client that reads the audit log or
        calls another node right after the answer finds both done."""
        body: list[bytes] = []
        size = 0
        recorded = False

        async def tee_receive() -> Any:
            nonlocal size
            message = await receive()
            chunk = message.get("body", b"")
            if chunk and size < AUDIT_BODY_LIMIT:
                body.append(chunk)
                size += len(chunk)
            return message

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            try:
                if status < 400:
                    await self._announce(scope["path"])
                await self.audit.record(principal, scope, status, b"".join(body)[:AUDIT_BODY_LIMIT] or None)
            except Exception:
                log.exception("could not write the audit entry of %s %s", scope["method"], scope["path"])

        async def tee_send(message: Any) -> None:
            if message["type"] == "http.response.start" and not recorded:
                await record(message["status"])
            await send(message)

        scope.setdefault("state", {})
        try:
            await control(scope, tee_receive, tee_send)
        finally:
            if not recorded:  # the app failed before it answered
                await record(500)

    async def _render_prompt(
        self, ref: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        try:
            return await self.catalog.render_for_completion(ref, body)
        except CatalogError as exc:
            raise GatewayError(exc.message, status=exc.status, errors=exc.errors or None) from None

    async def _announce(self, path: str) -> None:
        """Tell the other nodes at once that a key or virtual key changed (this node knows already)."""
        if path.startswith("/v1/virtual-keys"):
            await self.vk_cache.refresh()
            kind = b"virtual-keys"
        elif path.startswith("/v1/api-keys"):
            kind = b"keys"
        else:
            return
        if self.redis is not None:
            try:
                await self.redis.publish(CHANGES_CHANNEL, kind + b":")
            except Exception:
                log.warning("could not announce a %s change; other nodes see it in a second", kind.decode())

    async def _config_changed(self, slug: str) -> None:
        if self.redis is not None:
            await self.redis.publish(CHANGES_CHANNEL, b"config:" + slug.encode())

    async def _prompt_changed(self, key: str) -> None:
        if self.redis is not None:
            await self.redis.publish(CHANGES_CHANNEL, b"prompt:" + key.encode())

    async def _follow_changes(self) -> None:
        """Apply changes announced by other nodes: saved configs, prompts, keys and virtual keys
        (which every node also re-reads on its own every second or so)."""
        assert self.redis is not None
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANGES_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        kind, _, key = bytes(message["data"]).decode().partition(":")
                        if kind == "config":
                            await self.catalog.resolver.refresh(key)
                        elif kind == "prompt":
                            await self.catalog.renderer.refresh(key)
                        elif kind == "keys":
                            await self.key_ring.refresh()
                        elif kind == "virtual-keys":
                            await self.vk_cache.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lost the catalog change channel; reconnecting in a second")
                await asyncio.sleep(1)

    async def _prune_logs(self, days: int) -> None:
        """Delete logs older than the retention period, now and every hour."""
        while True:
            try:
                deleted = await self.logs.delete_before(datetime.now(UTC) - timedelta(days=days))
                if deleted:
                    log.info("deleted %d logs older than %d days", deleted, days)
            except Exception:
                log.exception("log retention failed; trying again in an hour")
            await asyncio.sleep(3600)

    def _submit_log(self, record: LogRecord) -> bool:
        return self.writer.submit(record) if self.writer is not None else False

    async def _clear_cache(self, namespace: str | None) -> int:
        cache = self.cache.cache
        return await cache.delete_namespace(namespace) if namespace else await cache.clear()

    async def _metrics(self, request: Request) -> Response:
        text = self._metrics_text()
        if self.metrics_share is not None:
            text = self.metrics_share.scrape(text)
        return Response(text, media_type=CONTENT_TYPE)

    def _metrics_text(self) -> bytes:
        writer = self.writer
        stats = None
        if writer is not None:
            stats = lambda: {  # noqa: E731
                "queued": writer.queued,
                "dropped": writer.dropped,
                "written": writer.written,
                "spooled": writer.spooled,
            }
        return self.metrics.render(stats)

    async def _root(self, request: Request) -> Response:
        return PlainTextResponse("Wayport gateway is running. Send OpenAI-shaped requests to /v1.")


async def _audit_change(request: Request, action: str, slug: str, before: Any, after: Any) -> None:
    note_change(request, resource_id=slug, before=before, after=after, action=action)


async def _failure(status: int, message: str, send: Send) -> None:
    """Answer in the gateway's failure envelope."""
    await send_body(send, status, [JSON], orjson.dumps({"status": "failure", "message": message}))


async def _in_process(
    handler: Handler,
    method: str,
    path: str,
    query: str,
    body: Any,
    extra: dict[str, Any] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, Any]:
    """Run ``handler`` on a request built here (no socket); answers (status, decoded JSON body)."""
    payload = orjson.dumps(body) if body is not None else b""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *(headers or []),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("wayport-console", 0),
        "state": {},
        **(extra or {}),
    }
    delivered = False
    status = 500
    chunks: list[bytes] = []

    async def receive() -> Any:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()  # no disconnect: the caller waits for the whole answer
        delivered = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await handler(scope, receive, send)
    raw = b"".join(chunks)
    try:
        # money stays exact: decimals are read as Decimal, never float
        return status, json.loads(raw, parse_float=Decimal) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _redis_client(url: str) -> redis.asyncio.Redis:
    # A blocking pool waits for a free connection under load instead of failing (redis-py's
    # default pool raises once its connections are all busy).
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=256, timeout=2.0)
    return redis.asyncio.Redis(connection_pool=pool)


def create_app(settings: Settings | None = None) -> WayportApp:
    """The uvicorn factory (``wayport.app:create_app``): settings from the environment."""
    return WayportApp(settings or Settings.load())
