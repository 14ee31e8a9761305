"""Catalog errors and the route class that turns them into Portkey's failure envelope.

Every failure of the catalog routes answers ``{"status": "failure", "message": ..., "errors": [...]}``
with ``errors`` a list of strings (config paths, missing variable names). The routers install
:class:`CatalogRoute`, so the envelope does not depend on the exception handlers of whatever app
mounts them; FastAPI's own body validation answers 400 in the same envelope, never 422.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "CatalogError",
    "CatalogJSONResponse",
    "CatalogRoute",
    "Conflict",
    "InvalidInput",
    "MissingVariables",
    "NotFound",
    "failure_response",
]


class CatalogError(Exception):
    """A failure the catalog reports to its caller, with the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, errors: Sequence[str] = (), *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors)
        if status is not None:
            self.status = status


class InvalidInput(CatalogError):
    """A body, config or template that does not validate (400)."""


class NotFound(CatalogError):
    """An unknown slug, id, version or label (404)."""

    status = 404


class Conflict(CatalogError):
    """The write clashes with what is stored, e.g. a partial name already taken (409)."""

    status = 409


class MissingVariables(CatalogError):
    """A template names variables (or partials) the request did not supply (400); ``errors`` lists them."""

    def __init__(self, names: Sequence[str], kind: str = "variables") -> None:
        super().__init__(f"Missing {kind} in the prompt template: {', '.join(names)}", names)
        self.names = list(names)


class CatalogJSONResponse(JSONResponse):
    """JSON rendered with orjson (non-string keys allowed)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS, default=str)


def failure_response(error: CatalogError) -> Response:
    body = {"status": "failure", "message": error.message, "errors": error.errors}
    return CatalogJSONResponse(body, status_code=error.status)


def _validation_error(exc: RequestValidationError) -> CatalogError:
    errors = []
    for item in exc.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
        errors.append(f"path: {','.join(location) or 'body'}, message: {item.get('msg', 'invalid value')}")
    return InvalidInput("Invalid request body", errors)


class CatalogRoute(APIRoute):
    """An ``APIRoute`` whose handler maps :class:`CatalogError` (and FastAPI's request validation)
    onto the failure envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except CatalogError as exc:
                return failure_response(exc)
            except RequestValidationError as exc:
                return failure_response(_validation_error(exc))

        return guarded
