"""The one seam where Wayport talks HTTP to providers: two pools of the lean HTTP/1.1 client.

One pool for the providers' configured base URLs, and a guarded one for client-chosen
``custom_host`` URLs: every address a host name resolves to is checked before connecting, and only
checked addresses are connected to, so a rebinding DNS answer cannot reach an internal service.
Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from wayport.errors import BadRequest, ProviderError
from wayport.gateway.http1 import ConnectFailed, HTTPClient, InvalidRequest, Response, UpstreamError
from wayport.gateway.proxy import ProxyRoutes
from wayport.providers.base import UpstreamRequest
from wayport.security.ssrf import HostPolicy, UnsafeHostError
from wayport.settings import Settings

log = logging.getLogger("wayport")


class UpstreamClient:
    def __init__(self, settings: Settings, policy: HostPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self._plain: HTTPClient | None = None
        self._guarded: HTTPClient | None = None

    async def start(self) -> None:
        settings = self._settings
        limit, connect_s = settings.upstream_pool_size, settings.connect_timeout_s
        proxies = ProxyRoutes.from_settings(settings.http_proxy, settings.https_proxy, settings.no_proxy)
        for scheme, proxy in (("https", proxies.https), ("http", proxies.http)):
            if proxy is not None:  # said once at start-up: a proxy set for other tools applies here too
                log.info("%s providers are reached through the proxy %s (no_proxy: %s)", scheme, proxy.shown,
                         settings.no_proxy or "none")  # fmt: skip
        self._plain = HTTPClient(limit=limit, connect_timeout_s=connect_s, proxies=proxies)
        self._guarded = HTTPClient(
            limit=limit, connect_timeout_s=connect_s, resolve=self._policy.addresses, proxies=proxies
        )

    async def close(self) -> None:
        for client in (self._plain, self._guarded):
            if client is not None:
                await client.close()

    async def post_form(self, url: str, body: bytes, guarded: bool) -> tuple[int, bytes]:
        """POST a form (a token exchange) and read the whole answer: ``(status, body)``."""
        req = UpstreamRequest("POST", url, {"content-type": "application/x-www-form-urlencoded"}, body)
        limit_s = self._settings.connect_timeout_s + 30
        try:
            async with asyncio.timeout(limit_s):
                response = await self.send("vertex-ai", req, guarded=guarded)
                try:
                    return response.status, await response.read()
                finally:
                    response.release()
        except TimeoutError:
            raise ProviderError(
                "vertex-ai",
                f"{public_url(url)} did not answer within {limit_s:g} s",
                status=504,
                type_="timeout_error",
            ) from None
        except UpstreamError as exc:
            raise ProviderError(
                "vertex-ai",
                f"connection to {public_url(url)} failed ({exc})",
                status=502,
                type_="upstream_unreachable",
            ) from None

    async def send(self, provider: str, req: UpstreamRequest, *, guarded: bool) -> Response:
        """Send ``req``; network failures become ``ProviderError`` naming the provider and host."""
        client = self._guarded if guarded else self._plain
        if client is None:
            raise RuntimeError("UpstreamClient.start() was not called")
        try:
            return await client.request(req.method, req.url, req.headers, req.body)
        except UnsafeHostError as exc:
            raise BadRequest(f"Invalid custom host: {exc}") from None
        except InvalidRequest as exc:
            raise BadRequest(f"The request to {provider} cannot be sent: {exc}") from None
        except ConnectFailed as exc:
            raise ProviderError(
                provider,
                f"could not connect to {public_url(req.url)} ({exc})",
                status=502,
                type_="upstream_unreachable",
            ) from None
        except UpstreamError as exc:
            raise ProviderError(
                provider,
                f"connection to {public_url(req.url)} failed ({exc})",
                status=502,
                type_="upstream_unreachable",
            ) from None


def public_url(url: str) -> str:
    """The URL without its query string, which may carry a key (Gemini's ``?key=``)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
