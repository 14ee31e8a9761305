"""The ``wayport`` command."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog import CatalogError, ConfigRepository
from wayport.catalog.config_secrets import redact
from wayport.catalog.configs import SavedConfig
from wayport.cli_keys import keys_cli, workspaces_cli
from wayport.cli_vkeys import vkeys_app
from wayport.control.export import ExportFormat, write_export
from wayport.control.local_store import StoreUnavailable, describe_store, is_head, open_store, upgrade_store
from wayport.control.tail import LogTail, log_rows, parse_moment
from wayport.http_server import server_options
from wayport.observability.metrics_share import fresh_run_directory
from wayport.providers import ProviderRegistry
from wayport.security.audit import AuditLog
from wayport.security.bootstrap import bootstrap_admin_key
from wayport.security.ssrf import HostPolicy
from wayport.security.vault import Vault, VaultError
from wayport.settings import Settings, SettingsError
from wayport.store.filters import LogFilters
from wayport.store.logs import LogRepository

T = TypeVar("T")

cli = typer.Typer(
    help="Wayport: an open, self-hosted AI gateway, wire-compatible with Portkey.", no_args_is_help=True
)


@cli.callback()
def _root() -> None:
    """Wayport: an open, self-hosted AI gateway, wire-compatible with Portkey."""


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8787]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1]")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config-file", help="TOML settings file (see docs/configuration.md)")
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without API keys (loopback hosts only)")
    ] = False,
) -> None:
    """Start the gateway."""
    # Flags go into the environment so that every worker process loads the same settings.
    if config_file is not None:
        os.environ["WAYPORT_CONFIG_FILE"] = str(config_file)
    if no_auth:
        os.environ["WAYPORT_AUTH"] = "false"
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"WAYPORT_{name}"] = str(value)
    try:
        settings = Settings.load()
    except SettingsError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if not settings.auth:
        if not is_loopback(settings.host):
            _fail(f"--no-auth serves anyone who can connect; it is refused on {settings.host}", code=2)
        typer.secho(
            "WARNING: auth is OFF (--no-auth): every caller on this machine acts as the owner.",
            fg=typer.colors.YELLOW,
            bold=True,
            err=True,
        )
    # Migrate once here, before the workers start (each worker checks again, a no-op by then).
    try:
        asyncio.run(upgrade_store(settings))
        token = asyncio.run(_bootstrap(settings)) if settings.auth else None
    except StoreUnavailable as exc:
        _fail(str(exc))
    except VaultError as exc:
        _fail(str(exc))
    if token is not None:
        typer.secho(
            "First start: created an owner API key. It is shown this once; store it now:",
            fg=typer.colors.GREEN,
            bold=True,
        )
        typer.echo(f"    {token}")
        typer.echo("Send it as the x-portkey-api-key header; `wayport keys create` makes more.")
    typer.echo(f"Wayport listening on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    if settings.workers > 1:  # where the workers share their metrics for /metrics
        fresh_run_directory(settings.data_dir / "metrics", os.getpid())
    uvicorn.run(
        "wayport.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        **server_options(settings),
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _bootstrap(settings: Settings) -> str | None:
    engine = await open_store(settings)
    try:
        return await bootstrap_admin_key(engine, Vault.from_settings(settings))
    finally:
        await engine.dispose()


db_cli = typer.Typer(help="The store: schema migrations.", no_args_is_help=True)
logs_cli = typer.Typer(help="Request logs: follow them, export them.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(logs_cli, name="logs")
configs_cli = typer.Typer(
    help="Saved configs: list, show, apply from a file (keep them in git).", no_args_is_help=True
)
cli.add_typer(configs_cli, name="configs")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(workspaces_cli, name="workspaces")
cli.add_typer(vkeys_app, name="vkeys")


def _with_configs(settings: Settings, work: Callable[[ConfigRepository], Awaitable[T]]) -> T:
    """Run ``work`` on the store's configs (validated as the gateway validates them)."""

    async def run() -> T:
        engine = await _open(settings)
        try:
            registry = ProviderRegistry(settings.base_urls)
            try:
                vault = Vault.from_settings(settings)
            except VaultError as exc:
                _fail(str(exc))
            return await work(
                ConfigRepository(
                    engine, vault, registry.problem, HostPolicy(settings.trusted_hosts).check_url
                )
            )
        finally:
            await engine.dispose()

    return asyncio.run(run())


@configs_cli.command("list")
def configs_list() -> None:
    """The saved configs as a table."""
    table = Table("slug", "name", "version", "status", "updated (UTC)")
    for saved in _with_configs(_settings(), lambda configs: configs.list()):
        table.add_row(
            saved.slug, saved.name, str(saved.version), saved.status, f"{saved.updated_at:%Y-%m-%d %H:%M}"
        )
    Console().print(table)


@configs_cli.command("show")
def configs_show(slug: str) -> None:
    """One saved config as JSON, its credentials shown as [REDACTED] (apply keeps them)."""
    saved = _with_configs(_settings(), lambda configs: configs.get(slug))
    if saved is None:
        _fail(f"no saved config '{slug}'; `wayport configs list` shows them")
    typer.echo(json.dumps(redact(saved.config), indent=2))


@configs_cli.command("apply")
def configs_apply(
    file: Annotated[Path, typer.Argument(help="JSON file with the config; its name is the slug")],
    slug: Annotated[str | None, typer.Option(help="slug to save under [default: the file name]")] = None,
    name: Annotated[str | None, typer.Option(help="display name [default: the slug]")] = None,
) -> None:
    """Save FILE as a config (a new version when it changed), validated like the gateway does."""
    settings = _settings()
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {file}: {exc}")
    key = slug or file.stem

    async def apply(configs: ConfigRepository) -> tuple[SavedConfig, bool]:
        saved, changed = await configs.apply(key, name or key, config)
        if changed:
            await AuditLog(configs.engine).record_command(
                "wayport configs apply",
                "create" if saved.version == 1 else "update",
                "configs",
                saved.slug,
                workspace_id=saved.workspace_id,
                after={"slug": saved.slug, "name": saved.name, "version": saved.version},
            )
        return saved, changed

    try:
        saved, changed = _with_configs(settings, apply)
    except CatalogError as exc:
        _fail("; ".join([exc.message, *exc.errors]))
    verb = "saved as version" if changed else "unchanged at version"
    typer.echo(f"{saved.slug}: {verb} {saved.version}")


async def _open(settings: Settings) -> AsyncEngine:
    try:
        return await open_store(settings)
    except StoreUnavailable as exc:
        _fail(str(exc))


Since = Annotated[str, typer.Option(help="Logs from this long ago (10m, 2h, 1d) or an ISO 8601 time")]
Until = Annotated[str | None, typer.Option(help="Logs before this time (a duration ago or ISO 8601)")]
Provider = Annotated[list[str] | None, typer.Option("--provider", help="Only this provider (repeatable)")]
Model = Annotated[list[str] | None, typer.Option("--model", help="Only this model, requested or served")]
Status = Annotated[list[str] | None, typer.Option("--status", help="Status code or class: 200, 429, 4xx")]
CacheStatus = Annotated[list[str] | None, typer.Option("--cache-status", help="HIT, MISS, DISABLED, ...")]
TraceId = Annotated[str | None, typer.Option("--trace-id", help="Only this trace")]
User = Annotated[str | None, typer.Option("--user", help="Only this metadata._user")]
Metadata = Annotated[list[str] | None, typer.Option("--metadata", help="key=value a log's metadata holds")]


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create the store or migrate it to the latest schema, and print its revision."""
    settings = _settings()
    try:
        before, after = asyncio.run(upgrade_store(settings))
    except StoreUnavailable as exc:
        _fail(str(exc))
    latest = " (latest)" if is_head(after) else ""
    where = describe_store(settings)
    if before == after:
        typer.echo(f"{where}: already at revision {after}{latest}")
    else:
        typer.echo(f"{where}: upgraded from {before or 'an empty database'} to revision {after}{latest}")


@logs_cli.command("tail")
def logs_tail(
    since: Since = "10m",
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between two looks at the store")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print the logs there are now, then exit")] = False,
    provider: Provider = None,
    model: Model = None,
    status: Status = None,
    cache_status: CacheStatus = None,
    trace_id: TraceId = None,
    user: User = None,
    metadata: Metadata = None,
) -> None:
    """Follow new request logs as a table: time, trace, provider, model, status, latency, tokens, cost.

    Reads the store directly (settings as for `wayport serve`); Ctrl-C stops.
    """
    settings = _settings()
    start = _moment("--since", since)
    filters = _filters(None, provider, model, status, cache_status, trace_id, user, metadata)
    console = Console() if Console().is_terminal else Console(width=200)
    try:
        asyncio.run(_tail(settings, start, filters, interval, once, console))
    except StoreUnavailable as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


async def _tail(
    settings: Settings, since: datetime, filters: LogFilters, interval: float, once: bool, console: Console
) -> None:
    engine = await open_store(settings)
    try:
        tail = LogTail(LogRepository(engine), since, filters)
        console.print(log_rows([], header=True))
        shown = 0
        while True:
            async for batch in tail.poll():
                console.print(log_rows(batch))
                shown += len(batch)
            if once:
                break
            await asyncio.sleep(interval)
        if not shown:
            console.print(f"(no logs since {since.isoformat(timespec='seconds')})", style="dim")
    finally:
        await engine.dispose()


@logs_cli.command("export")
def logs_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write", dir_okay=False)],
    format: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv")] = ExportFormat.JSONL,
    since: Annotated[str | None, typer.Option(help="Logs from this long ago (10m, 2d) or ISO 8601")] = None,
    until: Until = None,
    provider: Provider = None,
    model: Model = None,
    status: Status = None,
    cache_status: CacheStatus = None,
    trace_id: TraceId = None,
    user: User = None,
    metadata: Metadata = None,
    bodies: Annotated[
        bool, typer.Option("--bodies/--no-bodies", help="Include request and response bodies")
    ] = True,
) -> None:
    """Export the matching logs, oldest first, to a JSONL or CSV file, with a progress bar."""
    settings = _settings()
    window = LogFilters(
        since=_moment("--since", since) if since else None, until=_moment("--until", until) if until else None
    )
    filters = _filters(window, provider, model, status, cache_status, trace_id, user, metadata)
    try:
        written = asyncio.run(_export(settings, filters, format, output, bodies))
    except StoreUnavailable as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"exported {written} logs to {output}")


async def _export(
    settings: Settings, filters: LogFilters, fmt: ExportFormat, output: Path, bodies: bool
) -> int:
    engine = await open_store(settings)
    try:
        repo = LogRepository(engine)
        total = await repo.count(filters)
        columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task("export", total=total)
            return await write_export(
                repo,
                filters,
                fmt,
                output,
                include_bodies=bodies,
                on_progress=lambda n: progress.advance(task, n),
            )
    finally:
        await engine.dispose()


def _settings() -> Settings:
    try:
        return Settings.load()
    except SettingsError as exc:
        _fail(str(exc), code=2)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _moment(option: str, text: str) -> datetime:
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _filters(
    base: LogFilters | None,
    provider: list[str] | None,
    model: list[str] | None,
    status: list[str] | None,
    cache_status: list[str] | None,
    trace_id: str | None,
    user: str | None,
    metadata: list[str] | None,
) -> LogFilters:
    pairs: dict[str, str] = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--metadata")
        pairs[key] = value
    base = base or LogFilters()
    try:
        return LogFilters(
            since=base.since,
            until=base.until,
            provider=provider or None,
            model=model or None,
            status=status or None,
            cache_status=cache_status or None,
            trace_id=trace_id,
            user=user,
            metadata=pairs,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from None


def main() -> None:
    cli()
