"""Relaying a provider's stream to the client as it arrives.

An SSE stream always ends with ``data: [DONE]``: when the provider stops early, stalls or the
connection breaks, the client first gets an error event (which the OpenAI SDK raises), never a
silently truncated answer. Before the first real content nothing is sent to the client, so a
target that fails that early can still be retried or fallen over from (``first_content``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Generator, Mapping
from types import CoroutineType
from typing import Any, Protocol

import orjson

from wayport.gateway.http1 import Response, UpstreamError
from wayport.gateway.reply import Send
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


async def relay_stream(
    response: Response,
    translator: StreamTranslator | None,
    *,
    sse: bool,
    stall_s: float | None = None,
    tap: UsageTap | None = None,
    tail: bytes = b"",
    first_wait_s: float | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the body of ``response`` chunk by chunk (translated when a translator is given).

    ``stall_s`` bounds each wait for the provider's next chunk, never the time the consumer
    takes to write a chunk to a slow client. ``tap`` sees (and may trim) every translated chunk.
    ``tail`` and ``first_wait_s`` continue a stream a ``DirectRelay`` began: the end of what it
    sent, and what is left of the stall time.
    """
    clean = False
    wait = stall_s if first_wait_s is None else first_wait_s
    try:
        while chunk := await response.next_chunk(wait):
            wait = stall_s
            if translator is not None:
                chunk = translator.feed(chunk)
            if tap is not None:
                chunk = tap.feed(chunk)
            if not chunk:
                continue
            if sse:
                tail = (tail + chunk)[-TAIL:]
            yield chunk
        rest = translator.close() if translator is not None else b""
        if tap is not None:
            rest = tap.feed(rest) + tap.close()
        if rest:
            tail = (tail + rest)[-TAIL:]
            yield rest
        clean = True
        if sse and not tail.rstrip().endswith(b"[DONE]"):
            yield sse_error("The provider closed the stream before it was complete")
    except TimeoutError:
        if sse:
            yield sse_error(f"The provider sent nothing for {stall_s:g} s mid-stream; the stream was ended")
    except UpstreamError as exc:
        if sse:
            yield sse_error(f"The connection to the provider broke mid-stream ({type(exc).__name__})")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        log.warning("could not translate a stream chunk: %r", exc)
        if sse:
            yield sse_error(f"The provider sent stream data that could not be read ({type(exc).__name__})")
    finally:
        if clean:
            response.release()
        else:
            response.close()


class DirectRelay:
    """Relays a provider's SSE stream to the client from inside the connection's callback.

    In ``relay_stream`` every chunk wakes a task, which resumes a chain of coroutines to write it;
    here the chunk is tapped and handed to the ASGI ``send`` where it arrives, and the task only
    waits for the end. ``send`` is run by hand and finishes at once unless the client reads
    slowly: then the task finishes that write and the rest of the stream goes through
    ``relay_stream`` (``push`` returns it), which also ends every stream, cleanly or not.
    """

    __slots__ = ("response", "stall_s", "stream", "tap", "_error", "_last", "_parked", "_tail")

    def __init__(
        self, response: Response, tap: UsageTap, stall_s: float | None, stream: AsyncIterator[bytes]
    ):
        self.response = response
        self.tap = tap
        self.stall_s = stall_s
        # the reply's own stream: the relay applies only while nobody wrapped or started it
        self.stream = stream
        self._tail = b""
        self._parked: Awaitable[None] | None = None  # a write the client was too slow for
        self._error: BaseException | None = None
        self._last = 0.0

    async def push(
        self, send: Send, gone: Callable[[], bool], keep: Callable[[bytes], None]
    ) -> AsyncIterator[bytes]:
        """Send the stream as it arrives, until it ends, stalls, the client leaves or reads slowly;
        returns what is left of it (at least its ending) for the caller to send."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        response, tap = self.response, self.tap
        self._last = loop.time()

        def stop() -> None:
            response.push_to(None)
            if not done.done():
                done.set_result(None)

        def on_data(data: bytes) -> None:
            try:
                if gone():
                    stop()
                    return
                self._last = loop.time()
                out = tap.feed(data)
                if not out:
                    return
                self._tail = (self._tail + out)[-TAIL:]
                keep(out)
                sending = send({"type": "http.response.body", "body": out, "more_body": True})
                if isinstance(sending, CoroutineType):
                    try:
                        waiting = sending.send(None)
                    except StopIteration:
                        return
                    sending = _Resumed(sending, waiting)
                self._parked = sending  # the client reads slowly (or send is not a coroutine)
                stop()
            except BaseException as exc:  # never into the connection's callback
                self._error = exc
                stop()

        timer: asyncio.TimerHandle | None = None

        def check_stall(stall_s: float) -> None:  # one timer per stream, moved on only when it fires
            nonlocal timer
            due = self._last + stall_s
            timer = None if loop.time() >= due else loop.call_at(due, check_stall, stall_s)
            if timer is None:
                stop()  # stalled: what push returns reports it

        try:
            if self.stall_s is not None:
                timer = loop.call_at(self._last + self.stall_s, check_stall, self.stall_s)
            response.push_to(on_data, stop)
            await done
            response.push_to(None)
            if self._error is not None:
                raise self._error
            if self._parked is not None:
                await self._parked
        except BaseException:
            response.push_to(None)
            if isinstance(self._parked, _Resumed):
                self._parked.close()
            response.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        first_wait = None if self.stall_s is None else max(0.0, self._last + self.stall_s - loop.time())
        rest = relay_stream(
            response, None, sse=True, stall_s=self.stall_s, tap=tap, tail=self._tail, first_wait_s=first_wait
        )
        return _Rest(response, rest)


class _Rest:
    """What is left of a relayed stream. Closing it closes the provider's answer even when it was
    never iterated (an unstarted generator's ``finally`` never runs)."""

    __slots__ = ("_response", "_stream")

    def __init__(self, response: Response, stream: AsyncGenerator[bytes, None]) -> None:
        self._response = response
        self._stream = stream

    def __aiter__(self) -> _Rest:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._stream.__anext__()

    async def aclose(self) -> None:
        await self._stream.aclose()
        self._response.close()  # no-op when the stream released it


class _Resumed:
    """Awaits a coroutine that was started by hand and is suspended on ``waiting``."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self._coro, self._waiting
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancelled while waiting: the coroutine decides
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


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
