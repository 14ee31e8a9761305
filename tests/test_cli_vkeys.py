"""`wayport vkeys add|list|rotate|rotate-master` on the embedded store."""

from __future__ import annotations

import asyncio
import base64
import getpass
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wayport.cli import _with_configs, cli
from wayport.cli_vkeys import vkeys_app
from wayport.control.local_store import open_store
from wayport.security.audit import AuditEntry, AuditLog
from wayport.settings import Settings

SECRET = "sk-cli-secret-0123456789abcdef"


def _key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WAYPORT_DATA_DIR", str(tmp_path / "data"))
    for name in ("WAYPORT_DATABASE_URL", "WAYPORT_MASTER_KEY", "WAYPORT_MASTER_KEY_PREVIOUS"):
        monkeypatch.delenv(name, raising=False)
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    return tmp_path


def test_add_list_and_rotate(env: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        vkeys_app, ["add", "CLI key", "--provider", "openai", "--key-stdin"], input=SECRET + "\n"
    )
    assert added.exit_code == 0, added.output
    slug = added.output.strip()
    assert slug.startswith("cli-key-")
    listed = runner.invoke(vkeys_app, ["list"])
    assert slug in listed.output and SECRET not in listed.output
    rotated = runner.invoke(vkeys_app, ["rotate", slug, "--key", SECRET + "-2"])
    assert rotated.exit_code == 0 and "credential replaced" in rotated.output
    assert SECRET not in rotated.output


def test_errors_name_the_problem(env: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(vkeys_app, ["add", "x", "--provider", "nope", "--key", "sk"])
    assert bad.exit_code == 1 and "provider" in bad.output
    missing = runner.invoke(vkeys_app, ["rotate", "no-such-key", "--key", "sk"])
    assert missing.exit_code == 1 and "no active virtual key" in missing.output


def test_rotate_master_moves_every_secret_to_the_new_key(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    old = _key_text()
    monkeypatch.setenv("WAYPORT_MASTER_KEY", old)
    for name in ("a", "b"):
        assert runner.invoke(vkeys_app, ["add", name, "--provider", "openai", "--key", SECRET]).exit_code == 0
    config = env / "keyed.json"  # a saved config's credential is sealed under the master key too
    config.write_text('{"provider": "openai", "api_key": "' + SECRET + '"}')
    assert runner.invoke(cli, ["configs", "apply", str(config)]).exit_code == 0
    monkeypatch.setenv("WAYPORT_MASTER_KEY", _key_text())
    monkeypatch.setenv("WAYPORT_MASTER_KEY_PREVIOUS", old)
    rotated = runner.invoke(vkeys_app, ["rotate-master"])
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 3 secrets" in rotated.output
    monkeypatch.delenv("WAYPORT_MASTER_KEY_PREVIOUS")
    assert "re-encrypted 0 secrets" in runner.invoke(vkeys_app, ["rotate-master"]).output
    saved = _with_configs(Settings.load(), lambda configs: configs.get("keyed"))
    assert saved is not None and saved.config["api_key"] == SECRET  # opens under the new key alone


def test_every_change_made_from_the_shell_is_in_the_audit_log(env: Path) -> None:
    runner = CliRunner()

    def ok(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, list(args), input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    ok("workspaces", "create", "search-team")
    created = ok("keys", "create", "ci", "--role", "member", "--workspace", "search-team")
    key_id = created.split(" key ", 1)[1].split(" ", 1)[0]
    slug = ok("vkeys", "add", "audited", "--provider", "openai", "--key-stdin", stdin=SECRET + "\n").strip()
    ok("vkeys", "rotate", slug, "--key", SECRET + "-2")
    ok("vkeys", "rotate-master")
    config = env / "support-bot.json"
    config.write_text('{"provider": "openai", "api_key": "' + SECRET + '"}')
    ok("configs", "apply", str(config))
    ok("keys", "revoke", key_id)
    ok("workspaces", "create", "search-team")  # exists already: nothing changed, nothing recorded

    async def entries() -> list[AuditEntry]:
        engine = await open_store(Settings.load())
        try:
            return await AuditLog(engine).list()
        finally:
            await engine.dispose()

    log = list(reversed(asyncio.run(entries())))
    assert [(e.path, e.action, e.resource_type, e.resource_id) for e in log] == [
        ("wayport workspaces create", "create", "workspaces", "search-team"),
        ("wayport keys create", "create", "api-keys", key_id),
        ("wayport vkeys add", "create", "virtual-keys", slug),
        ("wayport vkeys rotate", "rotate", "virtual-keys", slug),
        ("wayport vkeys rotate-master", "rotate-master", "vault", log[4].resource_id),
        ("wayport configs apply", "create", "configs", "support-bot"),
        ("wayport keys revoke", "revoke", "api-keys", key_id),
    ]
    assert {(e.method, e.actor, e.status) for e in log} == {("CLI", f"cli:{getpass.getuser()}", 200)}
    assert [e.workspace_id for e in log][1:4] == ["search-team", "default", "default"]
    assert log[6].after["revoked_at"] is not None
    dumped = repr([e.public() for e in log])
    assert SECRET not in dumped and "sk-cli" not in dumped
