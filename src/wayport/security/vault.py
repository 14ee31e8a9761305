"""The vault: provider secrets and Wayport's own secrets, encrypted at rest with AES-256-GCM.

The master key comes from ``WAYPORT_MASTER_KEY`` or, when that is unset, from the key file
``<data_dir>/master.key``, created at first use (mode 0600). ``WAYPORT_MASTER_KEY`` is either

* 32 random bytes in base64url (43 characters, padding optional), used as they are
  (``python -c "import secrets; print(secrets.token_urlsafe(32))"``), or
* any other text of at least 32 characters: a passphrase, stretched to 32 bytes with HKDF-SHA256.
  HKDF does not slow down guessing, so the passphrase must itself be long and random.

Every ciphertext is ``nonce || AES-GCM(plaintext)`` with a random 96-bit nonce, stored next to the
``key_id`` of the key that made it (a fingerprint, not the key) and bound to its row by the
associated data (the row's id), so ciphertexts cannot be swapped between rows. Rotation: set the new
key in ``WAYPORT_MASTER_KEY`` and the old one(s) in ``WAYPORT_MASTER_KEY_PREVIOUS`` (comma
separated) on every node, then run :meth:`Vault.rotate` (``wayport vkeys rotate-master``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Column, Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.catalog.ids import utcnow
from wayport.settings import Settings
from wayport.store.schema import VaultSecretRow, VirtualKeyRow

__all__ = ["KEY_FILE", "MIN_PASSPHRASE", "Vault", "VaultError", "parse_master_key"]

KEY_FILE = "master.key"
KEY_BYTES = 32
NONCE_BYTES = 12
MIN_PASSPHRASE = 32
# fixed salt and context: the same passphrase must give the same key on every node
_HKDF_SALT = b"wayport master key v1"
_HKDF_INFO = b"wayport vault aes-256-gcm"
_KEY_ID_CONTEXT = b"wayport vault key id v1"

_VKEYS = cast(Table, VirtualKeyRow.__table__)
_SECRETS = cast(Table, VaultSecretRow.__table__)


class VaultError(Exception):
    """The vault cannot work: a bad or unsafe master key, or a ciphertext it cannot decrypt.

    Messages name the key (by ``key_id``) or the file, never a secret.
    """


def parse_master_key(text: str, origin: str = "WAYPORT_MASTER_KEY") -> bytes:
    """The 32 key bytes for a configured value: base64url of 32 bytes, or a passphrase (HKDF)."""
    value = text.strip()
    raw = _b64url_32(value)
    if raw is not None:
        return raw
    if len(value) < MIN_PASSPHRASE:
        raise VaultError(
            f"{origin} is too short: use 32 random bytes in base64url "
            f"(python -c 'import secrets; print(secrets.token_urlsafe(32))') "
            f"or a passphrase of at least {MIN_PASSPHRASE} characters"
        )
    kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_HKDF_SALT, info=_HKDF_INFO)
    return kdf.derive(value.encode())


def _b64url_32(value: str) -> bytes | None:
    if len(value.rstrip("=")) != 43:
        return None
    try:
        raw = base64.urlsafe_b64decode(value.rstrip("=") + "=")
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


def key_fingerprint(key: bytes) -> str:
    """A short, stable id of a key: 16 hex characters of an HMAC, which does not reveal the key."""
    return hmac.new(key, _KEY_ID_CONTEXT, hashlib.sha256).hexdigest()[:16]


def load_key_file(path: Path, *, create: bool = True) -> bytes | None:
    """The key in ``path``; a new random one written there first when it is missing (and
    ``create``). The file is created atomically with mode 0600, so two processes starting together
    agree on one key; a file others can read is refused."""
    if not path.exists():
        if not create:
            return None
        _create_key_file(path)
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise VaultError(
            f"the master key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 600 {path}`"
        )
    return parse_master_key(path.read_text(), origin=str(path))


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # write a private temp file, then link it into place: the key file appears complete or not at all,
    # and link() fails when another process got there first (its key wins)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=") + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


class Vault:
    """Encrypts and decrypts with the current master key; decrypts with previous ones too."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        if len(current) != KEY_BYTES or any(len(key) != KEY_BYTES for key in previous):
            raise VaultError("a master key must be 32 bytes")
        self.key_id = key_fingerprint(current)
        self._current = AESGCM(current)
        self._keys = {key_fingerprint(key): AESGCM(key) for key in previous}
        self._keys[self.key_id] = self._current

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """The vault for ``settings``: ``master_key`` (with ``master_key_previous``), else the key
        file in the data directory. With a configured key, an existing key file's key is kept as a
        previous key, so moving from the file to ``WAYPORT_MASTER_KEY`` is one rotation."""
        previous = [
            parse_master_key(text, "WAYPORT_MASTER_KEY_PREVIOUS") for text in settings.master_key_previous
        ]
        path = settings.data_dir / KEY_FILE
        if settings.master_key:
            file_key = load_key_file(path, create=False)
            if file_key is not None:
                previous.append(file_key)
            return cls(parse_master_key(settings.master_key), previous)
        current = load_key_file(path)
        assert current is not None
        return cls(current, previous)

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[bytes, str]:
        """``(nonce || ciphertext, key_id)`` under the current key, bound to ``aad``."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._current.encrypt(nonce, plaintext, aad), self.key_id

    def decrypt(self, blob: bytes, key_id: str, aad: bytes) -> bytes:
        """The plaintext of ``blob`` made under ``key_id`` for ``aad``; :class:`VaultError` when the
        key is unknown, or the ciphertext was altered or belongs to another row."""
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise VaultError(
                f"a secret is encrypted under master key {key_id}, which is neither WAYPORT_MASTER_KEY "
                f"(key {self.key_id}) nor one of WAYPORT_MASTER_KEY_PREVIOUS"
            )
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise VaultError(
                f"a secret under master key {key_id} does not decrypt: "
                "it was altered, or it belongs to another row"
            ) from None

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    async def rotate(self, engine: AsyncEngine) -> int:
        """Re-encrypt under the current key every virtual key and vault secret made under another
        (decrypting with a previous key); one transaction per row. Returns how many rows changed."""
        changed = 0
        for table, column in ((_VKEYS, _VKEYS.c.id), (_SECRETS, _SECRETS.c.name)):
            async with engine.connect() as connection:
                query = select(column).where(table.c.key_id != self.key_id)
                stale = (await connection.execute(query)).scalars().all()
            for ident in stale:
                changed += await self._reencrypt(engine, table, column, ident)
        return changed

    async def _reencrypt(self, engine: AsyncEngine, table: Table, column: Column[Any], ident: str) -> int:
        async with engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                query = select(table.c.secret, table.c.key_id).where(column == ident).with_for_update()
                row = (await connection.execute(query)).first()
                if row is None or row.key_id == self.key_id:
                    return 0  # deleted, or rotated by someone else meanwhile
                aad = ident.encode()
                blob, key_id = self.encrypt(self.decrypt(row.secret, row.key_id, aad), aad)
                await connection.execute(
                    update(table).where(column == ident).values(secret=blob, key_id=key_id)
                )
        return 1

    async def get_or_create_secret(self, engine: AsyncEngine, name: str) -> bytes:
        """Wayport's own secret ``name`` (e.g. ``api-key-hash``): 32 random bytes made once and kept
        encrypted in ``vault_secrets``. Two processes racing both insert; the loser reads the winner's."""
        found = await self._read_secret(engine, name)
        if found is not None:
            return found
        value = secrets.token_bytes(KEY_BYTES)
        blob, key_id = self.encrypt(value, name.encode())
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(_SECRETS).values(name=name, secret=blob, key_id=key_id, updated_at=utcnow())
                )
        except IntegrityError:
            found = await self._read_secret(engine, name)
            if found is None:  # pragma: no cover - a row that vanished between insert and read
                raise
            return found
        return value

    async def _read_secret(self, engine: AsyncEngine, name: str) -> bytes | None:
        async with engine.connect() as connection:
            query = select(_SECRETS.c.secret, _SECRETS.c.key_id).where(_SECRETS.c.name == name)
            row = (await connection.execute(query)).first()
        return None if row is None else self.decrypt(row.secret, row.key_id, name.encode())
