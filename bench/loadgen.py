"""Closed-loop HTTP/1.1 load generator for the Wayport benchmark (used when wrk is not installed).

    .venv/bin/python bench/loadgen.py --url http://127.0.0.1:18080/v1/chat/completions \\
        --concurrency 16 --duration 10 --body '{"model":"gpt-4o","messages":[]}' [--stream]

N keep-alive connections each send one request, wait for the whole response, and send the next
one, for --duration seconds or until --requests requests have been sent. Prints one JSON object:
counts, req/s, latency percentiles and, with --stream, time to the first body byte.

Why not aiohttp's client: it costs several times more CPU per request than the gateway's floor,
and the load generator shares a core with the mock, so it would cap the measured req/s. This is a
raw asyncio Protocol on uvloop with the request pre-encoded once and a minimal response parser
(status line, Content-Length or chunked framing). Only loopback targets are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from array import array
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # works on the default loop too, only with more overhead
    uvloop = None  # type: ignore[assignment]

LOOPBACK = {"127.0.0.1", "localhost"}
RECONNECT_DELAY_S = 0.05
NO_BODY_STATUSES = frozenset({204, 304})
GRACE_S = 15.0  # how long in-flight requests may take after the run's end before they count as timeouts


@dataclass(frozen=True)
class Spec:
    host: str
    port: int
    request: bytes
    concurrency: int
    duration: float | None
    max_requests: int | None
    stream: bool


class Stats:
    """Everything measured; latencies in seconds, kept as compact float arrays."""

    def __init__(self) -> None:
        self.latency = array("d")
        self.ttfb = array("d")
        self.ok = 0
        self.non2xx = 0
        self.errors = 0  # connect/read errors, timeouts, truncated streams
        self.statuses: dict[int, int] = {}


def build_request(url: str, body: bytes, headers: list[str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or host not in LOOPBACK:
        raise SystemExit(f"loadgen: only http://127.0.0.1 targets are allowed, not {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [h.strip() for h in headers if ":" in h]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return "127.0.0.1" if host == "localhost" else host, port, head + body


class Connection(asyncio.Protocol):
    """One keep-alive connection running requests back to back."""

    def __init__(self, gen: LoadGenerator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.in_flight = False
        self.reset_response()

    def reset_response(self) -> None:
        self.started = 0.0
        self.first_byte = 0.0
        self.status = 0
        self.headers_done = False
        self.length: int | None = None
        self.chunked = False
        self.close_after = False
        self.scan = 0  # chunked framing: offset of the next chunk-size line in buf

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check
        self.transport = cast(asyncio.Transport, transport)
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.in_flight:
            if self.headers_done and self.length is None and not self.chunked:
                self.record()  # a body delimited by the connection's end is complete now
            else:
                self.gen.stats.errors += 1
            self.in_flight = False
        self.gen.reconnect()

    def data_received(self, data: bytes) -> None:
        if not self.in_flight:
            return  # nothing asked for: a server's stray bytes must not count as a response
        self.buf += data
        if not self.headers_done and not self.parse_head():
            return
        if self.first_byte == 0.0 and self.buf:
            self.first_byte = time.perf_counter()
        if self.body_complete():
            self.finish()

    # -- response parsing
    def parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).lower()
        self.status = int(head[9:12])
        length = _header_value(head, b"content-length")
        self.length = 0 if self.status in NO_BODY_STATUSES else int(length) if length is not None else None
        self.chunked = b"chunked" in (_header_value(head, b"transfer-encoding") or b"")
        self.close_after = b"close" in (_header_value(head, b"connection") or b"") or head.startswith(
            b"http/1.0"
        )
        del self.buf[: end + 4]
        self.headers_done = True
        return True

    def body_complete(self) -> bool:
        if self.length is not None:
            return len(self.buf) >= self.length
        if not self.chunked:
            return False  # read until close
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n", self.scan)
            if eol < 0:
                return False
            size = int(bytes(buf[self.scan : eol]).split(b";")[0], 16)
            if size == 0:
                return buf.find(b"\r\n\r\n", eol) >= 0  # last chunk, (trailers,) blank line
            if len(buf) < eol + size + 4:
                return False
            self.scan = eol + size + 4

    # -- request cycle
    def finish(self) -> None:
        self.record()
        self.in_flight = False
        self.buf.clear()
        if self.close_after and self.transport is not None:
            self.transport.close()  # connection_lost opens a new connection
            return
        self.send_next()

    def record(self) -> None:
        now = time.perf_counter()
        stats = self.gen.stats
        stats.statuses[self.status] = stats.statuses.get(self.status, 0) + 1
        if 200 <= self.status < 300:
            if self.gen.spec.stream and b"data: [DONE]" not in self.buf:
                stats.errors += 1  # a 200 stream that did not end properly
            else:
                stats.ok += 1
                stats.latency.append(now - self.started)
                if self.gen.spec.stream:
                    stats.ttfb.append(self.first_byte - self.started)
        else:
            stats.non2xx += 1

    def send_next(self) -> None:
        if self.transport is None:
            return
        if not self.gen.may_send():
            self.transport.close()
            return
        self.reset_response()
        self.in_flight = True
        self.started = time.perf_counter()
        self.transport.write(self.gen.spec.request)


def _header_value(head: bytes, name: bytes) -> bytes | None:
    """Value of header `name` in a lower-cased response head, or None."""
    key = b"\r\n" + name + b":"
    pos = head.find(key)
    if pos < 0:
        return None
    eol = head.find(b"\r\n", pos + 2)
    return head[pos + len(key) : eol if eol >= 0 else len(head)].strip()


class LoadGenerator:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.stats = Stats()
        self.sent = 0
        self.stopping = False
        self.live = 0  # connections still working
        self.done: asyncio.Future[None] | None = None

    def may_send(self) -> bool:
        if self.stopping:
            return False
        if self.spec.max_requests is not None and self.sent >= self.spec.max_requests:
            return False
        self.sent += 1
        return True

    def reconnect(self) -> None:
        """Called when a connection closed: open a new one unless the run is over."""
        if self.stopping or (self.spec.max_requests is not None and self.sent >= self.spec.max_requests):
            self.connection_retired()
            return
        asyncio.get_running_loop().call_later(RECONNECT_DELAY_S, self.open_connection)

    def connection_retired(self) -> None:
        self.live -= 1
        if self.live == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def open_connection(self) -> None:
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: Connection(self), self.spec.host, self.spec.port)
        except OSError:
            self.stats.errors += 1
            if self.stopping:
                self.connection_retired()
            else:
                loop.call_later(RECONNECT_DELAY_S * 2, self.open_connection)

    def stop(self) -> None:
        self.stopping = True

    async def run(self) -> tuple[Stats, float]:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.live = self.spec.concurrency
        started = time.perf_counter()
        if self.spec.duration is not None:
            loop.call_later(self.spec.duration, self.stop)
        for _ in range(self.spec.concurrency):
            self.open_connection()
        limit = (self.spec.duration or 0) + GRACE_S if self.spec.duration is not None else None
        try:
            await asyncio.wait_for(asyncio.shield(self.done), limit)
        except TimeoutError:
            self.stopping = True
            self.stats.errors += self.live  # requests stuck past the grace period
        return self.stats, time.perf_counter() - started


def percentiles_ms(values: array[float], prefix: str) -> dict[str, float | None]:
    """Nearest-rank p50/p90/p99 and max of durations in seconds, in milliseconds."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for pct in (50, 90, 99):
        rank = max(1, math.ceil(pct / 100 * len(ordered)))
        out[f"{prefix}p{pct}_ms"] = round(ordered[rank - 1] * 1000, 3) if ordered else None
    out[f"{prefix}max_ms"] = round(ordered[-1] * 1000, 3) if ordered else None
    return out


def summarize(stats: Stats, seconds: float, stream: bool) -> dict[str, object]:
    completed = stats.ok + stats.non2xx
    out: dict[str, object] = {
        "loadgen": "python",
        "requests": completed,
        "ok": stats.ok,
        "non2xx": stats.non2xx,
        "errors": stats.errors,
        "seconds": round(seconds, 3),
        "rps": round(completed / seconds, 1) if seconds > 0 else 0.0,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
    }
    out.update(percentiles_ms(stats.latency, ""))
    if stream:
        out.update(percentiles_ms(stats.ttfb, "ttfb_"))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, help="seconds (default 10 unless --requests)")
    parser.add_argument("--requests", type=int, help="stop after this many requests")
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    parser.add_argument("--stream", action="store_true", help="expect SSE; record time to first byte")
    args = parser.parse_args(argv)
    if args.duration is None and args.requests is None:
        args.duration = 10.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host, port, request = build_request(args.url, args.body.encode(), args.header)
    spec = Spec(host, port, request, args.concurrency, args.duration, args.requests, args.stream)
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    stats, seconds = asyncio.run(LoadGenerator(spec).run())
    json.dump(summarize(stats, seconds, args.stream), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
