"""`wayport configs list|show|apply`: configs kept in git, applied to the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wayport.cli import _with_configs, cli
from wayport.settings import Settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WAYPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WAYPORT_DATABASE_URL", raising=False)
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    return tmp_path


def test_apply_list_show(env: Path) -> None:
    file = env / "support-bot.json"
    config = {"provider": "openai", "api_key": "sk-1", "override_params": {"model": "gpt-4o-mini"}}
    file.write_text(json.dumps(config))
    runner = CliRunner()
    first = runner.invoke(cli, ["configs", "apply", str(file)])
    assert first.exit_code == 0, first.output
    assert "support-bot: saved as version 1" in first.output
    assert "unchanged at version 1" in runner.invoke(cli, ["configs", "apply", str(file)]).output
    file.write_text(json.dumps({**config, "override_params": {"model": "gpt-4o"}}))
    assert "saved as version 2" in runner.invoke(cli, ["configs", "apply", str(file)]).output
    listed = runner.invoke(cli, ["configs", "list"])
    assert "support-bot" in listed.output and "2" in listed.output
    shown = runner.invoke(cli, ["configs", "show", "support-bot"])
    assert json.loads(shown.output)["override_params"] == {"model": "gpt-4o"}


def test_show_hides_credentials_and_apply_of_its_output_keeps_them(env: Path) -> None:
    file = env / "support-bot.json"
    file.write_text(
        json.dumps({"provider": "openai", "api_key": "sk-kept-1", "override_params": {"model": "a"}})
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["configs", "apply", str(file)]).exit_code == 0
    shown = runner.invoke(cli, ["configs", "show", "support-bot"]).output
    assert "sk-kept-1" not in shown and json.loads(shown)["api_key"] == "[REDACTED]"
    file.write_text(shown.replace('"a"', '"b"'))  # kept in git without the key, then edited
    assert "saved as version 2" in runner.invoke(cli, ["configs", "apply", str(file)]).output
    saved = _with_configs(Settings.load(), lambda configs: configs.get("support-bot"))
    assert saved is not None and saved.config == {
        "provider": "openai",
        "api_key": "sk-kept-1",
        "override_params": {"model": "b"},
    }


def test_an_invalid_config_is_refused_naming_the_field(env: Path) -> None:
    file = env / "bad.json"
    file.write_text(json.dumps({"provider": "nope", "api_key": "k"}))
    result = CliRunner().invoke(cli, ["configs", "apply", str(file)])
    assert result.exit_code == 1
    assert "path: provider" in result.output and "nope" in result.output


def test_show_an_unknown_slug(env: Path) -> None:
    result = CliRunner().invoke(cli, ["configs", "show", "pc-missing"])
    assert result.exit_code == 1 and "no saved config 'pc-missing'" in result.output


def test_a_bad_master_key_is_a_message_not_a_traceback(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYPORT_MASTER_KEY", "too-short")
    result = CliRunner().invoke(cli, ["configs", "list"])
    assert result.exit_code == 1 and "WAYPORT_MASTER_KEY" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
