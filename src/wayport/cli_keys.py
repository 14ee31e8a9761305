"""``wayport keys`` and ``wayport workspaces``: gateway API keys and workspaces from the shell."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.control.local_store import StoreUnavailable, open_store
from wayport.security.audit import AuditLog
from wayport.security.keys import KeyError_, KeyStore
from wayport.security.roles import ORG_ROLES, ScopeError, parse_role
from wayport.security.vault import Vault, VaultError
from wayport.security.workspaces import WorkspaceError, WorkspaceStore
from wayport.settings import Settings, SettingsError

T = TypeVar("T")

keys_cli = typer.Typer(help="Gateway API keys: create, list, revoke.", no_args_is_help=True)
workspaces_cli = typer.Typer(help="Workspaces: create, list.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _run(work: Callable[[AsyncEngine, Settings], Awaitable[T]]) -> T:
    try:
        settings = Settings.load()
    except SettingsError as exc:
        _fail(str(exc), code=2)

    async def run() -> T:
        engine = await open_store(settings)
        try:
            return await work(engine, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        _fail(str(exc))
    except VaultError as exc:
        _fail(str(exc))


async def _keys(engine: AsyncEngine, settings: Settings) -> KeyStore:
    vault = Vault.from_settings(settings)
    return KeyStore(engine, await vault.get_or_create_secret(engine, "api-key-hash"))


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="what the key is for, e.g. ci or alice")],
    role: Annotated[str, typer.Option(help="owner, admin, manager, member or viewer")] = "member",
    workspace: Annotated[
        str | None, typer.Option(help="workspace of a manager/member/viewer key [default: default]")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="narrow the role to these scopes (repeatable)")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="the person or service the key belongs to")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="expire after this many days")] = None,
) -> None:
    """Create a key and print its token: it is shown this once, only its hash is kept."""
    try:
        parsed = parse_role(role)
    except ScopeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    if parsed in ORG_ROLES and workspace:
        raise typer.BadParameter(
            f"an {parsed} key acts for every workspace; drop --workspace", param_hint="--role"
        )
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def work(engine: AsyncEngine, settings: Settings) -> str:
        workspace_id = None if parsed in ORG_ROLES else (workspace or "default")
        if workspace_id is not None and await WorkspaceStore(engine).get(workspace_id) is None:
            _fail(f"no workspace '{workspace_id}'; `wayport workspaces create {workspace_id}` makes it")
        store = await _keys(engine, settings)
        try:
            key, token = await store.create(
                name, parsed, workspace_id=workspace_id, owner=owner, scopes=scope, expires_at=expires
            )
        except ScopeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--scope") from None
        await AuditLog(engine).record_command(
            "wayport keys create", "create", "api-keys", key.id, workspace_id=workspace_id, after=key.public()
        )
        typer.echo(f"created {parsed} key {key.id} ({key.prefix}...) in {workspace_id or 'the organisation'}")
        return token

    token = _run(work)
    typer.echo("The key (shown once; store it now):", err=True)
    typer.echo(token)


@keys_cli.command("list")
def keys_list(
    workspace: Annotated[str | None, typer.Option(help="only this workspace's keys")] = None,
) -> None:
    """The keys as a table (never their tokens)."""

    async def work(engine: AsyncEngine, settings: Settings) -> None:
        keys = await (await _keys(engine, settings)).list(workspace_id=workspace)
        table = Table("id", "name", "prefix", "role", "workspace", "status", "expires (UTC)", "created (UTC)")
        for key in keys:
            table.add_row(
                key.id,
                key.name,
                key.prefix + "...",
                key.role.value,
                key.workspace_id or "(organisation)",
                "revoked" if key.revoked_at else "active",
                f"{key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "never",
                f"{key.created_at:%Y-%m-%d %H:%M}",
            )
        Console().print(table)

    _run(work)


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (see `wayport keys list`)")],
) -> None:
    """Revoke a key: every node refuses it within a second."""

    async def work(engine: AsyncEngine, settings: Settings) -> None:
        try:
            key = await (await _keys(engine, settings)).revoke(key_id)
        except KeyError_:
            _fail(f"no key '{key_id}'; `wayport keys list` shows them")
        await AuditLog(engine).record_command(
            "wayport keys revoke",
            "revoke",
            "api-keys",
            key.id,
            workspace_id=key.workspace_id,
            after=key.public(),
        )
        typer.echo(f"revoked {key.name} ({key.prefix}...)")

    _run(work)


@workspaces_cli.command("create")
def workspaces_create(
    workspace_id: Annotated[str, typer.Argument(help="lower-case id, e.g. search-team")],
    name: Annotated[str | None, typer.Option(help="display name [default: the id]")] = None,
) -> None:
    """Create a workspace."""

    async def work(engine: AsyncEngine, settings: Settings) -> None:
        try:
            workspace, created = await WorkspaceStore(engine).create(workspace_id, name)
        except WorkspaceError as exc:
            _fail(str(exc), code=2)
        if created:
            await AuditLog(engine).record_command(
                "wayport workspaces create", "create", "workspaces", workspace.id, after=workspace.public()
            )
        typer.echo(
            f"{'created' if created else 'exists already:'} workspace {workspace.id} ({workspace.name})"
        )

    _run(work)


@workspaces_cli.command("list")
def workspaces_list() -> None:
    """The workspaces as a table."""

    async def work(engine: AsyncEngine, settings: Settings) -> None:
        table = Table("id", "name", "created (UTC)")
        for workspace in await WorkspaceStore(engine).list():
            table.add_row(workspace.id, workspace.name, f"{workspace.created_at:%Y-%m-%d %H:%M}")
        Console().print(table)

    _run(work)
