"""AWS Signature Version 4 for requests Wayport sends to AWS (Bedrock), from the public algorithm.

The signature covers exactly the bytes that go on the wire: the path as sent (URI-encoded once
more for the canonical URI, so a model id sent as ``v1%3A0`` is signed as ``v1%253A0``), the
query, the listed headers and the SHA-256 of the body. Whatever the HTTP client may still add
(``User-Agent``, ``Accept``, ``Content-Length``) is not signed, which SigV4 allows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair and an optional session token; ``repr`` shows only the key id."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key_id={self.access_key_id!r}, secret_access_key='****')"

    __str__ = __repr__


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus ``host``, ``x-amz-date``, the session token and ``authorization``.

    Every header in ``headers`` is signed; pass only the ones that are sent as given.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime(AMZ_DATE_FORMAT)
    signed: dict[str, str] = {name.lower(): value for name, value in headers.items()}
    signed.pop("authorization", None)
    signed["host"] = host_of(url)
    signed["x-amz-date"] = amz_date
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    request = canonical_request(method, url, signed, body)
    scope = credential_scope(amz_date[:8], region, service)
    signature = hmac.new(
        signing_key(credentials.secret_access_key, amz_date[:8], region, service),
        string_to_sign(amz_date, scope, request).encode(),
        hashlib.sha256,
    ).hexdigest()
    signed["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_header_names(signed)}, Signature={signature}"
    )
    return signed


def host_of(url: str) -> str:
    """The ``Host`` header an HTTP client sends for ``url`` (the port only when not the default)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        return f"{host}:{port}"
    return host


def canonical_uri(path: str) -> str:
    """The wire path URI-encoded once more (every service but S3): ``%3A`` becomes ``%253A``."""
    return quote(path or "/", safe="/~")


def canonical_query(query: str) -> str:
    """Parameters sorted by encoded name then value, each name and value encoded per RFC 3986."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((_encode(unquote(name)), _encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_headers(headers: Mapping[str, str]) -> str:
    """``name:value`` lines, names lower-cased and sorted, values trimmed with inner runs of spaces
    collapsed; ends with a newline, as the canonical request wants."""
    lines = sorted(f"{name.lower().strip()}:{' '.join(value.split())}" for name, value in headers.items())
    return "".join(line + "\n" for line in lines)


def signed_header_names(headers: Mapping[str, str]) -> str:
    return ";".join(sorted(name.lower().strip() for name in headers))


def canonical_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
    parts = urlsplit(url)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(parts.path),
            canonical_query(parts.query),
            canonical_headers(headers),
            signed_header_names(headers),
            hashlib.sha256(body).hexdigest(),
        )
    )


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The HMAC chain ``"AWS4" + secret`` -> date -> region -> service -> ``aws4_request``."""
    key = ("AWS4" + secret_access_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
