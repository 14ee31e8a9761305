"""The first start of a gateway with auth on: one owner key, printed once and never again.

Two processes starting together on an empty store both try; a claim row in ``vault_secrets``
(insert-or-nothing) lets exactly one of them create the key.
"""

from __future__ import annotations

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.ids import utcnow
from wayport.security.keys import KeyStore
from wayport.security.roles import Role
from wayport.security.vault import Vault
from wayport.security.workspaces import WorkspaceStore
from wayport.store.schema import VaultSecretRow

CLAIM = "bootstrap-admin-key"
_SECRETS: Table = VaultSecretRow.__table__  # type: ignore[assignment]


async def bootstrap_admin_key(engine: AsyncEngine, vault: Vault) -> str | None:
    """The token of a new owner key when the store has never had one; ``None`` otherwise."""
    await WorkspaceStore(engine).ensure_default()
    store = KeyStore(engine, await vault.get_or_create_secret(engine, "api-key-hash"))
    if await store.count():
        return None
    blob, key_id = vault.encrypt(b"claimed", CLAIM.encode())
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(_SECRETS).values(name=CLAIM, secret=blob, key_id=key_id, updated_at=utcnow())
            )
    except IntegrityError:
        return None  # another process made it, or every key was deleted on purpose
    _, token = await store.create("admin (created at first start)", Role.OWNER)
    return token
