"""SSRF guard for client-supplied upstream base URLs (``custom_host``).

Two layers, because neither is enough alone:

* ``HostPolicy.check_url`` runs at request time, without DNS: URL shape, scheme, host name rules
  and literal IP addresses.
* ``HostPolicy.addresses`` runs at connection time: every address a host name resolves to is
  checked, and the client then connects only to those checked addresses, so a DNS answer that
  changes between check and connect (DNS rebinding) cannot reach an internal address.

Callers must run ``check_url`` on every custom_host and must not follow upstream redirects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias
from urllib.parse import urlsplit

__all__ = ["TRUSTED_HOSTS_ENV", "HostPolicy", "Lookup", "UnsafeHostError"]

TRUSTED_HOSTS_ENV = "WAYPORT_TRUSTED_HOSTS"
_ALLOW_HINT = f"add the host to {TRUSTED_HOSTS_ENV} to allow it"
_NEVER = "this is never allowed"

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup: TypeAlias = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
MAX_LABELS = 10
_FORBIDDEN_CHARS = frozenset("%<>{}|\\^`")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Anything inet_aton() or a WHATWG URL parser could read as part of an IPv4 number.
_NUMERIC_LABEL_RE = re.compile(r"0x[0-9a-f]*|[0-9]+")
_CANONICAL_OCTET_RE = re.compile(r"0|[1-9][0-9]{0,2}")

# Cloud metadata endpoints leak instance credentials; no allow-list entry may reach them.
_METADATA_IPS = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity agent
        "168.63.129.16",  # Azure wire server (a *public* address)
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "169.254.42.42",  # Scaleway
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
# Whole blocks the metadata services live in, as Portkey also blocks them (169.254.169.*, fd00:ec2::*).
_METADATA_NETS = (ipaddress.ip_network("169.254.169.0/24"), ipaddress.ip_network("fd00:ec2::/32"))

# Host names that are never legitimate upstreams: metadata services, cluster-internal API servers
# and wildcard-DNS services that map any name onto any (internal) IP. Subdomains included.
_ALWAYS_BLOCKED_NAMES = frozenset({"metadata", "instance-data", "kubernetes"})
_ALWAYS_BLOCKED_SUFFIXES = (
    "metadata.google.internal",
    "metadata.azure.com",
    "ec2.internal",
    "cluster.local",
    "kubernetes.default",
    "kubernetes.default.svc",
    "nip.io",
    "sslip.io",
    "xip.io",
    "localtest.me",
    "lvh.me",
    "vcap.me",
    "traefik.me",
    "localhost.run",
)
# Private naming zones: fine for a self-hosted model server, so the allow-list can open them.
# "consul" is added to the documented list because Consul service names are cluster-internal too.
_INTERNAL_TLDS = frozenset(
    {"local", "localdomain", "internal", "intranet", "lan", "home", "corp", "test", "invalid", "onion"}
    | {"localhost", "consul"}
)


def _nets(*specs: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), label) for net, label in specs)


_V4_BLOCKED = _nets(
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation (TEST-NET-1) address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation (TEST-NET-2) address"),
    ("203.0.113.0/24", "a documentation (TEST-NET-3) address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved or broadcast address"),
)
_V6_BLOCKED = _nets(
    ("::1/128", "a loopback address"),
    ("::/128", "the unspecified address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    ("2001::/32", "a Teredo address"),
    ("2001:db8::/32", "a documentation address"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeHostError(ValueError):
    """A custom_host (or an address it resolves to) may not be used as an upstream.

    ``str(e)`` is a short reason meant for the API client; it never contains URL credentials,
    query strings or fragments.
    """


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 form carries (mapped, 6to4, NAT64, compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated ::a.b.c.d; :: and ::1 are judged as IPv6
        return ipaddress.IPv4Address(int(ip))
    return None


def _is_metadata(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_ipv4(ip)) is not None:
        return _is_metadata(v4)
    return ip in _METADATA_IPS or any(ip in net for net in _METADATA_NETS)


def _private_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is one."""
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_ipv4(ip)) is not None:
        reason = _private_reason(v4)
        return f"{reason} through its embedded IPv4 {v4}" if reason else None
    for net, label in _V4_BLOCKED if ip.version == 4 else _V6_BLOCKED:
        if ip in net:
            return f"{label} ({net})"
    # Safety net for ranges the tables miss (e.g. 100::/64 discard); Python keeps its list current.
    return None if ip.is_global else "a non-public address"


def _parse_ip(text: str) -> IPAddress | None:
    try:
        # Drop an IPv6 zone ("fe80::1%eth0"): the zone does not change which host is reached.
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _shown(url: str) -> str:
    """The URL as quoted in messages: no query or fragment (they may carry keys), bounded length."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    return repr(base if len(base) <= 120 else base[:117] + "...")


def _matches_suffix(host: str, suffix: str) -> bool:
    return host == suffix or host.endswith("." + suffix)


class HostPolicy:
    """Decides which upstream hosts and addresses a request may reach.

    ``trusted_hosts`` entries are exact hosts (``"localhost"``, ``"127.0.0.1"``, ``"::1"``) or
    ``"*.example.com"`` for any subdomain of example.com (not example.com itself); case-insensitive.
    Trusted hosts may use internal names and private addresses, never cloud-metadata ones.
    """

    def __init__(self, trusted_hosts: Iterable[str] = ()) -> None:
        self._exact: set[str] = set()
        self._suffixes: list[str] = []
        for raw in trusted_hosts:
            entry = raw.strip().lower()
            if not entry:
                continue  # tolerate "a,,b" and trailing commas in the env var
            if entry.startswith("*."):
                suffix = entry[2:].rstrip(".")
                if not suffix or "*" in suffix:
                    raise ValueError(f"invalid trusted host pattern {raw!r}")
                self._suffixes.append("." + suffix)
            elif "*" in entry:
                raise ValueError(f"invalid trusted host {raw!r}: only a leading '*.' wildcard is supported")
            else:
                self._exact.add(self._normalize(entry))

    @staticmethod
    def _normalize(host: str) -> str:
        host = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
        ip = _parse_ip(host)
        # Canonical form so "0:0:0:0:0:0:0:1" and "::1" are the same entry.
        return host if ip is None else str(ip)

    def is_trusted(self, host: str) -> bool:
        """True if ``host`` is on the allow-list (exactly or through a ``*.`` wildcard)."""
        name = self._normalize(host)
        return bool(name) and (name in self._exact or any(name.endswith(s) for s in self._suffixes))

    def check_address(self, host: str, ip: str) -> None:
        """Refuse ``ip`` (an address ``host`` resolved to) unless it is public or ``host`` is trusted.

        Cloud metadata addresses are refused even for trusted hosts.
        """
        problem = self._address_problem(host, ip)
        if problem is not None:
            raise UnsafeHostError(f"host {host!r} resolves to {problem}")

    async def addresses(self, host: str, port: int, lookup: Lookup | None = None) -> list[str]:
        """The addresses ``host`` resolves to (``lookup``, default the event loop's resolver), each
        one checked with ``check_address``: ``UnsafeHostError`` if any is unsafe, so a name that
        answers with a public and a private address is refused whole."""
        if _parse_ip(host) is not None:
            self.check_address(host, host)
            return [host]
        found = await (lookup or _resolve)(host, port)
        for address in found:
            self.check_address(host, address)
        return found

    def _address_problem(self, host: str, ip_text: str) -> str | None:
        ip = _parse_ip(ip_text)
        if ip is None:
            return f"{ip_text!r}, which is not an IP address"
        if _is_metadata(ip):
            return f"{ip}, a cloud metadata address; {_NEVER}"
        if self.is_trusted(host):
            return None
        reason = _private_reason(ip)
        return f"{ip}, {reason}; {_ALLOW_HINT}" if reason else None

    def check_url(self, url: str) -> str:
        """Validate a custom_host URL without DNS; return it without a trailing ``/``.

        Raises ``UnsafeHostError`` with a client-facing reason.
        """
        if not isinstance(url, str) or not url:
            raise UnsafeHostError("custom_host must be a non-empty string")
        if len(url) > MAX_URL_LENGTH:
            raise UnsafeHostError(f"custom_host is longer than {MAX_URL_LENGTH} characters")
        # Checked before anything quotes the URL, so credentials are never echoed back.
        if "@" in url:
            raise UnsafeHostError("custom_host must not contain credentials or '@'")
        for ch in url:
            # '%' hides characters from this check, '\\' and friends parse differently across
            # URL parsers, and control characters enable header/log injection.
            if ch in _FORBIDDEN_CHARS or ch.isspace() or not ch.isprintable() or not ch.isascii():
                raise UnsafeHostError(f"custom_host contains a forbidden character {ch!r}")
        shown = _shown(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            raise UnsafeHostError(f"custom_host {shown} is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            if scheme:
                raise UnsafeHostError(f"custom_host scheme {scheme!r} is not allowed; use http or https")
            raise UnsafeHostError(f"custom_host {shown} must be an absolute http:// or https:// URL")
        if not parts.netloc:
            raise UnsafeHostError(f"custom_host {shown} has no host")
        host, port = self._split_netloc(parts.netloc, shown)
        if port is not None and not (port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
            raise UnsafeHostError(f"custom_host {shown} has an invalid port {port!r}")
        problem = self._host_problem(host)
        if problem is not None:
            raise UnsafeHostError(f"custom_host {shown} {problem}")
        return url.rstrip("/")

    @staticmethod
    def _split_netloc(netloc: str, shown: str) -> tuple[str, str | None]:
        if netloc.startswith("["):
            end = netloc.find("]")
            rest = netloc[end + 1 :]
            if end < 0 or (rest and not rest.startswith(":")):
                raise UnsafeHostError(f"custom_host {shown} has a malformed IPv6 host")
            return netloc[: end + 1], rest[1:] if rest else None
        host, sep, port = netloc.partition(":")
        if ":" in port:
            raise UnsafeHostError(f"custom_host {shown} has a malformed host")
        return host, port if sep else None

    def _host_problem(self, host: str) -> str | None:
        """Why ``host`` (from the URL's authority, brackets kept) is unsafe, or None."""
        host = host.lower()
        if host.startswith("["):
            ip = _parse_ip(host[1:-1])
            if not isinstance(ip, ipaddress.IPv6Address):
                return "has a malformed IPv6 host"
            return self._literal_problem(host[1:-1], ip)
        if host.endswith("."):
            return "must not end the host name with '.'"
        labels = host.split(".")
        if len(labels) > MAX_LABELS:
            return f"has more than {MAX_LABELS} labels in its host name"
        if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
            # A numeric last label makes inet_aton()/WHATWG parse the host as IPv4, so only the
            # canonical dotted quad is allowed; 2130706433, 0x7f.1, 0177.0.0.1 and 127.1 are refused.
            if len(labels) == 4 and all(_CANONICAL_OCTET_RE.fullmatch(o) and int(o) <= 255 for o in labels):
                return self._literal_problem(host, ipaddress.IPv4Address(host))
            return "uses an obfuscated or malformed IPv4 address"
        if len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
            return "must use an ASCII host name of letters, digits, '-' and '.'"
        if any(label.startswith("xn--") for label in labels):
            return "must not use a punycode (xn--) host name"
        if host in _ALWAYS_BLOCKED_NAMES or any(_matches_suffix(host, s) for s in _ALWAYS_BLOCKED_SUFFIXES):
            return f"uses a metadata, cluster-internal or DNS-rebinding host name; {_NEVER}"
        if (host == "localhost" or labels[-1] in _INTERNAL_TLDS) and not self.is_trusted(host):
            return f"uses an internal host name; {_ALLOW_HINT}"
        return None

    def _literal_problem(self, host: str, ip: IPAddress) -> str | None:
        problem = self._address_problem(host, str(ip))
        return None if problem is None else f"points to {problem}"


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
