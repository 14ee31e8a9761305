"""``/v1/logs`` over real HTTP: one log, filtered pages, exports, custom logs; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from portkey_ai import Portkey

from tests.test_control_harness import ControlServer, assert_failure, make_log, running_server
from wayport.control.render import CSV_COLUMNS
from wayport.observability.pricing import PriceOverride, Pricer
from wayport.observability.record import LogRecord
from wayport.store import Feedback

LOGS = [make_log(n) for n in range(30)]
OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlServer]:
    """A server holding :data:`LOGS` and two feedbacks on trace-1; tests only read it."""
    with running_server(request.param, tmp_path_factory.mktemp("control")) as server:
        server.insert(LOGS)
        server.insert_feedback(
            [
                Feedback(trace_id="trace-1", value=5, weight=0.5, metadata={"_user": "u"}),
                Feedback(trace_id="trace-1", value=-2),
            ]
        )
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlServer]:
    with running_server(request.param, tmp_path) as server:
        yield server


def newest_first(keep: Callable[[LogRecord], bool]) -> list[str]:
    return [record.id for record in sorted(LOGS, key=lambda r: r.created_at, reverse=True) if keep(record)]


def wait_for_log(server: ControlServer, **params: str) -> list[dict[str, Any]]:
    for _ in range(200):
        data: list[dict[str, Any]] = server.http.get("/v1/logs", params=params).json()["data"]
        if data:
            return data
        time.sleep(0.02)
    raise AssertionError(f"no log matching {params} was written")


# -- one log ------------------------------------------------------------------------------------


def test_get_returns_the_log_with_bodies_cost_and_the_feedback_on_its_trace(seeded: ControlServer) -> None:
    record = LOGS[16]  # trace-1, cost 1600 micro-dollars
    body = seeded.http.get(f"/v1/logs/{record.id}").json()
    assert body["object"] == "log" and body["id"] == record.id
    assert body["created_at"] == "2025-03-01T12:00:16+00:00"
    assert (body["provider"], body["model_requested"], body["model_served"]) == (
        "anthropic",
        "claude-3-5-sonnet",
        "claude-3-5-sonnet-20241022",
    )
    assert (body["status"], body["latency_ms"], body["ttft_ms"]) == (400, 260, 56)
    assert (body["prompt_tokens"], body["completion_tokens"], body["total_tokens"]) == (16, 32, 48)
    assert (body["cost_micros"], body["cost_usd"], body["cost"]) == (1600, 0.0016, 0.16)
    assert body["metadata"] == {"_user": "user-0", "env": "dev"} and body["user"] == "user-0"
    assert (body["request_body"], body["response_body"]) == ('{"n": 16}', '{"answer": 16}')
    # Portkey's export field ids
    assert (body["ai_org"], body["ai_model"], body["req_units"], body["res_units"]) == (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        16,
        32,
    )
    assert (body["response_time"], body["response_status_code"], body["cost_currency"]) == (260, 400, "USD")
    assert sorted((f["value"], f["weight"]) for f in body["feedback"]) == [(-2, 1.0), (5, 0.5)]


def test_cost_is_rendered_as_an_exact_decimal_in_the_json_text(seeded: ControlServer) -> None:
    raw = seeded.http.get(f"/v1/logs/{LOGS[3].id}").text
    assert '"cost_usd":0.0003,' in raw and '"cost":0.03,' in raw


def test_unknown_log_id_is_404_in_the_envelope(seeded: ControlServer) -> None:
    body = assert_failure(seeded.http.get("/v1/logs/no-such-log"), 404)
    assert "no-such-log" in body["message"]


# -- listing ------------------------------------------------------------------------------------


def test_pages_follow_the_cursor_newest_first_without_duplicates_or_gaps(seeded: ControlServer) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        body = seeded.http.get("/v1/logs", params=params).json()
        assert body["object"] == "list"
        seen += [item["id"] for item in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == newest_first(lambda r: True)


def test_list_leaves_bodies_out_unless_asked(seeded: ControlServer) -> None:
    (item,) = seeded.http.get("/v1/logs", params={"limit": "1"}).json()["data"]
    assert "request_body" not in item and "response_body" not in item
    (item,) = seeded.http.get("/v1/logs", params={"limit": "1", "include_bodies": "true"}).json()["data"]
    assert item["request_body"] == '{"n": 29}'


FILTERS: list[tuple[dict[str, str], Callable[[LogRecord], bool]]] = [
    ({"provider": "openai"}, lambda r: r.provider == "openai"),
    ({"provider": "openai,groq"}, lambda r: r.provider in ("openai", "groq")),
    ({"model": "claude-3-5-sonnet"}, lambda r: r.model_requested == "claude-3-5-sonnet"),
    ({"model": "gpt-4o-2024-08-06"}, lambda r: r.model_served == "gpt-4o-2024-08-06"),
    ({"status": "200"}, lambda r: r.status == 200),
    ({"status": "4xx"}, lambda r: 400 <= r.status < 500),
    ({"status_code": "5xx,429"}, lambda r: r.status >= 500 or r.status == 429),
    ({"cache_status": "hit"}, lambda r: r.cache_status == "HIT"),
    ({"trace_id": "trace-2"}, lambda r: r.trace_id == "trace-2"),
    ({"user": "user-3"}, lambda r: r.user == "user-3"),
    ({"metadata.env": "prod"}, lambda r: r.metadata["env"] == "prod"),
    (
        {"metadata": '{"env": "dev", "_user": "user-0"}'},
        lambda r: r.metadata == {"_user": "user-0", "env": "dev"},
    ),
    ({"cost_min": "0.0015"}, lambda r: r.cost_micros is not None and r.cost_micros >= 1500),
    ({"cost_max": "0.0005"}, lambda r: r.cost_micros is not None and r.cost_micros <= 500),
    ({"latency_min": "200", "latency_max": "250"}, lambda r: 200 <= r.latency_ms <= 250),
    (
        {"time_of_generation_min": "2025-03-01T12:00:10Z", "time_of_generation_max": "2025-03-01T12:00:20Z"},
        lambda r: 10 <= r.created_at.second < 20,
    ),
    ({"time_of_generation_min": "2025-03-01T13:00:25+01:00"}, lambda r: r.created_at.second >= 25),
    (
        {"provider": "openai", "status": "200", "metadata.env": "dev"},
        lambda r: r.provider == "openai" and r.status == 200 and r.metadata["env"] == "dev",
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[str(p) for p, _k in FILTERS])
def test_list_filters(
    seeded: ControlServer, params: dict[str, str], keep: Callable[[LogRecord], bool]
) -> None:
    expected = newest_first(keep)
    assert expected, "the filter should match something"
    body = seeded.http.get("/v1/logs", params={**params, "limit": "100"}).json()
    assert [item["id"] for item in body["data"]] == expected
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"time_of_generation_min": "yesterday"}, "time_of_generation_min"),
        (
            {"time_of_generation_min": "2025-03-02T00:00:00Z", "time_of_generation_max": "2025-03-01"},
            "time_of_generation_max",
        ),
        ({"status": "6xx"}, "status"),
        ({"cost_min": "-1"}, "cost_min"),
        ({"cost_max": "cheap"}, "cost_max"),
        ({"latency_min": "-5"}, "latency_min"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"metadata": "{oops"}, "metadata"),
        ({"total_units_min": "10"}, "total_units_min"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_field(
    seeded: ControlServer, params: dict[str, str], field: str
) -> None:
    assert_failure(seeded.http.get("/v1/logs", params=params), 400, field)


# -- export -------------------------------------------------------------------------------------


def test_export_jsonl_streams_every_matching_log_oldest_first(seeded: ControlServer) -> None:
    with seeded.http.stream("GET", "/v1/logs/export", params={"format": "jsonl"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        assert "attachment" in response.headers["content-disposition"]
        lines = list(response.iter_lines())
    items = [orjson.loads(line) for line in lines]
    assert [item["id"] for item in items] == [record.id for record in LOGS]
    assert items[7]["request_body"] == '{"n": 7}' and items[7]["cost_usd"] == 0.0007


def test_export_applies_the_filters_and_can_leave_bodies_out(seeded: ControlServer) -> None:
    params = {"format": "jsonl", "provider": "groq", "include_bodies": "false"}
    items = [
        orjson.loads(line) for line in seeded.http.get("/v1/logs/export", params=params).text.splitlines()
    ]
    assert [item["id"] for item in items] == [r.id for r in LOGS if r.provider == "groq"]
    assert all("request_body" not in item for item in items)


def test_export_csv_has_a_header_and_one_row_per_log(seeded: ControlServer) -> None:
    response = seeded.http.get("/v1/logs/export", params={"format": "csv", "trace_id": "trace-1"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0].keys()) == list(CSV_COLUMNS)
    expected = [r for r in LOGS if r.trace_id == "trace-1"]
    assert [row["id"] for row in rows] == [r.id for r in expected]
    row = rows[1]  # n = 6
    assert (row["provider"], row["status"], row["cost_usd"], row["cost_micros"]) == (
        "openai",
        "200",
        "0.0006",
        "600",
    )
    assert orjson.loads(row["metadata"]) == {"_user": "user-2", "env": "dev"}
    assert (row["stream"], row["span_id"], row["request_body"]) == ("false", "", '{"n": 6}')
    unpriced = seeded.http.get("/v1/logs/export", params={"format": "csv", "trace_id": "trace-0"}).text
    assert {row["cost_usd"] for row in csv.DictReader(io.StringIO(unpriced))} == {""}  # cost unknown


def test_export_of_an_unknown_format_is_400(seeded: ControlServer) -> None:
    assert_failure(seeded.http.get("/v1/logs/export", params={"format": "xml"}), 400, "format")


# -- custom logs ----------------------------------------------------------------------------------


def test_portkey_sdk_logs_create_inserts_a_custom_log_through_the_writer(server: ControlServer) -> None:
    portkey = Portkey(base_url=server.v1, api_key="any")
    portkey.logs.create(
        request={
            "url": "https://api.openai.com/v1/chat/completions",
            "method": "POST",
            "headers": {"Authorization": f"Bearer {OPENAI_KEY}"},
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        },
        response={
            "status": 200,
            "headers": {"content-type": "application/json"},
            "body": {
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"message": {"role": "assistant", "content": "Hello"}}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            },
            "response_time": 345,
        },
        metadata={
            "trace_id": "custom-trace-1",
            "span_id": "s-1",
            "spanName": "greet",
            "_user": "ann",
            "team": "a",
        },
    )
    (item,) = wait_for_log(server, trace_id="custom-trace-1")
    assert (item["provider"], item["endpoint"], item["status"], item["latency_ms"]) == (
        "openai",
        "chatComplete",
        200,
        345,
    )
    assert (item["model_requested"], item["model_served"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (item["prompt_tokens"], item["completion_tokens"]) == (9, 3)
    assert (item["span_id"], item["span_name"], item["user"]) == ("s-1", "greet", "ann")
    assert item["metadata"] == {"_user": "ann", "team": "a"}
    stored = server.http.get(f"/v1/logs/{item['id']}").text
    assert OPENAI_KEY not in stored and "Hello" in stored


def test_custom_logs_in_an_array_are_inserted_directly_without_a_writer_and_priced(tmp_path: Path) -> None:
    pricer = Pricer({"my-model": PriceOverride.from_mapping({"input": "1", "output": "2"})})
    with running_server("sqlite", tmp_path, submit=None, pricer=pricer) as server:
        item = {
            "request": {"url": "https://llm.internal/v1/chat/completions", "provider": "openai", "body": {}},
            "response": {
                "body": {"model": "my-model", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}
            },
            "metadata": {"traceId": "t-array"},
        }
        failed = {**item, "response": {"status": 503, "body": {"error": {"message": "overloaded"}}}}
        body = server.http.post("/v1/logs", json=[item, failed]).json()
        assert body["status"] == "success" and len(body["log_ids"]) == 2
        first, second = (server.http.get(f"/v1/logs/{log_id}").json() for log_id in body["log_ids"])
    assert (first["trace_id"], first["cost_micros"], first["cost_usd"]) == ("t-array", 2000, 0.002)
    assert (second["status"], second["error"], second["cost_micros"]) == (503, "overloaded", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request": {"url": "https://x"}}, "response"),
        ({"request": {}, "response": {}}, "request.url"),
        ([{"request": {"url": "https://x"}, "response": {"status": 99}}], "[0].response.status"),
        ({"request": {"url": "https://x"}, "response": {}, "metadata": "m"}, "metadata"),
        ([], "body"),
    ],
)
def test_invalid_custom_logs_are_400_naming_the_field(seeded: ControlServer, body: Any, field: str) -> None:
    assert_failure(seeded.http.post("/v1/logs", json=body), 400, field)


def test_custom_log_refused_by_a_full_queue_is_503(tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path, submit=lambda record: False) as server:
        item = {"request": {"url": "https://api.openai.com/v1/embeddings"}, "response": {}}
        body = assert_failure(server.http.post("/v1/logs", json=item), 503)
    assert "queue is full" in body["message"]
