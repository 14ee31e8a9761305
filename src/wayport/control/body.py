"""Request bodies of the control API: JSON, read up to a size limit."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from wayport.control.errors import ControlError, FieldError

__all__ = ["json_body"]


async def json_body(request: Request, limit: int) -> Any:
    """The parsed JSON body; 413 past ``limit`` bytes, ``FieldError("body", ...)`` when not JSON."""
    too_large = FieldError("body", f"is larger than the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ControlError(413, str(too_large), [too_large])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ControlError(413, str(too_large), [too_large])
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise FieldError("body", "is not valid JSON") from None
