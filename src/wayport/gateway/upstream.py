"""The one seam where Wayport talks HTTP to providers: pooled aiohttp sessions.

Two sessions: one for the providers' configured base URLs, and a guarded one for client-chosen
``custom_host`` URLs whose resolver refuses private and metadata addresses after DNS resolution
(so a rebinding DNS answer cannot reach an internal service). Redirects are never followed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from wayport.errors import BadRequest, ProviderError
from wayport.providers.base import UpstreamRequest
from wayport.security.ssrf import GuardedResolver, HostPolicy, UnsafeHostError
from wayport.settings import Settings


class UpstreamClient:
    def __init__(self, settings: Settings, policy: HostPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self._plain: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._plain = self._session(
            aiohttp.TCPConnector(limit=self._settings.upstream_pool_size, ttl_dns_cache=60)
        )
        self._guarded = self._session(
            aiohttp.TCPConnector(
                limit=self._settings.upstream_pool_size,
                resolver=GuardedResolver(self._policy),
                use_dns_cache=False,
            )
        )

    def _session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._settings.connect_timeout_s)
        # No cookie jar: a cookie one provider answer sets must never ride on another caller's
        # request (and filtering a jar costs time on every request).
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            raise_for_status=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        for session in (self._plain, self._guarded):
            if session is not None:
                await session.close()

    async def send(self, provider: str, req: UpstreamRequest, *, guarded: bool) -> aiohttp.ClientResponse:
        """Send ``req``; network failures become ``ProviderError`` naming the provider and host."""
        session = self._guarded if guarded else self._plain
        if session is None:
            raise RuntimeError("UpstreamClient.start() was not called")
        try:
            return await session.request(
                req.method, req.url, data=req.body, headers=req.headers, allow_redirects=False
            )
        except UnsafeHostError as exc:
            raise BadRequest(f"Invalid custom host: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, UnsafeHostError):
                raise BadRequest(f"Invalid custom host: {exc.os_error}") from None
            raise ProviderError(
                provider,
                f"could not connect to {public_url(req.url)} ({_reason(exc)})",
                status=502,
                type_="upstream_unreachable",
            ) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                provider,
                f"connection to {public_url(req.url)} failed ({_reason(exc)})",
                status=502,
                type_="upstream_unreachable",
            ) from None


def public_url(url: str) -> str:
    """The URL without its query string, which may carry a key (Gemini's ``?key=``)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    text = str(exc) or type(exc).__name__
    return text.split(" [", 1)[0] if "Cannot connect" in text else text
