"""``/v1/analytics/graphs/*`` checked against figures worked out by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from portkey_ai import Portkey

from tests.test_control_harness import ControlServer, assert_failure, running_server
from wayport.observability.record import LogRecord
from wayport.store import Feedback

MIN, MAX = "2025-03-01T12:00:00Z", "2025-03-01T14:00:00Z"
HOURLY = {"time_of_generation_min": MIN, "time_of_generation_max": MAX, "bucket": "hour"}
H12, H13 = "2025-03-01T12:00:00+00:00", "2025-03-01T13:00:00+00:00"


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2025, 3, 1, hour, minute, second, tzinfo=UTC)


def log(
    trace: str,
    created_at: datetime,
    provider: str,
    status: int,
    latency: int,
    cost: int | None,
    cache: str,
    user: str | None,
    tokens: tuple[int, int, int, int],
) -> LogRecord:
    prompt, completion, cached, reasoning = tokens
    return LogRecord(
        trace_id=trace,
        created_at=created_at,
        provider=provider,
        model_requested="m",
        status=status,
        latency_ms=latency,
        cost_micros=cost,
        cache_status=cache,
        metadata={"_user": user} if user else {},
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


# The hour from 12:00 holds a-d, the hour from 13:00 holds e-g; h and i fall outside the range.
LOGS = [
    log("trace-a", at(12, 5), "openai", 200, 100, 1500, "HIT", "alice", (10, 5, 0, 0)),
    log("trace-b", at(12, 10), "openai", 200, 300, 2500, "MISS", "bob", (20, 10, 4, 0)),
    log("trace-c", at(12, 20), "anthropic", 500, 200, None, "DISABLED", "alice", (30, 0, 0, 0)),
    log("trace-d", at(12, 50), "anthropic", 429, 400, 1000, "MISS", None, (5, 5, 0, 2)),
    log("trace-e", at(13, 0), "openai", 200, 1000, 333, "SEMANTIC HIT", "carol", (7, 3, 0, 1)),
    log("trace-f", at(13, 30), "groq", 200, 50, 334, "REFRESH", "bob", (1, 1, 0, 0)),
    log("trace-g", at(13, 59, 59), "openai", 404, 60, 0, "DISABLED", "alice", (0, 0, 0, 0)),
    log("trace-h", at(11, 59, 59), "openai", 200, 9999, 99999, "HIT", "dave", (100, 100, 0, 0)),
    log("trace-i", at(14, 0), "openai", 500, 9999, 99999, "HIT", "erin", (100, 100, 0, 0)),
]
FEEDBACK = [
    Feedback(trace_id="trace-a", value=5, weight=1, created_at=at(12, 30)),
    Feedback(trace_id="trace-c", value=-3, weight=0.5, created_at=at(12, 40)),
    Feedback(trace_id="trace-e", value=10, weight=0.25, created_at=at(13, 10)),
    Feedback(trace_id="trace-a", value=-10, weight=1, created_at=at(15, 0)),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlServer]:
    with running_server(request.param, tmp_path_factory.mktemp("analytics")) as server:
        server.insert(LOGS)
        server.insert_feedback(FEEDBACK)
        yield server


def graph(server: ControlServer, metric: str, **params: str) -> dict[str, Any]:
    response = server.http.get(f"/v1/analytics/graphs/{metric}", params={**HOURLY, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert [point["timestamp"] for point in body["data_points"]] == [H12, H13]
    return body


def points(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in point.items() if k != "timestamp"} for point in body["data_points"]]


def test_requests(server: ControlServer) -> None:
    body = graph(server, "requests")
    assert (body["object"], body["metric"], body["granularity"]) == ("analytics-graph", "requests", "hour")
    assert body["summary"] == {"total": 7}
    assert points(body) == [{"total": 4}, {"total": 3}]


def test_cost_is_summed_in_micro_dollars_and_averaged_over_priced_requests(server: ControlServer) -> None:
    body = graph(server, "cost")
    # 12h: 1500 + 2500 + 1000 (one unpriced); 13h: 333 + 334 + 0; means rounded half even
    assert points(body) == [
        {"total": 0.005, "avg": 0.001667, "priced_requests": 3},
        {"total": 0.000667, "avg": 0.000222, "priced_requests": 3},
    ]
    assert body["summary"] == {"total": 0.005667, "avg": 0.000944, "priced_requests": 6}


def test_cost_leaves_as_exact_decimal_text(server: ControlServer) -> None:
    raw = server.http.get("/v1/analytics/graphs/cost", params=HOURLY).text
    assert '"summary":{"total":0.005667,"avg":0.000944,' in raw


def test_tokens(server: ControlServer) -> None:
    body = graph(server, "tokens")
    assert points(body) == [
        {"total": 85, "prompt": 65, "completion": 20, "cached": 4, "reasoning": 2},
        {"total": 12, "prompt": 8, "completion": 4, "cached": 0, "reasoning": 1},
    ]
    assert body["summary"] == {"total": 97, "prompt": 73, "completion": 24, "cached": 4, "reasoning": 3}


def test_latency_percentiles_are_exact_nearest_rank(server: ControlServer) -> None:
    body = graph(server, "latency")
    assert points(body) == [
        {"requests": 4, "avg": 250.0, "p50": 200, "p90": 400, "p99": 400},  # 100 200 300 400
        {"requests": 3, "avg": 370.0, "p50": 60, "p90": 1000, "p99": 1000},  # 50 60 1000
    ]
    # 50 60 100 200 300 400 1000
    assert body["summary"] == {"requests": 7, "avg": 301.4, "p50": 200, "p90": 1000, "p99": 1000}


def test_errors(server: ControlServer) -> None:
    body = graph(server, "errors")
    assert points(body) == [
        {"total": 2, "requests": 4, "rate": 0.5},
        {"total": 1, "requests": 3, "rate": 0.333333},
    ]
    assert body["summary"] == {"total": 3, "requests": 7, "rate": 0.428571}


def test_cache_hit_rate_counts_only_requests_that_looked_the_cache_up(server: ControlServer) -> None:
    body = graph(server, "cache/hit-rate")
    assert points(body) == [
        {"hits": 1, "misses": 2, "requests": 4, "rate": 0.333333},  # HIT, MISS, MISS (+ DISABLED)
        {"hits": 1, "misses": 1, "requests": 3, "rate": 0.5},  # SEMANTIC HIT, REFRESH (+ DISABLED)
    ]
    assert body["summary"] == {"hits": 2, "misses": 3, "requests": 7, "rate": 0.4}


def test_users_are_distinct_per_bucket_and_over_the_range(server: ControlServer) -> None:
    body = graph(server, "users")
    assert points(body) == [{"total": 2}, {"total": 3}]
    assert body["summary"] == {"total": 3}


def test_feedbacks_with_plain_and_weighted_means(server: ControlServer) -> None:
    body = graph(server, "feedbacks")
    assert points(body) == [
        {"total": 2, "avg_value": 1.0, "avg_weighted_value": 2.3333},  # (5 - 1.5) / 1.5
        {"total": 1, "avg_value": 10.0, "avg_weighted_value": 10.0},
    ]
    assert body["summary"] == {"total": 3, "avg_value": 4.0, "avg_weighted_value": 3.4286}  # 6 / 1.75


def test_feedbacks_follow_the_log_filters_through_their_traces(server: ControlServer) -> None:
    body = graph(server, "feedbacks", provider="anthropic")
    assert points(body) == [
        {"total": 1, "avg_value": -3.0, "avg_weighted_value": -3.0},
        {"total": 0, "avg_value": None, "avg_weighted_value": None},
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "openai"}, [2, 2]),
        ({"status": "5xx"}, [1, 0]),
        ({"status_code": "4xx"}, [1, 1]),
        ({"cache_status": "MISS,REFRESH"}, [2, 1]),
        ({"user": "alice"}, [2, 1]),
        ({"metadata._user": "bob"}, [1, 1]),
        ({"cost_min": "0.001", "cost_max": "0.0025"}, [3, 0]),
        ({"latency_min": "100", "latency_max": "300"}, [3, 0]),
        ({"trace_id": "trace-f"}, [0, 1]),
    ],
)
def test_graphs_take_the_log_filters(
    server: ControlServer, params: dict[str, str], expected: list[int]
) -> None:
    body = graph(server, "requests", **params)
    assert [point["total"] for point in body["data_points"]] == expected
    assert body["summary"]["total"] == sum(expected)


def test_the_bucket_follows_the_range(server: ControlServer) -> None:
    def shape(start: str, end: str) -> tuple[str, int, str]:
        params = {"time_of_generation_min": start, "time_of_generation_max": end}
        body = server.http.get("/v1/analytics/graphs/requests", params=params).json()
        return body["granularity"], len(body["data_points"]), body["data_points"][0]["timestamp"]

    assert shape(MIN, MAX) == ("minute", 120, H12)
    assert shape("2025-03-01T12:30:00Z", "2025-03-02T12:30:00Z") == ("hour", 25, "2025-03-01T12:00:00+00:00")
    assert shape("2025-03-01", "2025-03-31") == ("day", 30, "2025-03-01T00:00:00+00:00")


def test_minute_buckets_hold_the_right_requests(server: ControlServer) -> None:
    params = {
        "time_of_generation_min": "2025-03-01T12:04:00Z",
        "time_of_generation_max": "2025-03-01T12:11:00Z",
    }
    body = server.http.get("/v1/analytics/graphs/requests", params=params).json()
    assert [p["total"] for p in body["data_points"]] == [0, 1, 0, 0, 0, 0, 1]


def test_the_portkey_sdk_reads_a_graph(server: ControlServer) -> None:
    portkey = Portkey(base_url=server.v1, api_key="any")
    answer = portkey.analytics.graphs.requests(time_of_generation_min=MIN, time_of_generation_max=MAX)
    assert answer.summary == {"total": 7}  # type: ignore[attr-defined]
    assert len(answer.data_points) == 120  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "time_of_generation_min"),
        ({"time_of_generation_min": MIN}, "time_of_generation_max"),
        ({"time_of_generation_min": MIN, "time_of_generation_max": "noon"}, "time_of_generation_max"),
        ({**HOURLY, "bucket": "week"}, "bucket"),
        (
            {"time_of_generation_min": "2025-01-01", "time_of_generation_max": MAX, "bucket": "minute"},
            "bucket",
        ),
        ({**HOURLY, "virtual_keys": "vk-1"}, "virtual_keys"),
    ],
)
def test_bad_graph_requests_are_400_naming_the_field(
    server: ControlServer, params: dict[str, str], field: str
) -> None:
    assert_failure(server.http.get("/v1/analytics/graphs/latency", params=params), 400, field)


def test_an_unknown_graph_is_404(server: ControlServer) -> None:
    body = assert_failure(server.http.get("/v1/analytics/graphs/moods", params=HOURLY), 404)
    assert "requests" in body["message"]
