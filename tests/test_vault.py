"""The vault: AES-GCM round trips, the master key (variable or key file), rotation, secrets at rest."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.test_catalog_harness import KINDS, check_provider, store_engine
from wayport.security.vault import KEY_FILE, Vault, VaultError, parse_master_key
from wayport.security.virtual_keys import VirtualKeyStore
from wayport.settings import Settings
from wayport.store.schema import VaultSecretRow, VirtualKeyRow

SECRET = "sk-proj-super-secret-value-0123456789"


def _key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _vault(text: str | None = None, previous: tuple[str, ...] = ()) -> Vault:
    return Vault(parse_master_key(text or _key_text()), [parse_master_key(p) for p in previous])


# -- encryption -------------------------------------------------------------------------------------


def test_round_trip_under_the_current_key() -> None:
    vault = _vault()
    blob, key_id = vault.encrypt(SECRET.encode(), b"row-1")
    assert SECRET.encode() not in blob
    assert key_id == vault.key_id
    assert vault.decrypt(blob, key_id, b"row-1") == SECRET.encode()


def test_each_encryption_uses_a_fresh_nonce() -> None:
    vault = _vault()
    assert vault.encrypt(b"x", b"a")[0] != vault.encrypt(b"x", b"a")[0]


def test_another_rows_aad_does_not_decrypt() -> None:
    vault = _vault()
    blob, key_id = vault.encrypt(SECRET.encode(), b"row-1")
    with pytest.raises(VaultError, match="another row") as caught:
        vault.decrypt(blob, key_id, b"row-2")
    assert SECRET not in str(caught.value)


def test_a_wrong_key_does_not_decrypt() -> None:
    text = _key_text()
    blob, key_id = _vault(text).encrypt(SECRET.encode(), b"row-1")
    with pytest.raises(VaultError, match=key_id):
        _vault().decrypt(blob, key_id, b"row-1")


def test_a_tampered_ciphertext_does_not_decrypt() -> None:
    vault = _vault()
    blob, key_id = vault.encrypt(SECRET.encode(), b"row-1")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(VaultError, match="altered"):
        vault.decrypt(tampered, key_id, b"row-1")


def test_a_previous_key_still_decrypts() -> None:
    old = _key_text()
    blob, key_id = _vault(old).encrypt(b"value", b"id")
    assert _vault(previous=(old,)).decrypt(blob, key_id, b"id") == b"value"


# -- the master key ---------------------------------------------------------------------------------


def test_a_base64url_key_is_used_as_is() -> None:
    raw = secrets.token_bytes(32)
    text = base64.urlsafe_b64encode(raw).decode()
    assert parse_master_key(text) == raw
    assert parse_master_key(text.rstrip("=")) == raw


def test_a_long_passphrase_is_stretched_deterministically() -> None:
    phrase = "correct horse battery staple and a few more words"
    assert parse_master_key(phrase) == parse_master_key(phrase)
    assert len(parse_master_key(phrase)) == 32
    assert Vault(parse_master_key(phrase)).key_id == Vault(parse_master_key(phrase)).key_id


def test_a_short_master_key_is_refused() -> None:
    with pytest.raises(VaultError, match="too short"):
        parse_master_key("hunter2")


def test_the_key_id_does_not_reveal_the_key() -> None:
    text = _key_text()
    vault = _vault(text)
    assert len(vault.key_id) == 16
    assert vault.key_id not in text and parse_master_key(text).hex()[:16] != vault.key_id


def test_the_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Vault.from_settings(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Vault.from_settings(settings).key_id == first.key_id
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temp file left behind


def test_processes_racing_to_create_the_key_file_agree(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    async def race() -> set[str]:
        vaults = await asyncio.gather(*(asyncio.to_thread(Vault.from_settings, settings) for _ in range(8)))
        return {vault.key_id for vault in vaults}

    assert len(asyncio.run(race())) == 1


def test_a_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    Vault.from_settings(settings)
    os.chmod(tmp_path / KEY_FILE, 0o640)
    with pytest.raises(VaultError, match="chmod 600"):
        Vault.from_settings(settings)


def test_the_configured_key_wins_over_the_file_which_stays_a_previous_key(tmp_path: Path) -> None:
    from_file = Vault.from_settings(Settings(data_dir=tmp_path))
    blob, key_id = from_file.encrypt(b"old", b"id")
    configured = Vault.from_settings(Settings(data_dir=tmp_path, master_key=_key_text()))
    assert configured.key_id != from_file.key_id
    assert configured.decrypt(blob, key_id, b"id") == b"old"


def test_settings_read_previous_keys_comma_separated() -> None:
    settings = Settings.load(env={"WAYPORT_MASTER_KEY_PREVIOUS": "a, b,"})
    assert settings.master_key_previous == ("a", "b")


# -- in the store -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_rotation_re_encrypts_every_row_under_the_new_key(kind: str, tmp_path: Path) -> None:
    old_text, new_text = _key_text(), _key_text()
    old = _vault(old_text)
    async with store_engine(kind, tmp_path) as engine:
        store = VirtualKeyStore(engine, old, check_provider)
        created = [await store.create(f"k{n}", "openai", {"api_key": f"{SECRET}-{n}"}) for n in range(3)]
        hash_key = await old.get_or_create_secret(engine, "api-key-hash")

        rotating = _vault(new_text, previous=(old_text,))
        assert await rotating.rotate(engine) == 4
        assert await rotating.rotate(engine) == 0

        new_only = _vault(new_text)
        fresh = VirtualKeyStore(engine, new_only, check_provider)
        for n, key in enumerate(created):
            again = await fresh.get(key.slug)
            assert again is not None and again.secret["api_key"].value == f"{SECRET}-{n}"
        assert await new_only.get_or_create_secret(engine, "api-key-hash") == hash_key
        async with engine.connect() as connection:
            ids = set((await connection.execute(select(VirtualKeyRow.key_id))).scalars())
            ids |= set((await connection.execute(select(VaultSecretRow.key_id))).scalars())
        assert ids == {new_only.key_id}


@pytest.mark.parametrize("kind", KINDS)
async def test_ciphertexts_cannot_be_swapped_between_rows(kind: str, tmp_path: Path) -> None:
    vault = _vault()
    async with store_engine(kind, tmp_path) as engine:
        store = VirtualKeyStore(engine, vault, check_provider)
        first = await store.create("a", "openai", {"api_key": "sk-a"})
        second = await store.create("b", "openai", {"api_key": "sk-b"})
        async with engine.begin() as connection:
            blob = (
                await connection.execute(select(VirtualKeyRow.secret).where(VirtualKeyRow.id == first.id))
            ).scalar()
            await connection.execute(
                update(VirtualKeyRow).where(VirtualKeyRow.id == second.id).values(secret=blob)
            )
        with pytest.raises(VaultError, match="another row"):
            await store.get(second.slug)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_hash_key_is_created_once_even_when_raced(kind: str, tmp_path: Path) -> None:
    vault = _vault()
    async with store_engine(kind, tmp_path) as engine:
        values = await asyncio.gather(*(vault.get_or_create_secret(engine, "api-key-hash") for _ in range(5)))
        assert len(set(values)) == 1 and len(values[0]) == 32
        assert await vault.get_or_create_secret(engine, "api-key-hash") == values[0]
        assert await vault.get_or_create_secret(engine, "other") != values[0]


async def test_the_database_file_never_holds_a_secret_in_clear(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    vault = Vault.from_settings(settings)
    async with store_engine("sqlite", tmp_path) as engine:
        store = VirtualKeyStore(engine, vault, check_provider)
        key = await store.create(
            "aws", "bedrock", {"aws_access_key_id": "AKIAEXAMPLE123", "aws_secret_access_key": SECRET}
        )
        await store.rotate_secret(key.slug, {"api_key": SECRET + "-rotated"})
        await store.update(key.slug, note="rotated once")
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = b"".join(path.read_bytes() for path in tmp_path.glob("wayport.db*"))
    assert b"rotated once" in data  # the scan does see what the store wrote
    for clear in (SECRET, "AKIAEXAMPLE123", base64.b64encode(SECRET.encode()).decode()):
        assert clear.encode() not in data


def test_settings_replace_keeps_previous_keys_out_of_repr() -> None:
    settings = replace(Settings(), master_key="k" * 40, master_key_previous=("p" * 40,))
    assert "k" * 40 not in repr(settings) and "p" * 40 not in repr(settings)
