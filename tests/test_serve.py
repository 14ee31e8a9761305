"""`wayport serve` as users start it: a real process, settings from flags, env and a file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.emulators.openai import OpenAIEmulator
from wayport.settings import Settings, SettingsError

WAYPORT = str(Path(sys.executable).with_name("wayport"))


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError(
                f"wayport exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("wayport did not become healthy")


def test_wayport_serve_proxies_a_request(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WAYPORT_DATA_DIR": str(tmp_path / "data"),
        "WAYPORT_BASE_URL_OPENAI": openai_emulator.base_url,
    }
    proc = subprocess.Popen(
        [WAYPORT, "serve", "--port", str(port), "--workers", "1"], env=env, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        r = httpx.post(
            url + "/v1/chat/completions",
            headers={"x-portkey-provider": "openai", "Authorization": "Bearer sk-test"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "served"}]},
        )
        assert r.json()["choices"][0]["message"]["content"] == "Echo: served"
        assert (tmp_path / "data").is_dir()
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_refuses_a_bad_setting(tmp_path: Path) -> None:
    proc = subprocess.run(
        [WAYPORT, "serve", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "WAYPORT_DATA_DIR": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "setting 'port' has the invalid value '99999'" in proc.stderr


def test_settings_precedence_file_then_env(tmp_path: Path) -> None:
    file = tmp_path / "wayport.toml"
    file.write_text(
        'port = 9000\ntrusted_hosts = ["vllm.lan"]\n[base_urls]\nopenai = "http://a/v1"\ngroq = "http://g/v1/"\n'
    )
    env = {
        "WAYPORT_PORT": "9100",
        "WAYPORT_BASE_URL_OPENAI": "http://b/v1",
        "WAYPORT_BASE_URL_TOGETHER_AI": "http://t",
    }
    settings = Settings.load(file, env)
    assert settings.port == 9100
    assert settings.trusted_hosts == ("vllm.lan",)
    assert settings.base_urls == {"openai": "http://b/v1", "groq": "http://g/v1", "together-ai": "http://t"}


def test_settings_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="setting 'workers' has the invalid value 'many'"):
        Settings.load(env={"WAYPORT_WORKERS": "many"})
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        Settings.load(bad, env={})


def test_gateway_url_follows_the_environment() -> None:
    code = "import wayport; print(wayport.GATEWAY_URL)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "WAYPORT_GATEWAY_URL": "http://gw.example:9/v1"},
        check=True,
    )
    assert out.stdout.strip() == "http://gw.example:9/v1"
    env = {k: v for k, v in os.environ.items() if k != "WAYPORT_GATEWAY_URL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "http://localhost:8787/v1"
