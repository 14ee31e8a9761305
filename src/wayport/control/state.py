"""What the control API works on, built once at start-up by whoever mounts it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wayport.observability.pricing import Pricer
from wayport.observability.record import BodyLogMode, LogRecord
from wayport.store.feedback import FeedbackRepository
from wayport.store.logs import LogRepository

__all__ = ["ControlState"]


@dataclass(slots=True)
class ControlState:
    """The repositories and callbacks behind the control API.

    ``submit`` is the log writer's ``submit`` (custom logs go through the same queue as the
    gateway's); without it custom logs are inserted directly. ``clear_cache(namespace)`` empties
    the response cache (all of it for ``None``) and returns how many entries went; without it
    ``DELETE /v1/cache`` answers 501. ``pricer`` prices custom logs; ``body_mode`` is how much of
    their bodies is kept. A request body larger than ``max_body_bytes`` is refused with 413
    (give it the gateway's ``Settings.max_body_bytes``).
    """

    logs: LogRepository
    feedback: FeedbackRepository
    submit: Callable[[LogRecord], bool] | None = None
    clear_cache: Callable[[str | None], Awaitable[int]] | None = None
    pricer: Pricer | None = None
    body_mode: BodyLogMode = BodyLogMode.TRUNCATED
    max_body_bytes: int = 32 * 1024 * 1024
