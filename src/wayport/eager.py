"""Running a task's first step at once, inside the callback that has everything it needs.

A task created in a protocol callback waits for its first step until the event loop has run the
callbacks of every other socket that was ready, and the ready queue ahead of it. Under load that
wait was the largest part of Wayport's time to a streamed answer's first byte (about 0.2 ms of
0.8 at 16 connections, `bench/`): the request is parsed, routed and written to the provider
before any of that. Python 3.12's eager tasks do this for every task; this does it for one, on
Python 3.11 as well.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any

__all__ = ["EarlyStart", "start_task"]

_PENDING, _RAN_EARLY, _RUNNING = 0, 1, 2
_enter_task = getattr(asyncio.tasks, "_enter_task", None)
_leave_task = getattr(asyncio.tasks, "_leave_task", None)


class EarlyStart(Coroutine[Any, Any, None]):
    """Wraps a coroutine for a task whose first step may be run early (``run_early``), outside
    the task's own scheduling; the task then goes on from where that step stopped. When the task
    steps first, it simply runs the coroutine: an early start that comes too late does nothing."""

    __slots__ = ("_context", "_coro", "_outcome", "_state", "_task")

    def __init__(self, coro: Coroutine[Any, Any, None], context: contextvars.Context) -> None:
        self._coro = coro
        self._context = context
        self._state = _PENDING
        self._outcome: Any = None  # what the early step yielded, or the exception it raised
        self._task: asyncio.Task[None] | None = None

    def run_early(self) -> None:
        """Run the first step now, as the task (``current_task()`` is it, in its context)."""
        task = self._task
        if self._state != _PENDING or task is None or _enter_task is None or _leave_task is None:
            return
        self._state = _RAN_EARLY
        loop = task.get_loop()
        running = asyncio.current_task(loop)  # none in a protocol's callback; set when called from a task
        if running is not None:
            _leave_task(loop, running)
        _enter_task(loop, task)
        try:
            self._outcome = self._context.run(self._coro.send, None)
        except BaseException as exc:  # replayed in the task's first step, which finishes it
            self._outcome = exc
        finally:
            _leave_task(loop, task)
            if running is not None:
                _enter_task(loop, running)

    # -- the coroutine protocol, driven by the task
    def send(self, value: Any) -> Any:
        if self._state == _RAN_EARLY:
            self._state = _RUNNING
            outcome, self._outcome = self._outcome, None
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        self._state = _RUNNING
        return self._coro.send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        if self._state == _RAN_EARLY and isinstance(self._outcome, BaseException):
            self._state = _RUNNING  # the coroutine already ended; nothing to throw into
            raise val if isinstance(val, BaseException) else typ
        self._state = _RUNNING
        return self._coro.throw(typ, val, tb)  # type: ignore[arg-type]

    def close(self) -> None:
        self._coro.close()

    def __next__(self) -> Any:
        return self.send(None)

    def __iter__(self) -> EarlyStart:
        return self

    def __await__(self) -> Generator[Any, None, None]:
        return self


def start_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> tuple[asyncio.Task[None], EarlyStart]:
    """A task for ``coro`` scheduled as usual, and the handle that can run its first step early."""
    context = contextvars.copy_context()
    early = EarlyStart(coro, context)
    task: asyncio.Task[None] = loop.create_task(early, context=context)
    early._task = task
    return task, early
