"""``/v1/feedback`` driven by the portkey-ai SDK over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from portkey_ai import Portkey
from portkey_ai.api_resources.exceptions import BadRequestError, NotFoundError

from tests.test_control_harness import ControlServer, assert_failure, make_log, running_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlServer]:
    with running_server(request.param, tmp_path_factory.mktemp("feedback")) as server:
        yield server


@pytest.fixture
def portkey(server: ControlServer) -> Portkey:
    return Portkey(base_url=server.v1, api_key="any")


def stored(server: ControlServer, feedback_id: str) -> tuple[str, int, float, dict[str, Any]]:
    item = server.call(server.feedback.get(feedback_id))
    assert item is not None
    return item.trace_id, item.value, item.weight, item.metadata


def test_sdk_create_saves_one_feedback_with_the_default_weight(
    server: ControlServer, portkey: Portkey
) -> None:
    response = portkey.feedback.create(trace_id="trace-a", value=1, metadata={"_user": "ann"})
    assert response.status == "success"
    assert response.message == "Feedback successfully saved"
    assert response.feedback_ids is not None and len(response.feedback_ids) == 1
    assert stored(server, response.feedback_ids[0]) == ("trace-a", 1, 1.0, {"_user": "ann"})


def test_sdk_bulk_create_returns_ids_in_input_order(server: ControlServer, portkey: Portkey) -> None:
    feedbacks = [
        {"trace_id": "trace-b", "value": -10, "weight": 0},
        {"trace_id": "trace-c", "value": 10, "weight": 1},
        {"trace_id": "trace-b", "value": 3, "weight": 0.25, "metadata": {"_prompt": "p-1"}},
    ]
    response = portkey.feedback.bulk_create(feedbacks=feedbacks)
    assert response.status == "success" and response.feedback_ids is not None
    assert [stored(server, feedback_id) for feedback_id in response.feedback_ids] == [
        ("trace-b", -10, 0.0, {}),
        ("trace-c", 10, 1.0, {}),
        ("trace-b", 3, 0.25, {"_prompt": "p-1"}),
    ]


def test_sdk_update_changes_the_given_fields(server: ControlServer, portkey: Portkey) -> None:
    created = portkey.feedback.create(trace_id="trace-d", value=2, weight=0.5, metadata={"a": "b"})
    assert created.feedback_ids is not None
    (feedback_id,) = created.feedback_ids
    response = portkey.feedback.update(feedback_id=feedback_id, value=-4)
    assert response.status == "success" and response.feedback_ids == [feedback_id]
    assert stored(server, feedback_id) == ("trace-d", -4, 0.5, {"a": "b"})
    portkey.feedback.update(feedback_id=feedback_id, value=0, weight=1, metadata={"c": "d"})
    assert stored(server, feedback_id) == ("trace-d", 0, 1.0, {"c": "d"})


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"trace_id": "t", "value": 11}, "value", "must be an integer between -10 and 10"),
        ({"trace_id": "t", "value": -11}, "value", "must be an integer between -10 and 10"),
        ({"trace_id": "t", "value": 1.5}, "value", "must be an integer between -10 and 10"),
        ({"trace_id": "t"}, "value", "is required and must be an integer between -10 and 10"),
        ({"trace_id": "t", "value": 1, "weight": 1.5}, "weight", "must be a number between 0 and 1"),
        ({"trace_id": "t", "value": 1, "weight": -0.1}, "weight", "must be a number between 0 and 1"),
        ({"value": 1}, "trace_id", "is required (the x-portkey-trace-id of the request)"),
        ({"trace_id": "t", "value": 1, "metadata": ["x"]}, "metadata", "must be a JSON object"),
    ],
)
def test_sdk_create_with_invalid_input_is_refused_naming_the_field(
    server: ControlServer, portkey: Portkey, kwargs: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(BadRequestError) as raised:
        portkey.feedback.create(**kwargs)
    assert raised.value.status_code == 400
    # the SDK hands the body over as text
    body: Any = orjson.loads(raised.value.body) if isinstance(raised.value.body, str) else raised.value.body
    assert f"{field}: {message}" in str(raised.value)
    assert body["status"] == "failure"
    assert body["message"] == f"{field}: {message}"
    assert body["errors"] == [{"field": field, "message": message}]


def test_a_bulk_request_with_one_bad_item_stores_nothing_and_names_its_index(server: ControlServer) -> None:
    items = [{"trace_id": "trace-e", "value": 1}, {"trace_id": "trace-e", "value": 1, "weight": 2}]
    body = assert_failure(httpx.post(server.v1 + "/feedback", json=items), 400, "[1].weight")
    assert body["message"] == "[1].weight: must be a number between 0 and 1"
    assert server.call(server.feedback.list_by_trace("trace-e")) == []


@pytest.mark.parametrize(
    ("content", "field"),
    [(b"{not json", "body"), (b"[]", "body"), (b'"text"', "body"), (b"[1]", "[0]")],
)
def test_bodies_that_are_not_feedback_are_400(server: ControlServer, content: bytes, field: str) -> None:
    response = httpx.post(
        server.v1 + "/feedback", content=content, headers={"content-type": "application/json"}
    )
    assert_failure(response, 400, field)


def test_update_validates_and_reports_unknown_ids(server: ControlServer, portkey: Portkey) -> None:
    created = portkey.feedback.create(trace_id="trace-f", value=1)
    assert created.feedback_ids is not None
    url = f"{server.v1}/feedback/{created.feedback_ids[0]}"
    assert_failure(httpx.put(url, json={"value": 20}), 400, "value")
    assert_failure(httpx.put(url, json={"weight": "heavy"}), 400, "weight")
    assert_failure(httpx.put(url, json={}), 400, "body")
    assert_failure(httpx.put(server.v1 + "/feedback/unknown-id", json={"value": 1}), 404)
    with pytest.raises(NotFoundError):
        portkey.feedback.update(feedback_id="unknown-id", value=1)


def test_feedback_shows_on_the_logs_of_its_trace(server: ControlServer, portkey: Portkey) -> None:
    record = make_log(1, trace_id="trace-with-logs")
    server.insert([record])
    portkey.feedback.create(trace_id="trace-with-logs", value=-1, weight=0.5)
    body = httpx.get(f"{server.v1}/logs/{record.id}").json()
    assert [(f["value"], f["weight"]) for f in body["feedback"]] == [(-1, 0.5)]


def test_feedback_via_plain_http_accepts_portkeys_v1_trace_id_spelling(tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path) as server:
        body = server.http.post("/v1/feedback", json={"traceID": "legacy", "value": 0}).json()
        assert body["status"] == "success"
        assert stored(server, body["feedback_ids"][0])[0] == "legacy"
