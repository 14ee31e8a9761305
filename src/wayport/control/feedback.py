"""``/v1/feedback``: Portkey's feedback on a trace, created one at a time or in bulk, and updated.

Input is checked here, field by field, so a 400 names what is wrong (``value: must be an integer
between -10 and 10``); a bulk request is stored whole or not at all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from wayport.control.body import json_body
from wayport.control.errors import ControlError, ControlJSONResponse, FieldError
from wayport.control.state import ControlState
from wayport.store.feedback import Feedback

__all__ = ["feedback_router", "parse_feedback", "parse_feedback_update"]

VALUE_MESSAGE = "must be an integer between -10 and 10"
WEIGHT_MESSAGE = "must be a number between 0 and 1"
MAX_TRACE_ID = 255  # the store's column
_FEEDBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["trace_id", "value"],
    "properties": {
        "trace_id": {"type": "string"},
        "value": {"type": "integer", "minimum": -10, "maximum": 10},
        "weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
        "metadata": {"type": "object"},
    },
}


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def feedback_router(state: ControlState) -> APIRouter:
    """The routes under ``/v1/feedback``."""
    router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

    @router.post(
        "",
        openapi_extra=_body_doc({"oneOf": [_FEEDBACK_SCHEMA, {"type": "array", "items": _FEEDBACK_SCHEMA}]}),
    )
    async def create_feedback(request: Request) -> Response:
        """Feedback on a trace: one object or an array; ids come back in input order."""
        try:
            items = parse_feedback(await json_body(request, state.max_body_bytes))
        except FieldError as exc:
            raise ControlError.invalid(exc) from None
        ids = await state.feedback.insert_many(items)
        return _success("Feedback successfully saved", ids)

    @router.put("/{feedback_id}", openapi_extra=_body_doc({**_FEEDBACK_SCHEMA, "required": []}))
    async def update_feedback(feedback_id: str, request: Request) -> Response:
        """Change the value, weight or metadata of one feedback."""
        try:
            changes = parse_feedback_update(await json_body(request, state.max_body_bytes))
        except FieldError as exc:
            raise ControlError.invalid(exc) from None
        if not await state.feedback.update(feedback_id, **changes):
            raise ControlError.not_found(f"feedback {feedback_id!r} not found")
        return _success("Feedback successfully updated", [feedback_id])

    return router


def parse_feedback(body: Any) -> list[Feedback]:
    """The feedback of a ``POST /v1/feedback`` body; ``FieldError`` names the first bad field."""
    if isinstance(body, list):
        if not body:
            raise FieldError("body", "expected at least one feedback")
        return [_one(item, f"[{index}].") for index, item in enumerate(body)]
    return [_one(body, "")]


def parse_feedback_update(body: Any) -> dict[str, Any]:
    """The changes of a ``PUT /v1/feedback/{id}`` body (``null`` means unchanged)."""
    if not isinstance(body, dict):
        raise FieldError("body", "must be an object with value, weight or metadata")
    changes: dict[str, Any] = {}
    if body.get("value") is not None:
        changes["value"] = _value(body["value"], "value")
    if body.get("weight") is not None:
        changes["weight"] = _weight(body["weight"], "weight")
    if body.get("metadata") is not None:
        changes["metadata"] = _metadata(body["metadata"], "metadata")
    if not changes:
        raise FieldError("body", "nothing to update: give value, weight or metadata")
    return changes


def _one(item: Any, at: str) -> Feedback:
    if not isinstance(item, dict):
        raise FieldError(at.rstrip(".") or "body", "must be a feedback object with trace_id and value")
    trace_id = item.get("trace_id", item.get("traceID"))
    if not isinstance(trace_id, str) or not trace_id.strip():
        raise FieldError(f"{at}trace_id", "is required (the x-portkey-trace-id of the request)")
    if len(trace_id) > MAX_TRACE_ID:
        raise FieldError(f"{at}trace_id", f"must be at most {MAX_TRACE_ID} characters")
    if item.get("value") is None:
        raise FieldError(f"{at}value", f"is required and {VALUE_MESSAGE}")
    weight = item.get("weight")
    return Feedback(
        trace_id=trace_id,
        value=_value(item["value"], f"{at}value"),
        weight=1.0 if weight is None else _weight(weight, f"{at}weight"),
        metadata=_metadata(item.get("metadata") or {}, f"{at}metadata"),
    )


def _value(value: Any, field: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -10 <= value <= 10:
        raise FieldError(field, VALUE_MESSAGE)
    return value


def _weight(weight: Any, field: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise FieldError(field, WEIGHT_MESSAGE)
    return float(weight)


def _metadata(metadata: Any, field: str) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise FieldError(field, "must be a JSON object")
    return metadata


def _success(message: str, ids: list[str]) -> Response:
    return ControlJSONResponse({"status": "success", "message": message, "feedback_ids": ids})
