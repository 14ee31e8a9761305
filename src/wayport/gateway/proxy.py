"""Outbound HTTP proxies: which provider connections go through one, and the tunnel through it.

A connection that goes through a proxy is a ``CONNECT host:port`` tunnel (TLS to the provider runs
inside it, so the proxy sees neither keys nor prompts), for ``https`` and ``http`` providers alike.
The settings follow the conventions curl and most HTTP clients share: ``https_proxy`` for https
providers, ``http_proxy`` for http ones, ``no_proxy`` for hosts reached directly. Loopback hosts are
never sent to a proxy (a proxy's ``localhost`` is not the gateway's).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = ["DIRECT", "NoProxy", "Proxy", "ProxyError", "ProxyRoutes", "TunnelRefused", "open_tunnel"]

_MAX_HEAD = 16 * 1024  # a CONNECT answer longer than this is not from an HTTP proxy

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyError(ValueError):
    """A proxy setting Wayport cannot use; the message names the setting and says what to write."""


class TunnelRefused(OSError):
    """The proxy answered CONNECT with something other than 2xx (or with no HTTP at all)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    # the Proxy-Authorization value when the URL carries user:password; never shown
    authorization: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """``host:port``, for messages: the credentials stay out."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str, setting: str) -> Proxy:
        """``http://[user:password@]host[:port]`` (a bare ``host:port`` means http)."""
        text = url.strip()
        parts = urlsplit(text if "://" in text else f"http://{text}")
        try:
            port = parts.port
        except ValueError:
            raise ProxyError(f"{setting}: the port is not a number") from None
        if parts.scheme.lower() != "http":
            raise ProxyError(
                f"{setting}: only http:// proxies are supported (got {parts.scheme}://); "
                "the tunnel to the provider is encrypted end to end either way"
            )
        if not parts.hostname:
            raise ProxyError(f"{setting}: no proxy host; write it as http://host:port")
        authorization = None
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        return cls(parts.hostname, port or 80, authorization)


@dataclass(frozen=True, slots=True)
class NoProxy:
    """The ``no_proxy`` list: ``*``, host names (``example.com``, ``.example.com`` and
    ``*.example.com`` all cover ``example.com`` and its subdomains), IP addresses and CIDR blocks,
    each optionally ``:port``."""

    everything: bool = False
    names: tuple[tuple[str, int | None], ...] = ()
    networks: tuple[tuple[IPNetwork, int | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> NoProxy:
        names: list[tuple[str, int | None]] = []
        networks: list[tuple[IPNetwork, int | None]] = []
        for raw in text.replace(" ", ",").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return cls(everything=True)
            host, port = _split_port(entry)
            try:
                networks.append((ipaddress.ip_network(host, strict=False), port))
            except ValueError:
                names.append((host.removeprefix("*").lstrip(".").rstrip("."), port))
        return cls(False, tuple(names), tuple(networks))

    def covers(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        host = host.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(
                (host == name or host.endswith("." + name)) and wanted in (None, port)
                for name, wanted in self.names
            )
        return any(address in network and wanted in (None, port) for network, wanted in self.networks)


@dataclass(frozen=True, slots=True)
class ProxyRoutes:
    """Which proxy, if any, a connection to ``(scheme, host, port)`` goes through."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: NoProxy = NoProxy()

    @classmethod
    def from_settings(
        cls, http_proxy: str | None, https_proxy: str | None, no_proxy: str | None
    ) -> ProxyRoutes:
        return cls(
            Proxy.parse(http_proxy, "http_proxy") if http_proxy else None,
            Proxy.parse(https_proxy, "https_proxy") if https_proxy else None,
            NoProxy.parse(no_proxy or ""),
        )

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or _is_loopback(host) or self.no_proxy.covers(host, port):
            return None
        return proxy


DIRECT = ProxyRoutes()
"""No proxy for any connection."""


async def open_tunnel(
    loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int
) -> tuple[asyncio.Transport, bytes]:
    """Connect to ``proxy`` and ask it for a tunnel to ``host:port`` (an IPv6 host in brackets): the
    open transport and whatever came after the proxy's answer. Raises ``OSError`` when the proxy
    cannot be reached, ``TunnelRefused`` when it says no."""
    transport, handshake = await loop.create_connection(lambda: _Handshake(loop), proxy.host, proxy.port)
    authority = f"{host}:{port}"
    try:
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if proxy.authorization is not None:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head, rest = await handshake.answer
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        words = status_line.split(" ", 2)
        if len(words) < 2 or not words[0].startswith("HTTP/1.") or not words[1].startswith("2"):
            raise TunnelRefused(
                f"the proxy {proxy.shown} answered {status_line[:200]!r} to CONNECT {authority}"
            )
    except BaseException:
        transport.close()
        raise
    return transport, rest


class _Handshake(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: its head, and any bytes after it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answer: asyncio.Future[tuple[bytes, bytes]] = loop.create_future()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return  # nothing may come before the tunnel is used; the caller sees what came with the answer
        self._buffer += data
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if found:
            self.answer.set_result((head, rest))
        elif len(self._buffer) > _MAX_HEAD:
            self.answer.set_exception(TunnelRefused("the proxy's answer to CONNECT is not HTTP"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(
                TunnelRefused("the proxy closed the connection before answering CONNECT")
            )


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
