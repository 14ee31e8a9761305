"""The Config object of ``x-portkey-config``: validation (reference/portkey.md §1) and the
inheritance of §1.5, resolved once per distinct header value into an immutable routing plan.

Keys are snake_case on the wire; camelCase is accepted and normalised before validation, except
inside the children Portkey keeps verbatim (``override_params``, ``conditions``, ...).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wayport.errors import ConfigError
from wayport.gateway.breaker import BreakerPolicy
from wayport.providers.base import Secret

MODES = ("single", "loadbalance", "fallback", "conditional")
DEFAULT_RETRY_STATUS_CODES = frozenset({429, 500, 502, 503, 504, 529})
MAX_RETRY_ATTEMPTS = 5

# Children of these keys are kept exactly as sent (no camelCase conversion).
VERBATIM_KEYS = frozenset(
    {
        "override_params",
        "params",
        "checks",
        "vertex_service_account_json",
        "conditions",
        "input_guardrails",
        "output_guardrails",
        "default_input_guardrails",
        "default_output_guardrails",
        "cb_config",
        "metadata",
    }
)
# Fields that describe routing and features; everything else on a node is a provider option.
ROUTING_KEYS = frozenset(
    {
        "provider",
        "api_key",
        "virtual_key",
        "name",
        "weight",
        "strategy",
        "targets",
        "override_params",
        "cache",
        "retry",
        "request_timeout",
        "custom_host",
        "forward_headers",
        "strict_open_ai_compliance",
        "before_request_hooks",
        "after_request_hooks",
        "input_guardrails",
        "output_guardrails",
        "on_status_codes",
        "id",
    }
)
# Headers a client may never have forwarded upstream (cloud metadata services, our own control).
FORBIDDEN_FORWARD_HEADERS = frozenset(
    {"x-portkey-forward-headers", "metadata-flavor", "x-aws-ec2-metadata-token", "x-google-metadata-request"}
)
LEGACY_MESSAGE = "This version of config is not supported in this route. Please migrate to the latest version"
INVALID_CONFIG_MESSAGE = (
    "Invalid configuration. It must have either 'provider' and 'api_key', or 'strategy' and 'targets', "
    "or 'cache', or 'retry', or 'request_timeout'"
)

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def to_snake_keys(value: Any) -> Any:
    """Recursively rename camelCase keys to snake_case, leaving verbatim children untouched."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            snake = _CAMEL.sub(r"_\1", key).lower() if isinstance(key, str) else key
            out[snake] = child if snake in VERBATIM_KEYS else to_snake_keys(child)
        return out
    if isinstance(value, list):
        return [to_snake_keys(v) for v in value]
    return value


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ConditionSpec(_Model):
    query: dict[str, Any]
    then: str


class StrategySpec(_Model):
    mode: str
    on_status_codes: list[int] | None = None
    conditions: list[ConditionSpec] | None = None
    default: str | None = None
    cb_config: dict[str, Any] | None = None

    @field_validator("cb_config")
    @classmethod
    def _breaker(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                BreakerPolicy.from_config(value)
            except ValueError as exc:
                raise _fail("cb_config", str(exc)) from None
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in MODES:
            raise _fail("mode", "Invalid 'mode' value. Must be one of: " + ", ".join(MODES))
        return value


class CacheSpec(_Model):
    mode: Literal["simple", "semantic"]
    max_age: int | None = None

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise _fail("max_age", "max_age must be a positive number of seconds")
        return value


class RetrySpec(_Model):
    attempts: int
    on_status_codes: list[int] | None = None
    use_retry_after_header: bool | None = None
    use_retry_after_headers: bool | None = None

    @field_validator("attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if not 0 <= value <= MAX_RETRY_ATTEMPTS:
            raise _fail("attempts", f"retry attempts must be between 0 and {MAX_RETRY_ATTEMPTS}, got {value}")
        return value


class ConfigNode(_Model):
    provider: str | None = None
    api_key: str | None = None
    virtual_key: str | None = None
    name: str | None = None
    weight: float | None = None
    strategy: StrategySpec | None = None
    targets: list[ConfigNode] | None = None
    override_params: dict[str, Any] | None = None
    cache: CacheSpec | None = None
    retry: RetrySpec | None = None
    request_timeout: int | None = None
    custom_host: str | None = None
    forward_headers: list[str] | None = None
    strict_open_ai_compliance: bool | None = None
    before_request_hooks: list[dict[str, Any]] | None = None
    after_request_hooks: list[dict[str, Any]] | None = None
    input_guardrails: list[Any] | None = None
    output_guardrails: list[Any] | None = None

    @field_validator("weight")
    @classmethod
    def _weight(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise _fail("weight", "weight must be zero or positive")
        return value

    @field_validator("request_timeout")
    @classmethod
    def _timeout(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise _fail("request_timeout", "request_timeout must be a positive number of milliseconds")
        return value

    @field_validator("forward_headers")
    @classmethod
    def _forward(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        lowered = [h.strip().lower() for h in value]
        if "x-portkey-forward-headers" in lowered:
            raise _fail(
                "forward_headers", "forward_headers must not contain the 'x-portkey-forward-headers' header"
            )
        bad = sorted(set(lowered) & FORBIDDEN_FORWARD_HEADERS)
        if bad:
            raise _fail("forward_headers", f"forward_headers must not contain {', '.join(bad)}")
        return lowered

    @model_validator(mode="after")
    def _shape(self) -> ConfigNode:
        if self.targets is not None and not self.targets:
            raise _fail("targets", "targets must be a non-empty list")
        if self.strategy is not None and not self.targets:
            raise _fail("strategy", "a 'strategy' needs a non-empty 'targets' list")
        if not (self.model_fields_set or self.model_extra):
            raise _fail("config", INVALID_CONFIG_MESSAGE)
        strategy = self.strategy
        if strategy is not None and strategy.mode == "conditional":
            if not strategy.conditions:
                raise _fail("conditions", "No conditions passed in the query router")
            names = {t.name for t in self.targets or () if t.name}
            for wanted in [c.then for c in strategy.conditions] + (
                [strategy.default] if strategy.default else []
            ):
                if wanted not in names:
                    raise _fail("conditions", f"Invalid target name found in the query router: {wanted}")
        return self


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    on_status_codes: frozenset[int]
    use_retry_after: bool


@dataclass(frozen=True, slots=True)
class CachePolicy:
    mode: str
    max_age: int | None


@dataclass(frozen=True, slots=True)
class Leaf:
    """A target that calls a provider, with everything inherited from its ancestors resolved."""

    path: str
    provider: str | None  # None: the provider comes from the request headers
    api_key: Secret | None
    options: Mapping[str, Any]
    override_params: Mapping[str, Any]
    retry: RetryPolicy | None
    cache: CachePolicy | None
    request_timeout: int | None
    custom_host: str | None
    forward_headers: tuple[str, ...] | None
    strict_open_ai_compliance: bool | None
    name: str | None = None
    weight: float = 1.0
    virtual_key: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    path: str
    mode: str
    targets: tuple[Leaf | Group, ...]
    on_status_codes: frozenset[int] | None = None
    conditions: tuple[ConditionSpec, ...] = ()
    default: str | None = None
    name: str | None = None
    weight: float = 1.0
    breaker: BreakerPolicy | None = None
    # prefix of the breaker keys of this group's targets: the config's id (or hash) and path
    breaker_scope: str = ""


Node = Leaf | Group


@dataclass(frozen=True, slots=True)
class ConfigPlan:
    root: Node
    # The config names no provider and no targets: provider and key come from the headers.
    provider_from_headers: bool
    source: Mapping[str, Any] = field(repr=False, default_factory=dict)


def format_errors(exc: ValidationError) -> list[str]:
    """Pydantic errors as Portkey's strings: ``path: targets,0,provider, message: ...``."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ",".join(str(p) for p in err["loc"])
        out.append(f"path: {path}, message: {err['msg']}")
    return out


@dataclass(frozen=True, slots=True)
class _Inherited:
    override_params: Mapping[str, Any]
    retry: RetryPolicy | None = None
    cache: CachePolicy | None = None
    request_timeout: int | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] | None = None
    strict: bool | None = None
    breaker: BreakerPolicy | None = None


class ConfigParser:
    """Parses and validates config values, caching the plan per distinct header string.

    ``check_provider`` returns an error message for a provider id it does not accept;
    ``check_host`` returns the normalised custom host or raises ``ValueError`` with the reason.
    """

    def __init__(
        self,
        check_provider: Callable[[str], str | None],
        check_host: Callable[[str], str],
        cache_size: int = 1024,
    ) -> None:
        self._check_provider = check_provider
        self._check_host = check_host
        self.parse_header = lru_cache(maxsize=cache_size)(self._parse_header)

    def _parse_header(self, value: str) -> ConfigPlan:
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ConfigError("Invalid config passed. You need to pass a valid json") from None
        return self.parse(data)

    def parse(self, data: Any) -> ConfigPlan:
        if not isinstance(data, dict):
            raise ConfigError("Invalid config passed. The config must be a JSON object")
        if "options" in data:
            raise ConfigError(LEGACY_MESSAGE)
        normalised = to_snake_keys(data)
        try:
            node = ConfigNode.model_validate(normalised)
        except ValidationError as exc:
            raise ConfigError("Invalid config passed", errors=format_errors(exc)) from None
        errors: list[str] = []
        self._check_node(node, (), errors, nested=False)
        if errors:
            raise ConfigError("Invalid config passed", errors=errors)
        # Breaker state is shared by requests that send the same config (or the same config id).
        try:
            canonical = orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:  # e.g. an integer beyond 64 bits in override_params
            raise ConfigError("Invalid config passed", errors=[f"path: config, message: {exc}"]) from None
        digest = hashlib.sha1(canonical).hexdigest()[:16]
        root = self._build(node, "config", _Inherited(override_params={}), str(data.get("id") or digest))
        return ConfigPlan(
            root, provider_from_headers=node.provider is None and not node.targets, source=normalised
        )

    def _check_node(self, node: ConfigNode, loc: tuple[Any, ...], errors: list[str], nested: bool) -> None:
        def add(key: str, message: str) -> None:
            errors.append(f"path: {','.join(str(p) for p in (*loc, key))}, message: {message}")

        if node.provider is not None:
            problem = self._check_provider(node.provider)
            if problem:
                add("provider", problem)
        elif nested and not node.targets and not node.virtual_key:
            add("provider", "a target needs a 'provider' (or 'virtual_key'), or 'strategy' and 'targets'")
        if node.custom_host is not None:
            try:
                self._check_host(node.custom_host)
            except ValueError as exc:
                add("custom_host", f"Invalid custom host: {exc}")
        for i, child in enumerate(node.targets or ()):
            self._check_node(child, (*loc, "targets", i), errors, nested=True)

    def _build(self, node: ConfigNode, path: str, parent: _Inherited, scope: str) -> Node:
        inherited = _Inherited(
            override_params={**parent.override_params, **(node.override_params or {})},
            retry=_retry_policy(node.retry) if node.retry is not None else parent.retry,
            cache=CachePolicy(node.cache.mode, node.cache.max_age)
            if node.cache is not None
            else parent.cache,
            request_timeout=node.request_timeout or parent.request_timeout,
            custom_host=self._check_host(node.custom_host) if node.custom_host else parent.custom_host,
            forward_headers=tuple(node.forward_headers)
            if node.forward_headers is not None
            else parent.forward_headers,
            strict=node.strict_open_ai_compliance
            if node.strict_open_ai_compliance is not None
            else parent.strict,
            breaker=BreakerPolicy.from_config(node.strategy.cb_config)
            if node.strategy is not None and node.strategy.cb_config is not None
            else parent.breaker,
        )
        weight = 1.0 if node.weight is None else node.weight
        if node.targets:
            strategy = node.strategy
            children = tuple(
                self._build(child, f"{path}.targets[{i}]", inherited, scope)
                for i, child in enumerate(node.targets)
            )
            if strategy is None:
                return Group(path, "single", children, name=node.name, weight=weight)
            return Group(
                path,
                strategy.mode,
                children,
                on_status_codes=frozenset(strategy.on_status_codes)
                if strategy.on_status_codes is not None
                else None,
                conditions=tuple(strategy.conditions or ()),
                default=strategy.default,
                name=node.name,
                weight=weight,
                breaker=inherited.breaker,
                breaker_scope=f"{scope}|{path}",
            )
        options = {k: v for k, v in (node.model_extra or {}).items() if k not in ROUTING_KEYS}
        return Leaf(
            path=path,
            provider=node.provider,
            api_key=Secret(node.api_key) if node.api_key else None,
            options=options,
            override_params=inherited.override_params,
            retry=inherited.retry,
            cache=inherited.cache,
            request_timeout=inherited.request_timeout,
            custom_host=inherited.custom_host,
            forward_headers=inherited.forward_headers,
            strict_open_ai_compliance=inherited.strict,
            name=node.name,
            weight=weight,
            virtual_key=node.virtual_key,
        )


def _retry_policy(spec: RetrySpec) -> RetryPolicy:
    codes = (
        frozenset(spec.on_status_codes) if spec.on_status_codes is not None else DEFAULT_RETRY_STATUS_CODES
    )
    use_header = bool(spec.use_retry_after_header or spec.use_retry_after_headers)
    return RetryPolicy(spec.attempts, codes, use_header)
