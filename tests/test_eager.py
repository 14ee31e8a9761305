"""Eager steps (wayport.eager): a request's coroutine runs inside the callback that made it ready,
as its task, and behaves as a task's coroutine otherwise (results, exceptions, cancellation,
timeouts, context variables)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import serving_asgi
from wayport.eager import EagerCoroutine, Signal
from wayport.gateway import http1
from wayport.gateway.http1 import HTTPClient
from wayport.http_server import WayportHttpProtocol

T = TypeVar("T")
VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def eager_task(coro: Coroutine[Any, Any, Any]) -> tuple[asyncio.Task[Any], EagerCoroutine]:
    """A task as WayportHttpProtocol makes one."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    eager = EagerCoroutine(coro, loop, context)
    task = loop.create_task(eager, context=context)
    eager.bind(task)
    return task, eager


def in_callback(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run ``fn`` in a callback of the loop (outside any task, as protocol callbacks run)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:
            done.set_exception(exc)

    loop.call_soon(run)
    return done


async def started(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A task made and stepped in one callback, as a request is."""

    def start() -> asyncio.Task[Any]:
        task, eager = eager_task(coro)
        eager.step()
        return task

    return await in_callback(start)


async def test_step_runs_the_first_step_at_once_as_the_task() -> None:
    seen: list[Any] = []
    gate = asyncio.get_running_loop().create_future()

    async def body() -> str:
        seen.append(asyncio.current_task())
        await gate
        seen.append("after")
        return "done"

    def start() -> asyncio.Task[Any]:
        task, eager = eager_task(body())
        assert seen == []
        eager.step()
        assert seen == [task]  # before the loop turned, with the task as the current task
        assert asyncio.current_task() is None  # and no task current after it
        eager.step()  # a second call does nothing
        assert seen == [task]
        return task

    task = await in_callback(start)
    assert "body()" in repr(task)  # the task shows the coroutine it runs, as a plain task would
    gate.set_result(None)
    assert await task == "done"
    assert seen == [task, "after"]


async def test_a_task_that_started_on_its_own_is_not_stepped_again() -> None:
    steps: list[int] = []
    gate = asyncio.get_running_loop().create_future()

    async def body() -> None:
        steps.append(1)
        await gate

    task, eager = eager_task(body())
    await asyncio.sleep(0)  # the task's first step
    await in_callback(eager.step)
    assert steps == [1]
    gate.set_result(None)
    await task


async def test_step_inside_a_running_task_leaves_the_work_to_the_task() -> None:
    """Only one task runs at a time: from inside a task, nothing is stepped."""
    ran: list[bool] = []

    async def body() -> None:
        ran.append(True)

    task, eager = eager_task(body())
    eager.step()  # called from this test's own task
    assert ran == []
    await task
    assert ran == [True]


async def test_a_fired_signal_resumes_the_coroutine_inside_the_firing_callback() -> None:
    loop = asyncio.get_running_loop()
    signal = Signal(loop=loop)
    later = loop.create_future()
    trace: list[str] = []

    async def body() -> str:
        await signal
        trace.append(f"resumed in {where}")
        assert asyncio.current_task() is task
        await later
        return "end"

    where = "test"
    task = await started(body())

    def callback() -> None:
        nonlocal where
        where = "callback"
        signal.set_result(None)
        signal.fire()
        where = "after callback"

    loop.call_soon(callback)
    await asyncio.sleep(0.01)
    assert trace == ["resumed in callback"]
    later.set_result(None)
    assert await task == "end"


async def test_a_signal_not_fired_resumes_the_coroutine_through_the_loop() -> None:
    loop = asyncio.get_running_loop()
    signal = Signal(loop=loop)

    async def body() -> int:
        await signal
        return 7

    task = await started(body())
    signal.set_result(None)  # no fire(): the task wakes as after any future
    assert await task == 7


async def test_a_signal_that_failed_raises_in_the_coroutine_through_the_task() -> None:
    loop = asyncio.get_running_loop()
    signal = Signal(loop=loop)

    async def body() -> str:
        try:
            await signal
        except ValueError as exc:
            return f"caught {exc}"
        return "no error"

    task = await started(body())
    signal.set_exception(ValueError("broken"))
    signal.fire()  # not a success: nothing runs here
    assert not task.done()
    assert await task == "caught broken"


async def test_plain_tasks_await_a_signal_like_any_future() -> None:
    loop = asyncio.get_running_loop()
    signal = Signal(loop=loop)
    task = loop.create_task(asyncio.wait_for(signal, 5))
    await asyncio.sleep(0)
    signal.set_result(None)
    signal.fire()
    assert await task is None


async def test_an_exception_in_an_eager_step_is_the_tasks_exception() -> None:
    async def body() -> None:
        raise KeyError("boom")

    task = await started(body())
    with pytest.raises(KeyError, match="boom"):
        await task


async def test_cancelling_a_task_reaches_the_coroutine_where_it_waits() -> None:
    """Cancelled before it took over what the eager step awaits: the awaited future is cancelled
    and the coroutine sees CancelledError there, as with any task."""
    loop = asyncio.get_running_loop()
    awaited = loop.create_future()
    cleaned: list[str] = []

    async def body() -> None:
        try:
            await awaited
        finally:
            cleaned.append("finally")

    task = await started(body())
    task.cancel()  # before the task took over what the step awaits
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    assert awaited.cancelled()


async def test_cancelling_a_task_after_a_fired_signal() -> None:
    loop = asyncio.get_running_loop()
    signal = Signal(loop=loop)
    never = loop.create_future()
    cleaned: list[str] = []

    async def body() -> None:
        await signal
        try:
            await never
        finally:
            cleaned.append("finally")

    task = await started(body())

    def fire_and_cancel() -> None:
        signal.set_result(None)
        signal.fire()  # the coroutine now waits on `never`; the task has not taken it over yet
        task.cancel()

    await in_callback(fire_and_cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    assert never.cancelled()


async def test_a_timeout_entered_in_an_eager_step_fires() -> None:
    async def body() -> str:
        try:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "slept"

    task = await started(body())
    assert await asyncio.wait_for(task, 5) == "timed out"


async def test_context_variables_belong_to_the_task() -> None:
    VAR.set("caller")

    async def body() -> tuple[str, str]:
        first = VAR.get()
        VAR.set("task")
        await asyncio.sleep(0)
        return first, VAR.get()

    task = await started(body())
    assert VAR.get() == "caller"  # what the eager step set stays in the task's context
    assert await task == ("caller", "task")


# -- in the server and the HTTP client ----------------------------------------------------------


class Probe(WayportHttpProtocol):
    """WayportHttpProtocol that says when it is inside ``data_received``."""

    reading = False

    def data_received(self, data: bytes) -> None:
        Probe.reading = True
        try:
            super().data_received(data)
        finally:
            Probe.reading = False


@pytest.fixture(params=["asyncio", "uvloop"])
def probe_server(request: pytest.FixtureRequest) -> Iterator[tuple[list[tuple[bool, bool]], int]]:
    seen: list[tuple[bool, bool]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((Probe.reading, asyncio.current_task() is not None))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with serving_asgi(app, uvloop=request.param == "uvloop", http=Probe) as port:
        yield seen, port


def test_a_request_starts_inside_the_callback_that_read_it(
    probe_server: tuple[list[tuple[bool, bool]], int],
) -> None:
    seen, port = probe_server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        assert client.post("/", content=b"hello").content == b"hello"
        assert client.post("/", content=b"again").content == b"again"  # a kept-alive connection
    assert seen == [(True, True), (True, True)]


async def test_the_http_client_resumes_its_caller_where_the_answer_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPClient.request returns inside the connection's callback that read the head (for a
    request task), and through the loop for any other task."""
    reading = [False]
    original = http1._Connection.data_received

    def data_received(self: http1._Connection, data: bytes) -> None:
        reading[0] = True
        try:
            original(self, data)
        finally:
            reading[0] = False

    monkeypatch.setattr(http1._Connection, "data_received", data_received)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HTTPClient(limit=4, connect_timeout_s=5)
    url = f"http://127.0.0.1:{port}/"

    async def call() -> tuple[bool, bytes]:
        response = await client.request("GET", url, {}, None)
        inside = reading[0]
        body = await response.read()
        response.release()
        return inside, body

    try:
        assert await asyncio.create_task(call()) == (False, b"ok")
        task = await started(call())
        assert await task == (True, b"ok")
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
