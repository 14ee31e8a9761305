"""``/v1/analytics/graphs/{metric}``: Portkey's analytics graphs over Wayport's logs and feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from wayport.control.analytics import METRICS, Analytics, Granularity
from wayport.control.errors import ControlError, ControlJSONResponse, FieldError
from wayport.control.params import log_filters
from wayport.control.state import ControlState
from wayport.store.filters import LogFilters

__all__ = ["analytics_router"]

_DESCRIPTIONS = {
    "requests": "Requests per bucket.",
    "cost": "Cost in US dollars per bucket (total, mean per priced request).",
    "tokens": "Prompt, completion, cached and reasoning tokens per bucket.",
    "latency": "Latency in milliseconds per bucket: mean and exact p50, p90, p99.",
    "errors": "Responses with a status of 400 or more per bucket, and their share of requests.",
    "cache/hit-rate": "Cache hits and misses per bucket, and the hit rate among cache lookups.",
    "users": "Distinct metadata._user values per bucket (and over the range in the summary).",
    "feedbacks": "Feedback per bucket: count, mean value and weighted mean value.",
}


def analytics_router(state: ControlState) -> APIRouter:
    """One route per metric under ``/v1/analytics/graphs``."""
    router = APIRouter(prefix="/v1/analytics/graphs", tags=["analytics"])
    analytics = Analytics(state.logs)

    def graph_route(metric: str) -> None:
        async def graph(
            filters: Annotated[LogFilters, Depends(log_filters)],
            bucket: Annotated[
                Granularity | None, Query(description="minute, hour or day; chosen from the range if absent")
            ] = None,
        ) -> Response:
            missing = [
                FieldError(name, "is required (an ISO 8601 timestamp, e.g. 2025-03-01T12:00:00Z)")
                for name, value in (
                    ("time_of_generation_min", filters.since),
                    ("time_of_generation_max", filters.until),
                )
                if value is None
            ]
            if missing:
                raise ControlError.invalid(*missing)
            try:
                return ControlJSONResponse(await analytics.graph(metric, filters, bucket))
            except ValueError as exc:
                raise ControlError.invalid(FieldError("bucket", str(exc))) from None

        router.add_api_route(
            f"/{metric}",
            graph,
            methods=["GET"],
            name=f"graph_{metric.replace('/', '_').replace('-', '_')}",
            summary=f"Graph of {metric}",
            description=_DESCRIPTIONS[metric],
        )

    for metric in METRICS:
        graph_route(metric)

    @router.get("/{metric:path}", include_in_schema=False)
    async def unknown_metric(metric: str) -> Response:
        raise ControlError.not_found(
            f"unknown analytics graph {metric!r}; known graphs: {', '.join(METRICS)}"
        )

    return router
