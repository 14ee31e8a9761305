"""``wayport vkeys``: virtual keys from the command line, on the store the gateway uses.

Credentials are best passed on standard input (``--key-stdin``): a ``--key`` flag is visible to
other users of the machine in the process list while the command runs.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from wayport.catalog.configs import seal_stored
from wayport.control.errors import FieldError
from wayport.control.local_store import StoreUnavailable, open_store
from wayport.providers import ProviderRegistry
from wayport.security.audit import AuditLog
from wayport.security.vault import Vault, VaultError
from wayport.security.virtual_keys import SlugTaken, UnknownVirtualKey, VirtualKey, VirtualKeyStore
from wayport.settings import Settings, SettingsError

__all__ = ["vkeys_app"]

T = TypeVar("T")

vkeys_app = typer.Typer(
    help="Virtual keys: provider credentials stored encrypted, named by a slug.", no_args_is_help=True
)

Key = Annotated[str | None, typer.Option("--key", help="The provider key (prefer --key-stdin)")]
KeyStdin = Annotated[bool, typer.Option("--key-stdin", help="Read the provider key from standard input")]
AwsKeyId = Annotated[str | None, typer.Option("--aws-access-key-id", help="Bedrock: the access key id")]
AwsToken = Annotated[str | None, typer.Option("--aws-session-token", help="Bedrock: a session token")]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings.load()
    except SettingsError as exc:
        _fail(str(exc), code=2)


def _with_store(work: Callable[[VirtualKeyStore], Awaitable[T]]) -> T:
    """Run ``work`` on the virtual keys of the configured store, with the configured master key."""
    settings = _settings()

    async def run() -> T:
        engine = await open_store(settings)
        try:
            vault = Vault.from_settings(settings)
            return await work(VirtualKeyStore(engine, vault, ProviderRegistry(settings.base_urls).problem))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (StoreUnavailable, VaultError, SlugTaken) as exc:
        _fail(str(exc))
    except FieldError as exc:
        _fail(f"{exc.field}: {exc.message}")
    except UnknownVirtualKey as exc:
        _fail(f"no active virtual key '{exc.args[0]}'; `wayport vkeys list` shows them")


def _key(key: str | None, key_stdin: bool) -> str | None:
    if key is not None and key_stdin:
        raise typer.BadParameter("give --key or --key-stdin, not both", param_hint="--key")
    if key_stdin:
        return sys.stdin.readline().strip() or None
    return key


def _credentials(
    provider: str, key: str | None, aws_key_id: str | None, aws_token: str | None
) -> dict[str, str]:
    """The credentials as the store names them; for Bedrock the key is the secret access key."""
    if provider == "bedrock":
        secret = {
            "aws_access_key_id": aws_key_id,
            "aws_secret_access_key": key,
            "aws_session_token": aws_token,
        }
        return {name: value for name, value in secret.items() if value}
    return {"api_key": key} if key else {}


@vkeys_app.command("add")
def vkeys_add(
    name: Annotated[str, typer.Argument(help="Display name; the slug is made from it")],
    provider: Annotated[str, typer.Option("--provider", help="Provider id: openai, anthropic, bedrock, ...")],
    key: Key = None,
    key_stdin: KeyStdin = False,
    workspace: Annotated[
        str | None, typer.Option("--workspace", help="Workspace id [default: default]")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note for people")] = None,
    slug: Annotated[
        str | None, typer.Option("--slug", help="Use this slug instead of a generated one")
    ] = None,
    resource_name: Annotated[str | None, typer.Option("--resource-name", help="Azure: the resource")] = None,
    deployment: Annotated[str | None, typer.Option("--deployment", help="Azure: the deployment")] = None,
    api_version: Annotated[str | None, typer.Option("--api-version", help="Azure: the API version")] = None,
    aws_access_key_id: AwsKeyId = None,
    aws_session_token: AwsToken = None,
    aws_region: Annotated[str | None, typer.Option("--aws-region", help="Bedrock: the region")] = None,
    vertex_project_id: Annotated[
        str | None, typer.Option("--vertex-project-id", help="Vertex: project")
    ] = None,
    vertex_region: Annotated[str | None, typer.Option("--vertex-region", help="Vertex: region")] = None,
) -> None:
    """Store a provider credential as a virtual key and print its slug."""
    secret = _credentials(provider, _key(key, key_stdin), aws_access_key_id, aws_session_token)
    options = {
        "resource_name": resource_name,
        "deployment_id": deployment,
        "api_version": api_version,
        "aws_region": aws_region,
        "vertex_project_id": vertex_project_id,
        "vertex_region": vertex_region,
    }
    settings = {name: value for name, value in options.items() if value is not None}

    async def add(store: VirtualKeyStore) -> VirtualKey:
        created = await store.create(
            name,
            provider,
            secret,
            settings=settings,
            note=note,
            workspace_id=workspace or "default",
            slug=slug,
        )
        await AuditLog(store.engine).record_command(
            "wayport vkeys add",
            "create",
            "virtual-keys",
            created.slug,
            workspace_id=created.workspace_id,
            after=created.public(),
        )
        return created

    typer.echo(_with_store(add).slug)


@vkeys_app.command("list")
def vkeys_list(
    workspace: Annotated[str | None, typer.Option("--workspace", help="Only this workspace")] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include deleted (archived) keys")] = False,
) -> None:
    """The virtual keys as a table (never their credentials)."""
    keys = _with_store(lambda store: store.list(workspace_id=workspace, include_archived=archived))
    table = Table("slug", "name", "provider", "workspace", "status", "updated (UTC)")
    for item in keys:
        table.add_row(
            item.slug,
            item.name,
            item.provider,
            item.workspace_id or "default",
            item.status,
            f"{item.updated_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


@vkeys_app.command("rotate")
def vkeys_rotate(
    slug: str,
    key: Key = None,
    key_stdin: KeyStdin = False,
    aws_access_key_id: AwsKeyId = None,
    aws_session_token: AwsToken = None,
) -> None:
    """Give a virtual key a new credential; everyone using the slug gets it, nobody changes a thing."""
    value = _key(key, key_stdin)

    async def rotate(store: VirtualKeyStore) -> str:
        current = await store.get(slug, reveal=False)
        if current is None or not current.active:
            raise UnknownVirtualKey(slug)
        secret = _credentials(current.provider, value, aws_access_key_id, aws_session_token)
        if not secret:
            raise FieldError("--key", "give the new key with --key or --key-stdin")
        rotated = await store.update(slug, secret=secret)
        await AuditLog(store.engine).record_command(
            "wayport vkeys rotate",
            "rotate",
            "virtual-keys",
            slug,
            workspace_id=rotated.workspace_id,
            after=rotated.public(),
        )
        return rotated.slug

    typer.echo(f"{_with_store(rotate)}: credential replaced")


@vkeys_app.command("rotate-master")
def vkeys_rotate_master() -> None:
    """Re-encrypt every stored secret (virtual keys, saved configs' credentials) under the current
    WAYPORT_MASTER_KEY.

    Set the old key(s) in WAYPORT_MASTER_KEY_PREVIOUS first (on every node), run this, then remove them.
    """

    async def rotate(store: VirtualKeyStore) -> tuple[int, str]:
        # saved configs hold credentials too (sealed by field, inside their JSON)
        count = await store.vault.rotate(store.engine) + await seal_stored(store.engine, store.vault)
        after = {"master_key_id": store.vault.key_id, "secrets_re_encrypted": count}
        await AuditLog(store.engine).record_command(
            "wayport vkeys rotate-master", "rotate-master", "vault", store.vault.key_id, after=after
        )
        return count, store.vault.key_id

    count, key_id = _with_store(rotate)
    typer.echo(f"re-encrypted {count} secrets under master key {key_id}")
