"""The control API's one error envelope, and the handlers that map every failure onto it.

Every failure answers ``{"status": "failure", "message": ..., "errors": [...]}``: bad input is 400
(FastAPI's own validation included, never 422), unknown ids and paths 404, and anything unexpected
500 without a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

__all__ = ["ControlError", "ControlJSONResponse", "FieldError", "install_error_handlers", "render_json"]

logger = logging.getLogger("wayport.control")

# FastAPI names where a parameter came from first; the field is what follows.
_LOCATIONS = frozenset({"query", "path", "body", "header", "cookie"})


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # money leaves as the exact decimal text, never through a float
        return orjson.Fragment(format(value.normalize(), "f"))
    return str(value)


def render_json(content: Any) -> bytes:
    """JSON as the control API writes it: orjson, ``Decimal`` as an exact number."""
    return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


class ControlJSONResponse(JSONResponse):
    """A JSON response rendered by :func:`render_json`."""

    def render(self, content: Any) -> bytes:
        return render_json(content)


class FieldError(ValueError):
    """One invalid field: ``field`` names it as the client wrote it (``value``, ``[2].weight``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ControlError(Exception):
    """A failure the control API reports to the client, with its HTTP status."""

    def __init__(self, status: int, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors)

    @classmethod
    def invalid(cls, *errors: FieldError) -> ControlError:
        """400 naming the first invalid field in the message and listing them all."""
        return cls(400, str(errors[0]), errors)

    @classmethod
    def not_found(cls, message: str) -> ControlError:
        return cls(404, message)


def failure(status: int, message: str, errors: Sequence[FieldError] = ()) -> Response:
    """The envelope as a response."""
    body = {"status": "failure", "message": message, "errors": [error.as_dict() for error in errors]}
    return ControlJSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map validation errors, HTTP errors and crashes onto the envelope."""

    async def on_control_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ControlError)
        return failure(exc.status, exc.message, exc.errors)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [_field_error(error) for error in exc.errors()]
        if not errors:  # pragma: no cover - FastAPI always reports at least one
            errors = [FieldError("request", "invalid")]
        return failure(400, str(errors[0]), errors)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        response = failure(exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.exception("control API error on %s %s", request.method, request.url.path)
        return failure(500, "internal error; the gateway log has the details")

    app.add_exception_handler(ControlError, on_control_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_crash)


def _field_error(error: Any) -> FieldError:
    location = [str(part) for part in error.get("loc", ())]
    if location and location[0] in _LOCATIONS:
        location = location[1:]
    field = ".".join(location) or "body"
    message = str(error.get("msg", "invalid value"))
    return FieldError(field, message[:1].lower() + message[1:])
