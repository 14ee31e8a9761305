"""Relaying a provider's stream to the client as it arrives.

An SSE stream always ends with ``data: [DONE]``: when the provider stops early, stalls or the
connection breaks, the client first gets an error event (which the OpenAI SDK raises), never a
silently truncated answer. Before the first real content nothing is sent to the client, so a
target that fails that early can still be retried or fallen over from (``first_content``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import orjson

from wayport.gateway.http1 import Response, UpstreamError
from wayport.http_server import ClientChannel
from wayport.providers.base import StreamTranslator

log = logging.getLogger("wayport")

DONE = b"data: [DONE]\n\n"
TAIL = 24


class StreamFailed(Exception):
    """The stream failed before it produced any content; ``message`` says how."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sse_error(message: str, type_: str = "stream_error") -> bytes:
    payload = orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": None}})
    return b"data: " + payload + b"\n\n" + DONE


class UsageSource(Protocol):
    """Anything that knows a stream's usage once it has passed (a translator or a ``UsageTap``)."""

    @property
    def usage(self) -> Mapping[str, Any] | None: ...


class UsageTap:
    """Reads the usage of an OpenAI-shaped stream as it passes, at event boundaries.

    Wayport asks every provider for the usage chunk (cost needs it); when the client did not ask
    for ``stream_options.include_usage``, ``strip`` removes that chunk again before it is sent.
    Events are passed on whole: a partial event waits for its end (clients cannot use half an
    event anyway).
    """

    __slots__ = ("_pending", "strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: dict[str, Any] | None = None
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        if data.endswith(b"\n\n"):  # the usual chunk: whole events
            complete, self._pending = data, b""
        else:
            cut = data.rfind(b"\n\n")
            if cut < 0:
                self._pending = data
                return b""
            complete, self._pending = data[: cut + 2], data[cut + 2 :]
        if b'"usage":{' not in complete and b'"usage": {' not in complete:
            return complete  # not the usage chunk (streams with include_usage say "usage":null)
        kept = []
        for event in complete.split(b"\n\n")[:-1]:
            payload = event.partition(b"data:")[2].strip()
            if b'"usage"' in payload and payload.startswith(b"{"):
                try:
                    parsed = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    parsed = None
                if isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict):
                    self.usage = parsed["usage"]
                    if self.strip and parsed.get("choices") == []:
                        continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def close(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest


TRANSLATION_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)


class StreamPipe:
    """What a relayed stream goes through on its way to the client: translation to OpenAI's
    format, the usage tap (which may trim), and for SSE the check that it ends with ``[DONE]``."""

    __slots__ = ("_tail", "sse", "stall_s", "tap", "translator")

    def __init__(
        self,
        translator: StreamTranslator | None,
        tap: UsageTap | None,
        *,
        sse: bool,
        stall_s: float | None = None,
    ) -> None:
        self.translator = translator
        self.tap = tap
        self.sse = sse
        self.stall_s = stall_s  # how long the provider may go quiet mid-stream
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        """What the client gets of a chunk of the provider's body (maybe nothing yet)."""
        if self.translator is not None:
            chunk = self.translator.feed(chunk)
        if self.tap is not None:
            chunk = self.tap.feed(chunk)
        if chunk and self.sse:
            self._tail = (self._tail + chunk)[-TAIL:]
        return chunk

    def end(self) -> bytes:
        """The rest once the provider's answer has ended, with an error event when an SSE stream
        was cut short of ``[DONE]``."""
        rest = self.translator.close() if self.translator is not None else b""
        if self.tap is not None:
            rest = self.tap.feed(rest) + self.tap.close()
        if rest and self.sse:
            self._tail = (self._tail + rest)[-TAIL:]
        if self.sse and not self._tail.rstrip().endswith(b"[DONE]"):
            rest += sse_error("The provider closed the stream before it was complete")
        return rest

    def failed(self, exc: Exception) -> bytes:
        """What ends the client's stream when the provider's failed with ``exc``: an error event
        (SSE), or nothing (a passthrough body, which can only be cut)."""
        if isinstance(exc, TimeoutError):
            message = f"The provider sent nothing for {self.stall_s:g} s mid-stream; the stream was ended"
        elif isinstance(exc, UpstreamError):
            message = f"The connection to the provider broke mid-stream ({type(exc).__name__})"
        else:
            log.warning("could not translate a stream chunk: %r", exc)
            message = f"The provider sent stream data that could not be read ({type(exc).__name__})"
        return sse_error(message) if self.sse else b""


async def relay_stream(response: Response, pipe: StreamPipe) -> AsyncIterator[bytes]:
    """Yield the body of ``response`` through ``pipe``, chunk by chunk.

    ``pipe.stall_s`` bounds each wait for the provider's next chunk, never the time the consumer
    takes to write a chunk to a slow client.
    """
    clean = False
    try:
        while chunk := await response.next_chunk(pipe.stall_s):
            if out := pipe.feed(chunk):
                yield out
        rest = pipe.end()
        clean = True
        if rest:
            yield rest
    except (TimeoutError, UpstreamError, *TRANSLATION_ERRORS) as exc:
        if out := pipe.failed(exc):
            yield out
    finally:
        if clean:
            response.release()
        else:
            response.close()


class PushRelay:
    """Relays a provider's stream from inside the provider connection's callback, written straight
    to the client's connection (``ClientChannel``).

    ``relay_stream`` wakes a task for every chunk, which resumes a chain of coroutines down to
    uvicorn's ``send``; here a chunk goes from the provider's socket through the pipe to the
    client's socket in one callback, and the task only waits for the end, or for a slow client
    to catch up (reading from the provider pauses meanwhile). The relay applies while ``stream``,
    the reply's ``relay_stream``, is untouched (not wrapped by a cache, a retry's look at the first
    content, or a translation to another format).
    """

    __slots__ = (
        "_channel",
        "_clean",
        "_client_left",
        "_done",
        "_keep",
        "_last",
        "_paused",
        "_timer",
        "_wake",
        "pipe",
        "response",
        "stream",
    )

    def __init__(self, response: Response, pipe: StreamPipe, stream: AsyncIterator[bytes]) -> None:
        self.response = response
        self.pipe = pipe
        self.stream = stream
        self._channel: ClientChannel | None = None
        self._keep: Callable[[bytes], None] = _ignore
        self._done = False
        self._clean = False  # the provider's answer was read to its end
        self._client_left = False
        self._paused = False  # reading from the provider waits for the client
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._wake: asyncio.Future[None] | None = None

    async def run(self, channel: ClientChannel, keep: Callable[[bytes], None]) -> bool:
        """Relay the whole stream, passing each piece written to ``keep`` first; ``False`` when
        the client left before the end."""
        response, loop = self.response, self.response.loop
        self._channel, self._keep = channel, keep
        self._last = loop.time()
        stall_s = self.pipe.stall_s
        if stall_s is not None:
            self._timer = loop.call_at(self._last + stall_s, self._check_stall)
        channel.on_lost = self._left
        try:
            if channel.gone:
                self._left()
            else:
                response.push_to(self._on_data, self._on_end)
            while not self._done:
                if self._paused:
                    await channel.drain()
                    self._paused = False
                    self._last = loop.time()  # a slow client is not a stalled provider
                    response.resume_reading()
                    continue
                self._wake = loop.create_future()
                await self._wake
        finally:
            channel.on_lost = None
            if self._timer is not None:
                self._timer.cancel()
            if self._paused:  # a connection goes back to its pool reading
                response.resume_reading()
            if self._clean:
                response.release()
            else:
                response.close()
        return not self._client_left

    # -- called back by the provider's connection, the client's connection and the stall timer
    def _on_data(self, data: bytes) -> None:
        if self._done:
            return
        self._last = self.response.loop.time()
        try:
            out = self.pipe.feed(data)
        except TRANSLATION_ERRORS as exc:
            self._finish(self.pipe.failed(exc))
            return
        if out:
            self._write(out)

    def _on_end(self) -> None:
        if self._done:
            return
        error = self.response.error
        if error is not None:
            self._finish(self.pipe.failed(error))
            return
        self._clean = True
        try:
            rest = self.pipe.end()
        except TRANSLATION_ERRORS as exc:
            rest = self.pipe.failed(exc)
        self._finish(rest)

    def _write(self, out: bytes) -> None:
        channel = self._channel
        assert channel is not None
        if channel.gone:
            self._left()
            return
        self._keep(out)
        channel.write(out)
        if channel.paused and not self._paused:
            self._paused = True
            self.response.pause_reading()
            self._poke()

    def _finish(self, rest: bytes) -> None:
        if rest:
            self._write(rest)
        self._done = True
        self._poke()

    def _left(self) -> None:
        self._client_left = self._done = True
        self._poke()

    def _check_stall(self) -> None:
        self._timer = None
        stall_s = self.pipe.stall_s
        if self._done or stall_s is None:
            return
        loop = self.response.loop
        now = loop.time()
        if self._paused:  # waiting for the client, not for the provider
            self._timer = loop.call_at(now + stall_s, self._check_stall)
        elif now < self._last + stall_s:  # one timer per stream, moved on only when it fires
            self._timer = loop.call_at(self._last + stall_s, self._check_stall)
        else:
            self._finish(self.pipe.failed(TimeoutError()))

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)


def _ignore(_: bytes) -> None:
    pass


async def first_content(stream: AsyncIterator[bytes]) -> bytes:
    """Read ``stream`` until it has produced real content (or ended), and return what was read.

    Raises ``StreamFailed`` (after closing the stream) when an error event comes first, so the
    caller can retry or fall over without the client seeing anything.
    """
    buffered = b""
    async for chunk in stream:
        buffered += chunk
        verdict = _judge(buffered)
        if verdict is True:
            return buffered
        if isinstance(verdict, str):
            await stream.aclose()  # type: ignore[attr-defined]
            raise StreamFailed(verdict)
    return buffered


def _judge(buffered: bytes) -> bool | str | None:
    """``True`` once a complete event carries content (or the end), an error message if an error
    event came first, ``None`` while only preambles (the role announcement) have arrived."""
    for block in buffered.split(b"\n\n")[:-1]:
        data = block.partition(b"data:")[2].strip()
        if not data:
            continue
        if data == b"[DONE]":
            return True
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True  # not ours to judge: let the client see it
        if not isinstance(event, dict):
            return True
        error = event.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            return str(message or "the provider sent an error event")
        if event.get("usage") or _has_content(event):
            return True
    return None


def _has_content(event: dict[str, object]) -> bool:
    choices = event.get("choices")
    if not isinstance(choices, list):
        return True
    for choice in choices:
        if not isinstance(choice, dict):
            return True
        if choice.get("finish_reason") or choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            value for key, value in delta.items() if key not in ("role",) and value not in ("", None)
        ):
            return True
    return False


async def prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``first`` then the remainder of ``rest``; closing this closes ``rest``."""
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
