"""The control-plane HTTP API as one FastAPI application.

The gateway hands it the requests under ``/v1/logs``, ``/v1/feedback``, ``/v1/analytics`` and
``/v1/cache`` with their paths unchanged (the routes here carry the full ``/v1/...`` path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query
from starlette.responses import Response

from wayport import __version__
from wayport.control.analytics_api import analytics_router
from wayport.control.errors import ControlError, ControlJSONResponse, install_error_handlers
from wayport.control.feedback import feedback_router
from wayport.control.logs import logs_router
from wayport.control.state import ControlState
from wayport.security.guard import resource_guard

__all__ = ["OPENAPI_PATH", "create_control_app"]

OPENAPI_PATH = "/v1/control/openapi.json"


def create_control_app(state: ControlState) -> FastAPI:
    """The control API over ``state``; every failure answers the ``status: failure`` envelope."""
    app = FastAPI(
        title="Wayport control API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_PATH,
        default_response_class=ControlJSONResponse,
    )
    install_error_handlers(app)
    # every route checks the caller's scope: <resource>.read for GET, <resource>.write otherwise
    for router, resource in (
        (logs_router(state), "logs"),
        (feedback_router(state), "feedback"),
        (analytics_router(state), "analytics"),
        (cache_router(state), "cache"),
    ):
        app.include_router(router, dependencies=[Depends(resource_guard(resource))])
    return app


def cache_router(state: ControlState) -> APIRouter:
    """``DELETE /v1/cache``: empty the response cache, or one namespace of it."""
    router = APIRouter(prefix="/v1/cache", tags=["cache"])

    @router.delete("")
    async def clear_cache(
        namespace: Annotated[str | None, Query(description="only this namespace; all when absent")] = None,
    ) -> Response:
        """Delete cached responses; answers how many went."""
        if state.clear_cache is None:
            raise ControlError(501, "the response cache cannot be cleared on this gateway")
        deleted = await state.clear_cache(namespace or None)
        return ControlJSONResponse({"status": "success", "deleted": deleted})

    return router
