"""The control API as a whole: the cache endpoint, the error envelope, the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_control_harness import ControlServer, assert_failure, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    with running_server("sqlite", tmp_path) as server:
        yield server


def test_delete_cache_clears_everything_without_a_namespace(server: ControlServer) -> None:
    response = server.http.delete("/v1/cache")
    assert response.status_code == 200
    assert response.json() == {"status": "success", "deleted": 7}
    assert server.cleared == [None]


def test_delete_cache_clears_one_namespace(server: ControlServer) -> None:
    assert server.http.delete("/v1/cache", params={"namespace": "team-a"}).json() == {
        "status": "success",
        "deleted": 3,
    }
    assert server.cleared == ["team-a"]


def test_delete_cache_without_a_cache_is_501(tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path, clear_cache=None) as server:
        assert_failure(server.http.delete("/v1/cache"), 501)


def test_a_failing_callback_is_a_500_envelope_without_a_stack_trace(tmp_path: Path) -> None:
    async def broken(namespace: str | None) -> int:
        raise RuntimeError("secret internals")

    with running_server("sqlite", tmp_path, clear_cache=broken) as server:
        body = assert_failure(server.http.delete("/v1/cache"), 500)
    assert "secret internals" not in body["message"] and "Traceback" not in body["message"]


def test_unknown_paths_and_methods_answer_the_envelope(server: ControlServer) -> None:
    assert_failure(server.http.get("/v1/logs/a/b"), 404)
    assert_failure(server.http.delete("/v1/logs"), 405)
    assert_failure(server.http.get("/v1/feedback"), 405)


def test_validation_errors_are_400_never_422(server: ControlServer) -> None:
    body = assert_failure(server.http.get("/v1/logs", params={"limit": "many"}), 400, "limit")
    assert body["errors"][0]["field"] == "limit"


def test_the_openapi_schema_lists_the_routes(server: ControlServer) -> None:
    schema = server.http.get("/v1/control/openapi.json").json()
    assert {
        "/v1/logs",
        "/v1/logs/export",
        "/v1/logs/{log_id}",
        "/v1/feedback",
        "/v1/feedback/{feedback_id}",
        "/v1/analytics/graphs/latency",
        "/v1/analytics/graphs/cache/hit-rate",
        "/v1/cache",
    } <= set(schema["paths"])


def test_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path, max_body_bytes=100) as server:
        big = [{"trace_id": "t", "value": 1, "metadata": {"pad": "x" * 200}}]
        assert_failure(server.http.post("/v1/feedback", json=big), 413, "body")

        def chunked() -> Iterator[bytes]:  # no content-length: the limit is counted as it streams
            yield b'[{"trace_id": "t", "value": 1, "metadata": {"pad": "'
            yield b"x" * 200
            yield b'"}}]'

        assert_failure(server.http.post("/v1/feedback", content=chunked()), 413, "body")
        assert server.http.post("/v1/feedback", json={"trace_id": "t", "value": 1}).status_code == 200
