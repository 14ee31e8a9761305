"""A request's task runs its first step inside the callback that completed the request
(``wayport.eager``), and is in every other way the task it would have been."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import GatewayServer
from tests.test_streaming import OPENAI
from wayport.eager import start_task

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")


async def test_the_early_step_runs_at_once_as_the_task_itself() -> None:
    loop = asyncio.get_running_loop()
    steps: list[str] = []
    gate: asyncio.Future[str] = loop.create_future()

    async def work() -> str:
        steps.append("early")
        assert asyncio.current_task() is task  # asyncio.timeout() and friends need it
        var.set("inside")
        got = await gate
        steps.append(f"rest saw {var.get()}")
        return got

    task, early = start_task(loop, work())
    early.run_early()
    assert steps == ["early"]  # before the loop ran anything
    assert var.get() == "outside"  # the task's context is its own
    gate.set_result("done")
    assert await task == "done"
    assert steps == ["early", "rest saw inside"]


async def test_an_early_start_after_the_task_stepped_does_nothing() -> None:
    loop = asyncio.get_running_loop()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)

    task, early = start_task(loop, work())
    await asyncio.sleep(0)  # the task takes its first step the usual way
    early.run_early()
    await task
    assert runs == 1


async def test_a_coroutine_that_ends_in_its_early_step_ends_its_task() -> None:
    loop = asyncio.get_running_loop()

    async def fails() -> None:
        raise ValueError("bad request")

    async def returns() -> int:
        return 7

    failing, early = start_task(loop, fails())
    early.run_early()
    with pytest.raises(ValueError, match="bad request"):
        await failing
    done, early = start_task(loop, returns())
    early.run_early()
    assert await done == 7


async def test_cancelling_after_the_early_step_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    cleaned = loop.create_future()

    async def work() -> None:
        try:
            await loop.create_future()  # never done
        finally:
            cleaned.set_result(True)

    task, early = start_task(loop, work())
    early.run_early()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.result() is True


@pytest.fixture
def slow_body() -> Iterator[bytes]:
    prompt = "word " * 60_000  # 300 kB, far more than one read of the socket
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 32_768):
            time.sleep(0.01)
            yield body[start : start + 32_768]

    return pieces()


def test_a_body_that_arrives_in_pieces_is_read_whole(
    gateway: GatewayServer, slow_body: Iterator[bytes]
) -> None:
    # The task starts on the request's head and waits for the rest of the body as usual.
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, content=slow_body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].count("word") == 60_000
