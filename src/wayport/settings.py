"""One settings object, read from defaults, an optional TOML file and ``WAYPORT_*`` variables.

Precedence, lowest first: built-in defaults, the settings file (``--config-file``), environment
variables. The CLI writes its flags into the environment so every uvicorn worker sees the same.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "WAYPORT_"
BASE_URL_PREFIX = "WAYPORT_BASE_URL_"


class SettingsError(ValueError):
    """A setting has a value Wayport cannot use; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 1
    data_dir: Path = field(default_factory=lambda: Path.home() / ".wayport")
    database_url: str | None = None
    redis_url: str | None = None
    gateway_url: str = "http://localhost:8787/v1"
    master_key: str | None = field(default=None, repr=False)
    # earlier master keys, still accepted for decryption until `wayport vkeys rotate-master` ran
    master_key_previous: tuple[str, ...] = field(default=(), repr=False)
    trusted_hosts: tuple[str, ...] = ()
    # provider id -> base URL, from WAYPORT_BASE_URL_<PROVIDER> or the file's [base_urls] table
    base_urls: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = 32 * 1024 * 1024
    connect_timeout_s: float = 10.0
    # per attempt, when the request sets no request_timeout: a hung provider never hangs a client
    upstream_timeout_s: float = 600.0
    # streams: the wait for the first content, and for each next chunk once content flows
    stream_first_byte_timeout_s: float = 120.0
    stream_stall_timeout_s: float = 60.0
    upstream_pool_size: int = 1000
    # outbound proxies for provider connections (docs/gateway.md, "Outbound proxy"); when the file
    # and WAYPORT_* leave them unset, the usual http_proxy / https_proxy / no_proxy variables apply
    http_proxy: str | None = field(default=None, repr=False)
    https_proxy: str | None = field(default=None, repr=False)
    no_proxy: str | None = None
    # how long a client's idle keep-alive connection stays open. Longer than the 5 s after which
    # httpx (the openai and portkey-ai SDKs) drops an idle connection, and than the 60 s idle
    # timeout of common load balancers: the client then always closes first, and never sends a
    # request on a connection the gateway is closing at that moment (an ECONNRESET to the caller)
    keep_alive_s: float = 75.0
    # gateway API keys are required on every route but /health and /metrics; false only with
    # a loopback host (`wayport serve --no-auth`)
    auth: bool = True
    # write a log record per request to the store (metrics are kept either way)
    log_requests: bool = True
    # request and response bodies in the logs: full, truncated (to log_body_limit bytes) or off
    log_bodies: str = "truncated"
    log_body_limit: int = 64 * 1024
    # how often queued log records are written (a batch is also written once 500 are queued); each
    # write has a fixed cost, and a crash loses at most this long of records
    log_flush_interval_s: float = 1.0
    # logs older than this many days are deleted (hourly); None keeps them forever
    log_retention_days: int | None = None
    # per-model prices for private deployments, USD per million tokens (settings file [prices.<model>])
    prices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # the in-process response cache (when no Redis is configured)
    cache_max_bytes: int = 128 * 1024 * 1024
    log_level: str = "info"
    # semantic cache: the cosine similarity a neighbour needs (besides agreeing word for word)
    semantic_cache_threshold: float = 0.90

    @property
    def database_path(self) -> Path:
        return self.data_dir / "wayport.db"

    @classmethod
    def load(cls, config_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        path = config_file or env.get("WAYPORT_CONFIG_FILE")
        values = _read_file(Path(path)) if path else {}
        from_env = _read_env(env)
        base_urls = {**values.get("base_urls", {}), **from_env.pop("base_urls", {})}
        values.update(from_env)
        if base_urls:
            values["base_urls"] = base_urls
        for name in _PROXY_SETTINGS:
            # lower case first, as curl reads them; upper case is the common fallback
            conventional = env.get(name) or env.get(name.upper())
            if name not in values and conventional:
                values[name] = conventional
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise SettingsError(f"unknown setting '{name}'; known settings: {', '.join(sorted(known))}")
            kwargs[name] = _coerce(name, raw)
        return replace(cls(), **kwargs)

    def base_url_for(self, provider: str) -> str | None:
        return self.base_urls.get(provider)


_PROXY_SETTINGS = ("http_proxy", "https_proxy", "no_proxy")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
    if "base_urls" in data and not isinstance(data["base_urls"], dict):
        raise SettingsError(f"settings file {path}: [base_urls] must be a table of provider = URL")
    return data


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    base_urls: dict[str, str] = {}
    names = {f.name for f in fields(Settings)}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        if key.startswith(BASE_URL_PREFIX):
            provider = key[len(BASE_URL_PREFIX) :].lower().replace("_", "-")
            base_urls[provider] = value.rstrip("/")
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in names and name != "base_urls":
            values[name] = value
    if base_urls:
        values["base_urls"] = base_urls
    return values


def _coerce(name: str, raw: Any) -> Any:
    try:
        if name in (
            "port",
            "workers",
            "max_body_bytes",
            "upstream_pool_size",
            "cache_max_bytes",
            "log_body_limit",
        ):
            number = int(raw)
            if number < 1 if name != "port" else not 0 <= number <= 65535:
                raise ValueError
            return number
        if name in (
            "log_flush_interval_s",
            "connect_timeout_s",
            "upstream_timeout_s",
            "stream_first_byte_timeout_s",
            "stream_stall_timeout_s",
            "keep_alive_s",
        ):
            seconds = float(raw)
            if seconds <= 0:
                raise ValueError
            return seconds
    except (TypeError, ValueError):
        raise SettingsError(f"setting '{name}' has the invalid value {raw!r}") from None
    if name == "log_retention_days":
        if raw in (None, ""):
            return None
        try:
            days = int(raw)
        except (TypeError, ValueError):
            days = 0
        if days < 1:
            raise SettingsError(f"setting 'log_retention_days' must be a whole number of days, got {raw!r}")
        return days
    if name == "prices":
        if not isinstance(raw, Mapping):
            raise SettingsError("setting 'prices' must be a table of model = {input = ..., output = ...}")
        from wayport.observability.pricing import PriceOverride

        for model, values in raw.items():
            try:
                PriceOverride.from_mapping(values)
            except (ValueError, TypeError, AttributeError) as exc:
                raise SettingsError(f"prices.{model}: {exc}") from None
        return {str(k): dict(v) for k, v in raw.items()}
    if name == "semantic_cache_threshold":
        try:
            threshold = float(raw)
        except (TypeError, ValueError):
            threshold = -1.0
        if not 0.0 < threshold <= 1.0:
            raise SettingsError(f"setting 'semantic_cache_threshold' must be in (0, 1], not {raw!r}")
        return threshold
    if name in ("log_requests", "auth"):
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"setting '{name}' must be true or false, not {raw!r}")
        return str(raw).lower() in ("true", "1", "yes")
    if name in _PROXY_SETTINGS:
        if raw in (None, ""):
            return None
        if not isinstance(raw, str):
            raise SettingsError(f"setting '{name}' must be a string, not {raw!r}")
        if name != "no_proxy":
            from wayport.gateway.proxy import Proxy, ProxyError

            try:
                Proxy.parse(raw, name)
            except ProxyError as exc:
                raise SettingsError(str(exc)) from None
        return raw
    if name == "log_bodies":
        if raw not in ("full", "truncated", "off"):
            raise SettingsError(f"setting 'log_bodies' must be full, truncated or off, not {raw!r}")
        return raw
    if name == "data_dir":
        return Path(str(raw)).expanduser()
    if name == "master_key_previous":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(str(k).strip() for k in items if str(k).strip())
    if name == "trusted_hosts":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(h.strip().lower() for h in items if h.strip())
    if name == "base_urls":
        return {str(k).lower().replace("_", "-"): str(v).rstrip("/") for k, v in dict(raw).items()}
    return None if raw in ("", None) else str(raw)
