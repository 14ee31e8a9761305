"""Outbound proxies: provider connections through a CONNECT tunnel, no_proxy, and the settings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import openai
import pytest

from tests.conftest import GatewayServer, emulator_settings, free_port
from tests.emulators.openai import OpenAIEmulator
from tests.test_http1 import Server, self_signed, tls_server
from wayport.gateway.http1 import ConnectFailed, HTTPClient
from wayport.gateway.proxy import NoProxy, Proxy, ProxyError, ProxyRoutes
from wayport.settings import Settings, SettingsError

PROVIDER_HOST = "api.provider.test"  # never resolved: the proxy decides where a tunnel goes


class ConnectProxy:
    """An HTTP proxy on loopback that answers CONNECT and pipes the tunnel to ``target``, whatever
    the authority asked for; it records each CONNECT line and Proxy-Authorization header. With
    ``password`` set it answers 407 to a request without the matching credentials."""

    def __init__(self, target: tuple[str, int], password: str | None = None) -> None:
        self.target = target
        self.password = password
        self.connects: list[str] = []
        self.authorizations: list[str | None] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._tunnel, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.connects.append(head[0])
        auth = next(
            (
                line.split(":", 1)[1].strip()
                for line in head
                if line.lower().startswith("proxy-authorization:")
            ),
            None,
        )
        self.authorizations.append(auth)
        if self.password is not None and auth != basic("wayport", self.password):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- parsing ------------------------------------------------------------------------------------


def test_a_proxy_url_is_parsed_and_its_credentials_become_basic_auth() -> None:
    proxy = Proxy.parse("http://wayport:s%40cret@proxy.corp:3128", "https_proxy")
    assert (proxy.host, proxy.port, proxy.shown) == ("proxy.corp", 3128, "proxy.corp:3128")
    assert proxy.authorization == basic("wayport", "s@cret")
    assert "s@cret" not in repr(proxy) and "s%40cret" not in repr(proxy)
    assert Proxy.parse("proxy.corp:8080", "http_proxy") == Proxy("proxy.corp", 8080)
    assert Proxy.parse("http://proxy.corp", "http_proxy").port == 80


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://proxy.corp:3128", "only http:// proxies are supported"),
        ("socks5://proxy.corp:1080", "only http:// proxies are supported"),
        ("http://:3128", "no proxy host"),
        ("http://proxy.corp:port", "the port is not a number"),
    ],
)
def test_a_proxy_url_wayport_cannot_use_is_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ProxyError, match=f"^https_proxy: {message}"):
        Proxy.parse(url, "https_proxy")


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "covered"),
    [
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        (".example.com", "API.Example.COM", 443, True),
        ("*.example.com", "api.example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        ("example.com:8443", "api.example.com", 443, False),
        ("example.com:8443", "api.example.com", 8443, True),
        ("10.0.0.0/8, 192.168.1.5", "10.1.2.3", 443, True),
        ("10.0.0.0/8 192.168.1.5", "192.168.1.5", 80, True),
        ("10.0.0.0/8", "11.0.0.1", 443, False),
        ("[2001:db8::1]:443", "2001:db8::1", 443, True),
        ("2001:db8::/32", "2001:db8:1::7", 443, True),
        ("*", "anything.at.all", 443, True),
        ("", "example.com", 443, False),
    ],
)
def test_no_proxy_covers_names_subdomains_addresses_networks_and_ports(
    no_proxy: str, host: str, port: int, covered: bool
) -> None:
    assert NoProxy.parse(no_proxy).covers(host, port) is covered


def test_each_scheme_has_its_proxy_and_loopback_never_goes_through_one() -> None:
    routes = ProxyRoutes.from_settings("http://plain:3128", "http://secure:3128", "internal.corp")
    assert routes.proxy_for("https", "api.openai.com", 443) == Proxy("secure", 3128)
    assert routes.proxy_for("http", "models.example", 80) == Proxy("plain", 3128)
    assert routes.proxy_for("https", "llm.internal.corp", 443) is None
    for host in ("localhost", "127.0.0.1", "127.8.9.1", "::1", "ollama.localhost"):
        assert routes.proxy_for("http", host, 11434) is None
    assert ProxyRoutes.from_settings(None, None, "anything").proxy_for("https", "api.openai.com", 443) is None


def test_settings_read_the_conventional_variables_and_wayport_ones_win() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "NO_PROXY": "corp"}
    settings = Settings.load(env=env)
    assert (settings.https_proxy, settings.http_proxy, settings.no_proxy) == ("http://lower:2", None, "corp")
    settings = Settings.load(env={**env, "WAYPORT_HTTPS_PROXY": "http://wayport:3", "WAYPORT_NO_PROXY": ""})
    assert (settings.https_proxy, settings.no_proxy) == ("http://wayport:3", None)
    hidden = Settings.load(env={"https_proxy": "http://user:hunter2@proxy:3128"})
    assert "hunter2" not in repr(hidden)


def test_a_bad_proxy_setting_stops_start_up_without_showing_the_password() -> None:
    with pytest.raises(SettingsError, match="https_proxy: only http:// proxies") as caught:
        Settings.load(env={"HTTPS_PROXY": "https://user:hunter2@proxy:3128"})
    assert "hunter2" not in str(caught.value)


# -- the tunnel -----------------------------------------------------------------------------------


@pytest.fixture
def tls_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, int]]:
    """A keep-alive HTTPS server on loopback whose certificate names ``PROVIDER_HOST``, trusted
    through SSL_CERT_FILE; it runs on a loop of its own, like a provider elsewhere."""
    cert, key = self_signed(tmp_path, PROVIDER_HOST)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server, context = tls_server(cert, key)
    loop = asyncio.new_event_loop()
    listener = loop.run_until_complete(asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=context))
    port = listener.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server, port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


async def test_https_goes_through_the_tunnel_with_tls_to_the_provider(
    tls_provider: tuple[Server, int],
) -> None:
    provider, port = tls_provider
    with ConnectProxy(("127.0.0.1", port), password="s3cret") as proxy:
        routes = ProxyRoutes.from_settings(None, f"http://wayport:s3cret@127.0.0.1:{proxy.port}", None)
        http = HTTPClient(limit=4, connect_timeout_s=5, proxies=routes)
        for _ in range(2):  # the second request reuses the tunnelled connection
            response = await http.request("GET", f"https://{PROVIDER_HOST}/v1/models", {}, None)
            assert (response.status, await response.read()) == (200, b"{}")
            response.release()
        await http.close()
    assert proxy.connects == [f"CONNECT {PROVIDER_HOST}:443 HTTP/1.1"]
    assert proxy.authorizations == [basic("wayport", "s3cret")]
    # TLS ran end to end: the provider got the request in clear, with its own host name
    assert provider.requests[0].startswith(f"GET /v1/models HTTP/1.1\r\nhost: {PROVIDER_HOST}\r\n".encode())
    assert len(provider.requests) == 2 and provider.connections == 1


async def test_a_refused_tunnel_is_a_connect_failure_naming_the_proxy_not_its_password(
    tls_provider: tuple[Server, int],
) -> None:
    _, port = tls_provider
    with ConnectProxy(("127.0.0.1", port), password="s3cret") as proxy:
        routes = ProxyRoutes.from_settings(None, f"http://wayport:wrong@127.0.0.1:{proxy.port}", None)
        http = HTTPClient(limit=4, connect_timeout_s=5, proxies=routes)
        with pytest.raises(ConnectFailed) as caught:
            await http.request("GET", f"https://{PROVIDER_HOST}/v1/models", {}, None)
    message = str(caught.value)
    assert f"127.0.0.1:{proxy.port}" in message and "407 Proxy Authentication Required" in message
    assert "wrong" not in message

    down = free_port()
    http = HTTPClient(
        limit=4, connect_timeout_s=5, proxies=ProxyRoutes.from_settings(None, f"127.0.0.1:{down}", None)
    )
    with pytest.raises(ConnectFailed, match=f"^proxy 127.0.0.1:{down}: Connection refused$"):
        await http.request("GET", f"https://{PROVIDER_HOST}/v1/models", {}, None)


async def test_a_guarded_client_tunnels_to_the_address_it_checked_and_no_proxy_goes_direct(
    tls_provider: tuple[Server, int],
) -> None:
    provider, port = tls_provider
    checked: list[str] = []

    async def resolve(host: str, _: int) -> list[str]:
        checked.append(host)
        return ["127.0.0.1"]

    with ConnectProxy(("127.0.0.1", port)) as proxy:
        url = f"https://{PROVIDER_HOST}:{port}/v1/models"
        tunnelled = HTTPClient(
            limit=4,
            connect_timeout_s=5,
            resolve=resolve,
            proxies=ProxyRoutes.from_settings(None, proxy.url, None),
        )
        # the proxy is told the checked address (it resolves nothing); TLS still checks the name
        response = await tunnelled.request("GET", url, {}, None)
        assert response.status == 200
        response.release()
        assert proxy.connects == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]
        # the host in no_proxy: straight to the checked address, the proxy sees nothing
        routes = ProxyRoutes.from_settings(None, proxy.url, f"other.test, {PROVIDER_HOST}")
        direct = HTTPClient(limit=4, connect_timeout_s=5, resolve=resolve, proxies=routes)
        response = await direct.request("GET", url, {}, None)
        assert response.status == 200
        response.release()
        assert len(proxy.connects) == 1 and provider.connections == 2
        for http in (tunnelled, direct):
            await http.close()
    assert checked == [PROVIDER_HOST, PROVIDER_HOST]


def test_the_gateway_reaches_its_provider_through_the_proxy(
    openai_emulator: OpenAIEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wayport")
    emulator_port = int(openai_emulator.base_url.rsplit(":", 1)[1].split("/")[0])
    with ConnectProxy(("127.0.0.1", emulator_port)) as proxy:
        settings = emulator_settings(openai_emulator, tmp_path)
        base_urls = {**settings.base_urls, "openai": f"http://{PROVIDER_HOST}:8080/v1"}
        settings = replace(settings, base_urls=base_urls, http_proxy=proxy.url)
        server = GatewayServer(settings).start()
        try:
            client = openai.OpenAI(
                base_url=server.v1, api_key="sk-test", default_headers={"x-portkey-provider": "openai"}
            )
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
            assert answer.choices[0].message.content
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "one two"}], stream=True
            )
            assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        finally:
            server.stop()
    assert proxy.connects[0] == f"CONNECT {PROVIDER_HOST}:8080 HTTP/1.1"
    said = f"http providers are reached through the proxy 127.0.0.1:{proxy.port} (no_proxy: none)"
    assert said in caplog.messages
    last = openai_emulator.requests[-1].headers
    assert (last["Host"], last["Authorization"]) == (f"{PROVIDER_HOST}:8080", "Bearer sk-test")
