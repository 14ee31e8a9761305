"""``/v1/logs``: one log by id, filtered pages, streamed exports and Portkey's custom-log insert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from wayport.control.body import json_body
from wayport.control.custom_log import custom_log_to_record, parse_custom_logs
from wayport.control.errors import ControlError, ControlJSONResponse, FieldError
from wayport.control.export import ExportFormat, export_chunks
from wayport.control.params import log_filters
from wayport.control.render import log_to_json
from wayport.control.state import ControlState
from wayport.store.filters import LogFilters
from wayport.store.logs import MAX_PAGE_SIZE, InvalidCursor

__all__ = ["logs_router"]


def logs_router(state: ControlState) -> APIRouter:
    """The routes under ``/v1/logs``."""
    router = APIRouter(prefix="/v1/logs", tags=["logs"])

    @router.get("")
    async def list_logs(
        filters: Annotated[LogFilters, Depends(log_filters)],
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
        include_bodies: Annotated[bool, Query()] = False,
    ) -> Response:
        """Logs matching the filters, newest first, ``limit`` at a time."""
        try:
            page = await state.logs.query(filters, cursor or None, limit, include_bodies=include_bodies)
        except InvalidCursor:
            raise ControlError.invalid(
                FieldError("cursor", "is not a cursor this endpoint issued; start again without it")
            ) from None
        data = [log_to_json(record, include_bodies=include_bodies) for record in page.records]
        return ControlJSONResponse({"object": "list", "data": data, "next_cursor": page.next_cursor})

    @router.get("/export")
    async def export_logs(
        filters: Annotated[LogFilters, Depends(log_filters)],
        format: Annotated[ExportFormat, Query(description="jsonl or csv")] = ExportFormat.JSONL,
        include_bodies: Annotated[bool, Query()] = True,
    ) -> Response:
        """Every matching log, oldest first, streamed as JSONL or CSV."""

        async def body() -> AsyncIterator[bytes]:
            async for data, _count in export_chunks(
                state.logs, filters, format, include_bodies=include_bodies
            ):
                yield data

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        headers = {"content-disposition": f'attachment; filename="wayport-logs-{stamp}.{format.value}"'}
        return StreamingResponse(body(), media_type=format.media_type, headers=headers)

    @router.get("/{log_id}")
    async def get_log(log_id: str) -> Response:
        """One log with its bodies and the feedback on its trace."""
        record = await state.logs.get(log_id)
        if record is None:
            raise ControlError.not_found(f"log {log_id!r} not found")
        out = log_to_json(record)
        out["feedback"] = [
            {
                "id": item.id,
                "value": item.value,
                "weight": item.weight,
                "metadata": item.metadata,
                "created_at": item.created_at.isoformat(),
            }
            for item in await state.feedback.list_by_trace(record.trace_id)
        ]
        return ControlJSONResponse(out)

    @router.post("")
    async def insert_logs(request: Request) -> Response:
        """Portkey's custom log: one ``{request, response, metadata}`` or an array of them."""
        try:
            items = parse_custom_logs(await json_body(request, state.max_body_bytes))
        except FieldError as exc:
            raise ControlError.invalid(exc) from None
        records = [
            custom_log_to_record(item, pricer=state.pricer, body_mode=state.body_mode) for item in items
        ]
        if state.submit is None:
            await state.logs.insert_many(records)
        else:
            dropped = sum(1 for record in records if not state.submit(record))
            if dropped:
                raise ControlError(
                    503, f"the log queue is full: {dropped} of {len(records)} logs were dropped; retry later"
                )
        return ControlJSONResponse(
            {"status": "success", "message": "Logs accepted", "log_ids": [record.id for record in records]}
        )

    return router
