"""`wayport serve` as users start it: a real process, settings from flags, env and a file."""

from __future__ import annotations

import os
import re
import socket
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


def start(port: int, env: dict[str, str], *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [WAYPORT, "serve", "--port", str(port), "--workers", "1", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def serve_env(data_dir: Path, emulator: OpenAIEmulator, **extra: str) -> dict[str, str]:
    """The environment of a `wayport serve` with its store in ``data_dir`` and OpenAI emulated."""
    return {
        **os.environ,
        "WAYPORT_DATA_DIR": str(data_dir),
        "WAYPORT_BASE_URL_OPENAI": emulator.base_url,
        **extra,
    }


def stop(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    return out.decode(), err.decode()


def test_wayport_serve_prints_an_owner_key_once_and_requires_it(
    openai_emulator: OpenAIEmulator, tmp_path: Path
) -> None:
    port = free_port()
    env = serve_env(tmp_path / "data", openai_emulator)
    url = f"http://127.0.0.1:{port}"
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "served"}]}
    provider = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-test"}
    proc = start(port, env)
    try:
        wait_healthy(url, proc)
        assert httpx.post(url + "/v1/chat/completions", headers=provider, json=request).status_code == 401
    finally:
        out, _ = stop(proc)
    token = re.search(r"wp-[A-Za-z0-9_-]{43}", out)
    assert token is not None, out
    assert (tmp_path / "data").is_dir()
    proc = start(port, env)
    try:
        wait_healthy(url, proc)
        headers = {**provider, "x-portkey-api-key": token.group(0)}
        r = httpx.post(url + "/v1/chat/completions", headers=headers, json=request)
        assert r.json()["choices"][0]["message"]["content"] == "Echo: served"
    finally:
        out, _ = stop(proc)
    assert "wp-" not in out  # shown once, never again


def test_no_auth_is_for_loopback_only_and_says_so(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    env = serve_env(tmp_path, openai_emulator)
    refused = subprocess.run(
        [WAYPORT, "serve", "--no-auth", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert refused.returncode == 2
    assert "--no-auth" in refused.stderr and "refused on 0.0.0.0" in refused.stderr
    port = free_port()
    proc = start(port, env, "--no-auth")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"x-portkey-provider": "openai", "Authorization": "Bearer sk-test"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "open"}]},
        )
        assert r.status_code == 200
    finally:
        out, err = stop(proc)
    assert "auth is OFF" in err and "wp-" not in out


def health_on(sock: socket.socket) -> bytes:
    """GET /health on an open connection; the answer's status line (b"" when the gateway closed it)."""
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: wayport\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n")[0]


def test_idle_client_connections_outlive_the_sdks_keep_alive(tmp_path: Path) -> None:
    # httpx (the openai and portkey-ai SDKs) reuses an idle connection for up to 5 s. A gateway
    # closing idle connections at that same moment (uvicorn's default) races the client's next
    # request, which then fails with a connection reset. The gateway must be the later to close.
    assert Settings().keep_alive_s > httpx.Limits().keepalive_expiry + 30  # type: ignore[operator]
    port = free_port()
    env = {**os.environ, "WAYPORT_DATA_DIR": str(tmp_path), "WAYPORT_KEEP_ALIVE_S": "6"}
    proc = start(port, env, "--no-auth")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        early, late = (socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2))
        with early, late:
            assert health_on(early) == health_on(late) == b"HTTP/1.1 200 OK"
            time.sleep(5.5)  # idle past httpx's expiry and uvicorn's default: still open
            assert health_on(early) == b"HTTP/1.1 200 OK"
            time.sleep(1.0)  # idle past the setting's 6 s: closed by the gateway
            assert late.recv(1) == b""
    finally:
        stop(proc)


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
