"""Eager steps: a request's coroutine runs inside the I/O callback that made it ready.

An asyncio task that becomes ready waits in the event loop's queue behind every callback that was
ready before it; under load that wait is most of a gateway's added latency (the stream chunks of
other requests, the tails of finished ones). Python 3.12's eager tasks remove the wait for a task's
first step only, and Wayport runs on 3.11. Here a request task's coroutine is wrapped in an
:class:`EagerCoroutine`, which

- runs the first step at once (``step``), from the callback that received the request, so a
  request goes out to the provider before the loop turns;
- resumes the coroutine at once when a :class:`Signal` it awaits is fired (``Signal.fire``), e.g.
  when the provider's status line and headers have been read, so the first chunk of the answer
  reaches the client in the same callback that read it.

Both run the coroutine as its task (``asyncio.current_task()`` is the task, so ``asyncio.timeout``
and cancellation behave as usual) and only while no other task runs. Everything else goes through
the task as before: what the coroutine awaits next is handed to the task, which waits for it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import Any

__all__ = ["EagerCoroutine", "Signal"]

_NOTHING: Any = object()


class Signal(asyncio.Future[None]):
    """A future that can also resume the :class:`EagerCoroutine` awaiting it right away.

    Awaited like any future. Its owner sets its result as usual and then calls ``fire()`` from a
    callback where running the waiting request is safe; without ``fire()`` (or after an
    exception) the waiter is resumed through the loop like any future's.
    """

    _resume: Callable[[Signal], None] | None = None

    def fire(self) -> None:
        resume, self._resume = self._resume, None
        if resume is not None:
            resume(self)


class EagerCoroutine(Coroutine[Any, Any, Any]):
    """The coroutine of one task, which may also be advanced from callbacks (see the module doc).

    Create the task with this object and a context of its own, then call ``bind(task)``. The task
    waits on what the coroutine awaits, as usual. When a step ran outside the task, what the
    coroutine awaited next is kept (the handoff) and returned to the task at its next ``send``:
    the task then waits on that instead.
    """

    __slots__ = ("_context", "_coro", "_handoff", "_loop", "_outcome", "_signal", "_started", "_task")

    def __init__(
        self, coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop, context: Context
    ) -> None:
        self._coro = coro
        self._loop = loop
        self._context = context
        self._task: weakref.ref[asyncio.Task[Any]] | None = None
        self._started = False
        self._handoff: Any = _NOTHING  # what the coroutine awaits since a step outside the task
        self._outcome: tuple[Any, BaseException | None] | None = None  # it ended in such a step
        self._signal: Signal | None = None  # the Signal the coroutine awaits, if it is one

    def bind(self, task: asyncio.Task[Any]) -> None:
        self._task = weakref.ref(task)

    def step(self) -> None:
        """Run the first step now, unless the task has started (or another task is running)."""
        if not self._started:
            self._run()

    # -- the coroutine protocol, as the task drives it
    def send(self, value: Any) -> Any:
        self._started = True
        if self._outcome is not None:
            return self._finish()
        handoff = self._handoff
        if handoff is not _NOTHING:
            self._handoff = _NOTHING
            return handoff
        self._forget_signal()
        return self._watch(self._coro.send(value))

    def throw(self, exc: Any, *_: Any) -> Any:  # the task passes the exception instance alone
        self._started = True
        if self._outcome is not None:
            return self._finish()  # it ended before the task could be cancelled
        handoff, self._handoff = self._handoff, _NOTHING
        if isinstance(handoff, asyncio.Future):
            handoff.cancel()  # as the task cancels the future it waits on
        self._forget_signal()
        return self._watch(self._coro.throw(exc))

    def close(self) -> None:
        self._forget_signal()
        self._coro.close()

    @property
    def __name__(self) -> str:  # what asyncio shows of the task: the wrapped coroutine's name
        return str(getattr(self._coro, "__qualname__", type(self._coro).__name__))

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("an EagerCoroutine is run by its task, not awaited")

    # -- internals
    def _watch(self, awaited: Any) -> Any:
        if type(awaited) is Signal:
            self._signal = awaited
            awaited._resume = self._resume
        return awaited

    def _forget_signal(self) -> None:
        signal = self._signal
        if signal is not None:
            self._signal = signal._resume = None

    def _resume(self, signal: Signal) -> None:
        """``signal`` was fired: go on from here (the task's wake-up then takes the handoff)."""
        if signal is self._signal and signal.done() and not signal.cancelled() and signal.exception() is None:
            self._run()

    def _run(self) -> None:
        """One step of the coroutine outside the task's own, as the task, when no task runs."""
        task = self._task() if self._task is not None else None
        if task is None or task.done() or asyncio.current_task(self._loop) is not None:
            return
        entered = False

        def advance() -> Any:
            nonlocal entered
            entered = True
            return self._coro.send(None)

        self._forget_signal()
        asyncio.tasks._enter_task(self._loop, task)
        try:
            self._handoff = self._watch(self._context.run(advance))
        except StopIteration as stop:
            self._outcome = (stop.value, None)
        except BaseException as exc:
            if entered:  # the task raises it in its next step, as it would have
                self._outcome = (None, exc)
            # else the context is in use (a callback of this task's): the task goes on itself
        finally:
            self._started = True
            asyncio.tasks._leave_task(self._loop, task)

    def _finish(self) -> Any:
        assert self._outcome is not None
        result, exc = self._outcome
        self._outcome = None
        if exc is not None:
            raise exc
        raise StopIteration(result)
