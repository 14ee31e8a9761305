"""The data plane: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/models``
and the passthrough for every other ``/v1/*`` path, as plain ASGI handlers.

Per request: read the headers once, read and parse the body, resolve the routing plan (cached
per config string), authenticate, walk the strategy, call the provider (with retries), and
write the answer or relay the stream chunk by chunk.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol

import orjson

from wayport.entropy import uuid4
from wayport.errors import BadRequest, GatewayError, NotFound, PayloadTooLarge, ProviderError, UpstreamTimeout
from wayport.gateway.breaker import Breakers
from wayport.gateway.caching import GatewayCache
from wayport.gateway.config import ConfigParser, ConfigPlan, Leaf
from wayport.gateway.context import Attempt, RequestContext
from wayport.gateway.headers import RequestHeaders
from wayport.gateway.http1 import Response, UpstreamError
from wayport.gateway.messages import NATIVE_PATH, NATIVE_PROVIDER, reply_to_messages, request_to_openai
from wayport.gateway.reply import (
    GATEWAY_EXCEPTION,
    JSON,
    SSE_HEADERS,
    Receive,
    Reply,
    Scope,
    Send,
    send_body,
    upstream_headers,
)
from wayport.gateway.retry import RetryRunner, retry_after_ms
from wayport.gateway.router import RouteInput, Router
from wayport.gateway.streaming import (
    PushRelay,
    StreamFailed,
    StreamPipe,
    UsageTap,
    first_content,
    prepend,
    relay_stream,
)
from wayport.gateway.upstream import UpstreamClient
from wayport.http_server import CLIENT_CHANNEL, ClientChannel
from wayport.observability.recorder import RequestRecorder
from wayport.providers import ProviderRegistry
from wayport.providers.base import (
    Endpoint,
    FanOut,
    ProviderAdapter,
    RetryHints,
    Secret,
    Target,
    UpstreamRequest,
)
from wayport.providers.google_auth import SERVICE_ACCOUNT, ServiceAccount, TokenSource
from wayport.providers.openai_shapes import wants_usage
from wayport.security.auth import Authenticator
from wayport.security.enforcement import Enforcer
from wayport.security.roles import DEFAULT_WORKSPACE
from wayport.security.ssrf import HostPolicy, UnsafeHostError
from wayport.security.virtual_keys import VirtualKey, VirtualKeyCache
from wayport.settings import Settings

log = logging.getLogger("wayport")

# The scope key of a principal authenticated before the data plane (the console's own calls;
# a server-built scope, which no client can set).
PRESET_PRINCIPAL = "wayport.preset_principal"
PRESET_API_KEY = "wayport.preset_api_key"
NO_PROVIDER = "Either x-portkey-config or x-portkey-provider header is required"
NO_PROVIDER_IN_CONFIG = (
    "Either x-portkey-provider needs to be passed. Or the x-portkey-config header should have a valid "
    "config with provider details in it."
)
DEFAULT_MODEL_SENTINEL = "portkey-default"
REQUEST_BEARER_PROVIDERS = frozenset({"vertex-ai"})
MAX_PLAYGROUND_RUNS = 10
PROMPTS_STARTING = "Prompt templates are not available yet (the store is starting)"
ALLOWED_CONTENT_TYPES = ("application/json", "multipart/form-data", "audio/")
# Client headers never copied to the provider on the passthrough route.
PROXY_DROPPED_HEADERS = frozenset(
    {b"host", b"content-length", b"authorization", b"connection", b"expect", b"accept-encoding", b"cookie"}
)


class SavedConfigs(Protocol):
    """Where saved configs come from (the catalog's resolver): memory, never the store."""

    @property
    def version(self) -> int: ...

    def resolve(self, slug: str) -> dict[str, Any] | None: ...

    def workspace_of(self, slug: str) -> str | None: ...


# Renders a prompt reference and request body into (OpenAI request, "chat" | "complete", prompt info).
PromptRenderer = Callable[[str, dict[str, Any]], Awaitable[tuple[dict[str, Any], str, dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Exchange:
    """How one leaf talks to its provider: what was asked and how to answer."""

    endpoint: Endpoint
    params: Mapping[str, Any]
    stream: bool = False
    strict: bool = True
    timeout_ms: int | None = None
    passthrough: bool = False
    hold_until_content: bool = False
    # the stream's usage chunk was asked for by Wayport, not the client
    strip_usage: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """Everything a leaf needs to build its upstream request."""

    endpoint: Endpoint
    headers: RequestHeaders
    body: dict[str, Any]
    raw_body: bytes | None
    # the client's own body when it came through an ingress (e.g. /v1/messages)
    native_body: bytes | None = None

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


class Gateway:
    def __init__(
        self,
        registry: ProviderRegistry,
        upstream: UpstreamClient,
        policy: HostPolicy,
        authenticator: Authenticator,
        retry: RetryRunner,
        settings: Settings,
        breakers: Breakers | None = None,
        cache: GatewayCache | None = None,
        recorder: RequestRecorder | None = None,
    ) -> None:
        self.registry = registry
        self.upstream = upstream
        # Vertex AI service-account keys become access tokens (kept until they near expiry)
        self.google_tokens = TokenSource(upstream.post_form)
        self.policy = policy
        self.authenticator = authenticator
        self.retry = retry
        self.router = Router(breakers=breakers)
        self.cache = cache
        self.recorder = recorder
        # Saved configs (``x-portkey-config: pc-...``) and prompt templates, from the catalog.
        self.saved_configs: SavedConfigs | None = None
        self.prompts: PromptRenderer | None = None
        # Virtual keys by slug, in memory (``x-portkey-virtual-key`` and configs' ``virtual_key``).
        self.virtual_keys: VirtualKeyCache | None = None
        # Budgets and rate limits of API keys and virtual keys.
        self.enforcer: Enforcer | None = None
        self._saved_plan = lru_cache(maxsize=1024)(self._parse_saved)
        self.max_body_bytes = settings.max_body_bytes
        self.timeouts = settings
        self.configs = ConfigParser(self.registry.problem, policy.check_url)
        # x-portkey-custom-host repeats across requests: check each distinct value once.
        self._check_host = lru_cache(maxsize=256)(policy.check_url)

    # -- endpoints -------------------------------------------------------------------------

    async def unified(
        self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint, *, messages: bool = False
    ) -> None:
        """POST /v1/chat/completions, /v1/completions, /v1/embeddings; and /v1/messages (with
        ``messages``), whose Anthropic-format body is translated unless the target is Anthropic."""
        headers = RequestHeaders.parse(scope["headers"])
        ctx = self._context(endpoint, headers)
        model = ""
        try:
            raw: bytes | None = await self._read_body(receive, headers)
            ctx.request_body = raw
            body = _parse_json_object(raw or b"")
            native = None
            if messages:
                native, model = raw, str(body.get("model") or "")
                body, raw = request_to_openai(body), None
            reply = await self._serve(scope, ctx, headers, Call(endpoint, headers, body, raw, native))
        except GatewayError as exc:
            reply = Reply.from_error(exc)
        except Exception:
            reply = _unexpected(ctx)
        if messages and not reply.native:
            reply = reply_to_messages(reply, model)
        await self._respond(scope, ctx, reply, send, receive)

    async def prompt_completions(self, scope: Scope, receive: Receive, send: Send, ref: str) -> None:
        """POST /v1/prompts/{ref}/completions: render a saved prompt, then run it like any request,
        with the request's fields over the template's."""
        headers = RequestHeaders.parse(scope["headers"])
        ctx = self._context(Endpoint.CHAT, headers)
        try:
            raw = await self._read_body(receive, headers)
            ctx.request_body = raw
            call, extra = await self._rendered(ctx, headers, ref, _parse_json_object(raw or b"{}"))
            reply = await self._serve(scope, ctx, headers, call, extra)
        except GatewayError as exc:
            reply = Reply.from_error(exc)
        except Exception:
            reply = _unexpected(ctx)
        await self._respond(scope, ctx, reply, send, receive)

    async def prompt_playground(self, scope: Scope, receive: Receive, send: Send, ref: str) -> None:
        """POST /v1/prompts/{ref}/playground: render one template and run it against several models
        or parameter sets side by side; each run is logged like any request."""
        headers = RequestHeaders.parse(scope["headers"])
        ctx = self._context(Endpoint.CHAT, headers)
        try:
            if self.prompts is None:
                raise GatewayError(PROMPTS_STARTING, status=503)
            body = _parse_json_object(await self._read_body(receive, headers) or b"{}")
            runs = body.get("runs")
            if (
                not isinstance(runs, list)
                or not 1 <= len(runs) <= MAX_PLAYGROUND_RUNS
                or not all(isinstance(run, dict) for run in runs)
            ):
                raise BadRequest(
                    f"runs: a list of 1 to {MAX_PLAYGROUND_RUNS} objects, each with the model and parameters "
                    'to try, e.g. [{"model": "gpt-4o-mini"}, {"model": "gpt-4o", "temperature": 0}]'
                )
            variables = body.get("variables") or {}
            results = await asyncio.gather(
                *(self._playground_run(scope, headers, ref, variables, run) for run in runs)
            )
            reply = Reply(
                200, [JSON], orjson.dumps({"object": "playground", "prompt_id": ref, "results": results})
            )
        except GatewayError as exc:
            reply = Reply.from_error(exc)
        except Exception:
            reply = _unexpected(ctx)
        headers_out = reply.headers + ctx.response_headers()
        await send_body(send, reply.status, headers_out, reply.body)

    async def _playground_run(
        self, scope: Scope, headers: RequestHeaders, ref: str, variables: Any, run: dict[str, Any]
    ) -> dict[str, Any]:
        ctx = self._context(Endpoint.CHAT, headers)
        try:
            call, extra = await self._rendered(
                ctx, headers, ref, {"variables": variables, **run, "stream": False}
            )
            ctx.request_body = orjson.dumps(call.body)
            reply = await self._serve(scope, ctx, headers, call, extra)
        except GatewayError as exc:
            reply = Reply.from_error(exc)
        await reply.discard()  # a run never streams; nothing to relay
        ctx.status, ctx.finished_ns = reply.status, time.monotonic_ns()
        ok = 200 <= reply.status < 300
        cost = self.recorder.price(ctx, reply.status, reply.body) if self.recorder is not None else None
        if self.recorder is not None:
            self.recorder.finish(
                ctx, reply.body, None if ok else reply.body[:2000].decode("utf-8", "replace")
            )
        try:
            answer = orjson.loads(reply.body) if reply.body else {}
        except orjson.JSONDecodeError:
            answer = {}
        choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else {}
        message = choice.get("message") or {}
        error = answer.get("error") if isinstance(answer, dict) else None
        return {
            "model": ctx.model or run.get("model"),
            "parameters": run,
            "status": reply.status,
            "output": message.get("content", choice.get("text")) if ok else None,
            "tool_calls": message.get("tool_calls") if ok else None,
            "usage": ctx.usage,
            "cost_usd": str(cost.usd.normalize()) if cost is not None else None,
            "latency_ms": (ctx.finished_ns - ctx.started_ns) // 1_000_000,
            "trace_id": ctx.trace_id,
            "error": (error.get("message") if isinstance(error, dict) else answer.get("message"))
            if not ok
            else None,
        }

    async def _rendered(
        self, ctx: RequestContext, headers: RequestHeaders, ref: str, body: dict[str, Any]
    ) -> tuple[Call, dict[str, Any]]:
        """A saved prompt rendered into a request, and the prompt's ids for the log's metadata."""
        if self.prompts is None:
            raise GatewayError(PROMPTS_STARTING, status=503)
        request, kind, prompt = await self.prompts(ref, body)
        ctx.prompt_ref, ctx.prompt_workspace = ref, prompt.get("workspace_id")
        ctx.endpoint = Endpoint.COMPLETE if kind == "complete" else Endpoint.CHAT
        extra = {f"_{k}": v for k, v in prompt.items() if k.startswith("prompt") and v is not None}
        return Call(ctx.endpoint, headers, request, None), extra

    async def _serve(
        self,
        scope: Scope,
        ctx: RequestContext,
        headers: RequestHeaders,
        call: Call,
        metadata: Mapping[str, Any] | None = None,
    ) -> Reply:
        """Route a parsed request through the plan (the common part of every data-plane route)."""
        ctx.stream = call.stream
        plan = self._plan(headers)
        ctx.plan = plan
        ctx.metadata = headers.metadata()
        if metadata:
            ctx.metadata.update(metadata)
        preset = scope.get(PRESET_PRINCIPAL)
        if preset is None:
            await self.authenticator.authenticate(ctx, headers)
        elif not preset.can("completions"):
            raise GatewayError(f"this API key ({preset.name}) lacks the scope 'completions'", status=403)
        else:
            # an in-process request of the console, signed in already
            ctx.principal, ctx.api_key = preset, scope.get(PRESET_API_KEY)
        self._check_saved_config(ctx, headers)
        self._check_prompt(ctx)
        route = RouteInput(ctx.metadata, call.body, scope["path"])
        return await self.router.walk(
            plan.root, lambda leaf, spare: self._call_leaf(ctx, call, plan, leaf, spare), route
        )

    async def proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other /v1/* path: forwarded to the provider's base URL as it is (Portkey's proxy route)."""
        headers = RequestHeaders.parse(scope["headers"])
        ctx = self._context(Endpoint.PROXY, headers)
        try:
            raw = await self._read_body(receive, headers)
            ctx.request_body = raw
            plan = self._plan(headers)
            ctx.metadata = headers.metadata()
            await self.authenticator.authenticate(ctx, headers)
            self._check_saved_config(ctx, headers)
            leaf = _first_leaf(plan.root)
            adapter, target = self._target(ctx, leaf, headers, plan)
            if target.api_key is None and SERVICE_ACCOUNT in target.options:
                target = await self._with_token(target)
            ctx.provider, ctx.last_target_path = adapter.name, leaf.path
            path = scope["path"][3:]  # strip "/v1"
            query = scope.get("query_string", b"")
            url, auth = adapter.proxy_request(
                target, scope["method"], path + ("?" + query.decode() if query else ""), raw or None
            )
            forwarded = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in headers.raw
                if k not in PROXY_DROPPED_HEADERS and not k.startswith(b"x-portkey-")
            }
            forwarded.update(auth)
            req = UpstreamRequest(scope["method"], url, forwarded, raw or None)
            exchange = Exchange(
                Endpoint.PROXY,
                {},
                timeout_ms=headers.request_timeout() or leaf.request_timeout,
                passthrough=True,
            )
            reply = await self._attempt(ctx, adapter, target, leaf, req, exchange)
        except GatewayError as exc:
            reply = Reply.from_error(exc)
        except Exception:
            reply = _unexpected(ctx)
        await self._respond(scope, ctx, reply, send, receive)

    # -- pieces ----------------------------------------------------------------------------

    def _context(self, endpoint: Endpoint, headers: RequestHeaders) -> RequestContext:
        portkey = headers.portkey
        key = portkey.get("api-key")
        return RequestContext(
            skip_bodies=portkey.get("debug", "").strip().lower() == "false",
            endpoint=endpoint,
            trace_id=portkey.get("trace-id") or uuid4(),
            gateway_key=Secret(key) if key else None,
            span_id=portkey.get("span-id"),
            parent_span_id=portkey.get("parent-span-id"),
            span_name=portkey.get("span-name"),
        )

    async def _read_body(self, receive: Receive, headers: RequestHeaders) -> bytes:
        limit = self.max_body_bytes
        if headers.content_length is not None and headers.content_length > limit:
            raise PayloadTooLarge(
                f"Request body is {headers.content_length} bytes; the limit is {limit} bytes"
            )
        content_type = headers.content_type
        if content_type and not content_type.lower().startswith(ALLOWED_CONTENT_TYPES):
            raise BadRequest(f"Invalid content type passed: {content_type}; send application/json")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("The client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _plan(self, headers: RequestHeaders) -> ConfigPlan:
        raw = headers.portkey.get("config")
        if raw:
            if self.saved_configs is not None and not raw.lstrip().startswith("{"):
                return self._saved_plan(raw.strip(), self.saved_configs.version)
            return self.configs.parse_header(raw)
        provider = headers.portkey.get("provider")
        if not provider:
            if headers.portkey.get("virtual-key"):
                return _HEADER_PLAN  # the virtual key names the provider
            raise BadRequest(NO_PROVIDER)
        problem = self.registry.problem(provider)
        if problem:
            raise BadRequest(problem)
        return _HEADER_PLAN

    def _check_saved_config(self, ctx: RequestContext, headers: RequestHeaders) -> None:
        """A saved config is only for callers of its workspace (as on the control plane)."""
        raw = headers.portkey.get("config")
        if not raw or self.saved_configs is None or raw.lstrip().startswith("{") or ctx.principal is None:
            return
        slug = raw.strip()
        if not ctx.principal.sees(self.saved_configs.workspace_of(slug) or DEFAULT_WORKSPACE):
            raise BadRequest(f"Config '{slug}' was not found; save it with POST /v1/configs or send the JSON")

    @staticmethod
    def _check_prompt(ctx: RequestContext) -> None:
        """A saved prompt renders only for callers of its workspace (as on the control plane)."""
        principal = ctx.principal
        if (
            ctx.prompt_ref is not None
            and principal is not None
            and not principal.sees(ctx.prompt_workspace or DEFAULT_WORKSPACE)
        ):
            raise NotFound(f"Prompt not found: {ctx.prompt_ref}")

    def _parse_saved(self, slug: str, version: int) -> ConfigPlan:
        # ``version`` is part of the cache key: a saved config that changes is parsed again.
        assert self.saved_configs is not None
        config = self.saved_configs.resolve(slug)
        if config is None:
            raise BadRequest(f"Config '{slug}' was not found; save it with POST /v1/configs or send the JSON")
        return self.configs.parse(config)

    async def _with_token(self, target: Target) -> Target:
        """``target`` with an access token minted from its service-account key (Vertex AI's
        ``vertex_service_account_json``), for a target that has no token."""
        key = target.options[SERVICE_ACCOUNT]
        if not key:
            return target
        token = await self.google_tokens.token(ServiceAccount.parse(key))
        return replace(target, api_key=Secret(token))

    def _target(
        self, ctx: RequestContext, leaf: Leaf, headers: RequestHeaders, plan: ConfigPlan
    ) -> tuple[ProviderAdapter, Target]:
        virtual_key = leaf.virtual_key or (
            headers.portkey.get("virtual-key") if plan.provider_from_headers else None
        )
        if virtual_key:
            vk = self._virtual_key(ctx, virtual_key)
            ctx.virtual_key = vk
            provider = vk.provider
            api_key = leaf.api_key or vk.secret.get("api_key")
            from_key = {k: v.value for k, v in vk.secret.items() if k != "api_key"}
            options: Mapping[str, Any] = {**vk.settings, **from_key, **leaf.options}
        elif plan.provider_from_headers:
            provider = headers.portkey.get("provider", "")
            if not provider:
                raise BadRequest(NO_PROVIDER_IN_CONFIG)
            problem = self.registry.problem(provider)
            if problem:
                raise BadRequest(problem)
            bearer = headers.bearer()
            api_key = leaf.api_key or (Secret(bearer) if bearer else None)
            options = {**headers.provider_options(), **leaf.options}
        else:
            # A config target without a key takes the request's bearer token only for providers
            # whose tokens travel that way (Vertex AI access tokens): a client's own OpenAI key
            # must not reach, say, an Ollama host.
            provider = leaf.provider or ""
            bearer = None if leaf.api_key or provider not in REQUEST_BEARER_PROVIDERS else headers.bearer()
            api_key = leaf.api_key or (Secret(bearer) if bearer else None)
            options = leaf.options
        adapter = self.registry.get(provider)
        if adapter is None:
            raise GatewayError(f"Provider {provider} not found")
        custom_host = leaf.custom_host
        header_host = headers.portkey.get("custom-host")
        if header_host:
            try:
                custom_host = self._check_host(header_host)
            except UnsafeHostError as exc:
                raise BadRequest(f"Invalid custom host: {exc}") from None
        return adapter, Target(provider, api_key, options, custom_host)

    def _virtual_key(self, ctx: RequestContext, slug: str) -> VirtualKey:
        """The virtual key ``slug``, when it exists and the caller's workspace holds it."""
        found = self.virtual_keys.get(slug) if self.virtual_keys is not None else None
        principal = ctx.principal
        if found is None or (
            principal is not None and not principal.sees(found.workspace_id or DEFAULT_WORKSPACE)
        ):
            raise BadRequest(
                f"Virtual key '{slug}' was not found; list them with GET /v1/virtual-keys "
                "or `wayport vkeys list`"
            )
        return found

    async def _call_leaf(
        self, ctx: RequestContext, call: Call, plan: ConfigPlan, leaf: Leaf, spare: bool
    ) -> Reply:
        adapter, target = self._target(ctx, leaf, call.headers, plan)
        ctx.provider, ctx.last_target_path = adapter.name, leaf.path
        if target.api_key is None and SERVICE_ACCOUNT in target.options:
            target = await self._with_token(target)
        if not adapter.supports(call.endpoint):
            raise GatewayError(f"{call.endpoint.value} is not supported by {adapter.name}", status=400)
        if call.native_body is not None and adapter.name == NATIVE_PROVIDER:
            return await self._native_messages(ctx, adapter, target, leaf, call)
        params, raw = _params(call, leaf, adapter)
        model = params.get("model")
        ctx.model = model if isinstance(model, str) else None
        request_params = params
        strip_usage = False
        if call.stream and call.endpoint is not Endpoint.EMBED and not wants_usage(params):
            # Cost needs the usage of every stream: ask the provider for it; a stream that passes
            # through untranslated gets it stripped again before the client sees it.
            options = params.get("stream_options")
            options = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            request_params, raw, strip_usage = {**params, "stream_options": options}, None, True
        req = adapter.build_request(call.endpoint, target, request_params, raw)
        forward = call.headers.forward_headers()
        if forward is None:
            forward = leaf.forward_headers
        if forward:
            extra = call.headers.values_of(forward)
            for one in req.requests if isinstance(req, FanOut) else (req,):
                for name, value in extra.items():
                    one.headers.setdefault(name, value)  # never over the provider's own auth
        strict = call.headers.strict_override()
        exchange = Exchange(
            endpoint=call.endpoint,
            params=params,
            stream=call.stream,
            strict=leaf.strict_open_ai_compliance is not False if strict is None else strict,
            timeout_ms=call.headers.request_timeout() or leaf.request_timeout,
            # Hold a stream back until its first content only when a failure could still be
            # recovered from (a retry or a later fallback target); otherwise send it at once.
            hold_until_content=spare or (leaf.retry is not None and leaf.retry.attempts > 0),
            strip_usage=strip_usage,
        )
        cache, key = self.cache, None
        if cache is not None:
            key = cache.key(ctx, leaf.cache, call.endpoint, call.headers, target, params)
            if key is not None:
                hit = await cache.lookup(ctx, key, call.headers, params, call.stream)
                if hit is not None:
                    ctx.cache_similarity = key.similarity
                    return hit
        if self.enforcer is not None:
            await self.enforcer.admit(ctx, adapter.name, params, call.endpoint)
        if isinstance(req, FanOut):
            fan_out = req
            reply = await self.retry.run(
                ctx, leaf.retry, lambda: self._fan_out(ctx, adapter, target, leaf, fan_out, exchange)
            )
        else:
            single = req
            reply = await self.retry.run(
                ctx, leaf.retry, lambda: self._attempt(ctx, adapter, target, leaf, single, exchange)
            )
        if cache is not None and key is not None and leaf.cache is not None:
            reply = cache.remember(reply, key, leaf.cache, call.headers.portkey.get("cache-namespace"))
        return reply

    async def _native_messages(
        self, ctx: RequestContext, adapter: ProviderAdapter, target: Target, leaf: Leaf, call: Call
    ) -> Reply:
        """A Messages request to Anthropic itself: sent and answered as it is (no translation)."""
        body = call.native_body or b""
        if leaf.override_params:
            body = orjson.dumps({**orjson.loads(body), **leaf.override_params})
        url, auth = adapter.proxy_request(target, "POST", NATIVE_PATH, body)
        req = UpstreamRequest("POST", url, {"content-type": "application/json", **auth}, body)
        exchange = Exchange(
            Endpoint.PROXY,
            {},
            timeout_ms=call.headers.request_timeout() or leaf.request_timeout,
            passthrough=True,
        )
        reply = await self.retry.run(
            ctx, leaf.retry, lambda: self._attempt(ctx, adapter, target, leaf, req, exchange)
        )
        reply.native = True
        return reply

    async def _attempt(
        self,
        ctx: RequestContext,
        adapter: ProviderAdapter,
        target: Target,
        leaf: Leaf,
        req: UpstreamRequest,
        ex: Exchange,
    ) -> Reply:
        """One upstream call. A streamed success is handed to the relay unread; anything else is
        read whole and translated."""
        attempt = Attempt(adapter.name, leaf.path, req.url, time.monotonic_ns(), retry_index=ctx.retry_count)
        ctx.attempts.append(attempt)
        timeouts = self.timeouts
        limit_s = ex.timeout_ms / 1000 if ex.timeout_ms else None
        response: Response | None = None
        try:
            streaming = ex.stream and not ex.passthrough
            async with asyncio.timeout(
                limit_s
                or (timeouts.stream_first_byte_timeout_s if streaming else timeouts.upstream_timeout_s)
            ):
                response = await self.upstream.send(adapter.name, req, guarded=target.custom_host is not None)
                status = attempt.status = response.status
                if ex.passthrough or (ex.stream and 200 <= status < 300 and not _is_json(response)):
                    reply = self._stream_reply(ctx, adapter, response, ex)
                    response = None  # the relay owns it now
                    if streaming and ex.hold_until_content and reply.stream is not None:
                        # Nothing reaches the client before real content: a failure until then
                        # is retried or fallen over from like any other.
                        first = await first_content(reply.stream)
                        reply.stream = prepend(first, reply.stream)
                    return reply
                body = await response.read()
        except TimeoutError:
            attempt.error = "timeout"
            if limit_s is None:
                raise ProviderError(
                    adapter.name, "the provider did not answer in time", status=504, type_="timeout_error"
                ) from None
            raise UpstreamTimeout(ex.timeout_ms or 0) from None
        except StreamFailed as exc:
            attempt.error = exc.message
            raise ProviderError(
                adapter.name, f"the stream failed before any content: {exc.message}"
            ) from None
        except ProviderError as exc:
            attempt.error = exc.message
            raise
        except UpstreamError as exc:
            attempt.error = str(exc)
            raise ProviderError(
                adapter.name, f"the connection broke while reading the answer ({exc})"
            ) from None
        finally:
            attempt.ended_ns = time.monotonic_ns()
            if response is not None:
                response.release()
        headers = upstream_headers(response.raw_headers)
        headers.append(JSON)
        if 200 <= status < 300:
            _require_json(adapter, response)
            return Reply(
                status,
                headers,
                _translated(
                    adapter, lambda: adapter.translate_response(ex.endpoint, body, ex.params, ex.strict)
                ),
            )
        if status == 429 and isinstance(adapter, RetryHints) and retry_after_ms(headers) is None:
            seconds = adapter.retry_after_s(body)
            if seconds is not None:  # for the retry policy and for clients (the SDKs honour both)
                headers.append((b"retry-after-ms", str(round(seconds * 1000)).encode()))
                headers.append((b"retry-after", str(math.ceil(seconds)).encode()))
        return Reply(status, headers, adapter.translate_error(status, body, response.headers))

    def _stream_reply(
        self, ctx: RequestContext, adapter: ProviderAdapter, response: Response, ex: Exchange
    ) -> Reply:
        headers = upstream_headers(response.raw_headers)
        if ex.passthrough:
            headers.append((b"content-type", response.headers.get("content-type", "").encode("latin-1")))
            pipe = StreamPipe(None, None, sse=False)
        else:
            headers.extend(SSE_HEADERS)
            translator = adapter.stream_translator(ex.endpoint, ex.params, ex.strict)
            tap = UsageTap(strip=ex.strip_usage) if translator is None else None
            ctx.usage_source = translator or tap
            pipe = StreamPipe(translator, tap, sse=True, stall_s=self.timeouts.stream_stall_timeout_s)
        stream = relay_stream(response, pipe)
        return Reply(response.status, headers, stream=stream, relay=PushRelay(response, pipe, stream))

    async def _fan_out(
        self,
        ctx: RequestContext,
        adapter: ProviderAdapter,
        target: Target,
        leaf: Leaf,
        req: FanOut,
        ex: Exchange,
    ) -> Reply:
        """Several calls for one answer, sent concurrently; the first failure is the answer."""
        single = replace(ex, stream=False)
        replies = await asyncio.gather(
            *(self._attempt(ctx, adapter, target, leaf, one, single) for one in req.requests)
        )
        for reply in replies:
            if not 200 <= reply.status < 300:
                return reply
        bodies = [reply.body for reply in replies]
        return Reply(replies[0].status, [JSON], _translated(adapter, lambda: req.combine(bodies)))

    async def _respond(
        self, scope: Scope, ctx: RequestContext, reply: Reply, send: Send, receive: Receive
    ) -> None:
        ctx.status = reply.status
        if ctx.virtual_key is not None and reply.stream is None and reply.status >= 400:
            # the caller never had the virtual key's secrets: a provider that echoes its key in an
            # error must not hand it to them (nor to the log)
            reply.body = _without(reply.body, ctx.virtual_key.secret.values())
        headers = reply.headers
        headers.extend(ctx.response_headers())
        if reply.gateway_exception:
            headers.append(GATEWAY_EXCEPTION)
        recorder = self.recorder
        if reply.stream is None:
            if recorder is not None:
                cost = recorder.price(ctx, reply.status, reply.body)
                if cost is not None:
                    headers.append((b"x-wayport-cost-usd", str(cost.usd.normalize()).encode()))
            await send_body(send, reply.status, headers, reply.body)
            ctx.finished_ns = time.monotonic_ns()
            if recorder is not None:
                ok = 200 <= reply.status < 300
                recorder.finish(ctx, reply.body, None if ok else reply.body[:2000].decode("utf-8", "replace"))
            if self.enforcer is not None:
                self.enforcer.settle(ctx)
            return
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        # What the log keeps of the answer: chunks up to the body limit (nothing when bodies are off).
        kept: list[bytes] | None = [] if recorder is not None and recorder.keeps_bodies(ctx) else None
        limit = recorder.bodies.limit if recorder is not None else 0
        kept_bytes = 0

        def keep(chunk: bytes) -> None:
            nonlocal kept_bytes
            if ctx.first_byte_ns is None:
                ctx.first_byte_ns = time.monotonic_ns()
            if kept is not None and kept_bytes <= limit:
                kept.append(chunk)
                kept_bytes += len(chunk)

        completed = False
        try:
            channel: ClientChannel | None = scope.get(CLIENT_CHANNEL)
            relay, stream = reply.relay, reply.stream
            if relay is not None and relay.stream is stream and channel is not None and channel.serves(send):
                completed = await relay.run(channel, keep)
            else:
                completed = await _relay_through_send(stream, send, receive, keep)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await reply.discard()
            ctx.finished_ns = time.monotonic_ns()
            if recorder is not None:
                error = None if completed else "the client disconnected before the stream ended"
                recorder.finish(ctx, b"".join(kept) if kept else None, error)
            if self.enforcer is not None:
                self.enforcer.settle(ctx)


async def _relay_through_send(
    stream: AsyncIterator[bytes], send: Send, receive: Receive, keep: Callable[[bytes], None]
) -> bool:
    """Send ``stream`` chunk by chunk with the ASGI ``send`` (when ``PushRelay`` cannot be used);
    ``False`` when the client left before the end."""
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        async for chunk in stream:
            if watcher.done():
                return False
            keep(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        return not watcher.done()
    finally:
        watcher.cancel()


def _without(body: bytes, secrets: Iterable[Secret]) -> bytes:
    for secret in secrets:
        if len(secret.value) >= 8:
            body = body.replace(secret.value.encode(), b"[REDACTED]")
    return body


def _unexpected(ctx: RequestContext) -> Reply:
    # The traceback goes to the server log (it holds no request values); the client gets the envelope.
    log.exception("unexpected error in request %s", ctx.trace_id)
    return Reply.from_error(GatewayError("Something went wrong"))


def _first_leaf(node: Any) -> Leaf:
    while not isinstance(node, Leaf):
        node = node.targets[0]
    return node


def _params(call: Call, leaf: Leaf, adapter: ProviderAdapter) -> tuple[dict[str, Any], bytes | None]:
    """``{**body, **override_params}`` with ``portkey-default`` resolved; the raw body is kept for
    forwarding when nothing changed."""
    params: dict[str, Any] = call.body
    raw: bytes | None = call.raw_body
    if leaf.override_params:
        params, raw = {**params, **leaf.override_params}, None
    model = params.get("model")
    if (model is None or model == DEFAULT_MODEL_SENTINEL) and adapter.default_model:
        params, raw = {**params, "model": adapter.default_model}, None
    return params, raw


def _parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise BadRequest("Request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def _is_json(response: Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


def _require_json(adapter: ProviderAdapter, response: Response) -> None:
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type:
        raise ProviderError(
            adapter.name,
            f"Invalid response received from {adapter.name}: expected JSON, got "
            f"'{content_type or 'no content type'}' with status {response.status}",
        )


def _translated(adapter: ProviderAdapter, translate: Callable[[], bytes]) -> bytes:
    """Run a response translation; a body that does not have the expected shape is a 502."""
    try:
        return translate()
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ProviderError(adapter.name, f"Invalid response received from {adapter.name}: {exc!r}") from None


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_HEADER_PLAN = ConfigPlan(
    root=Leaf(
        path="config",
        provider=None,
        api_key=None,
        options={},
        override_params={},
        retry=None,
        cache=None,
        request_timeout=None,
        custom_host=None,
        forward_headers=None,
        strict_open_ai_compliance=None,
    ),
    provider_from_headers=True,
)
