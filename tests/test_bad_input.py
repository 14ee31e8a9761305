"""Bad input gets a clear error in the documented envelope: never a stack trace, a hang or a 500."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import GatewayServer, free_port
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
OPENAI = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-test"}


def post(gateway: GatewayServer, headers: dict[str, str], **kwargs: object) -> httpx.Response:
    return httpx.post(gateway.v1 + "/chat/completions", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def assert_failure(r: httpx.Response, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "failure"
    assert message in body["message"]


def test_body_that_is_not_json(gateway: GatewayServer) -> None:
    r = post(gateway, {**OPENAI, "content-type": "application/json"}, content=b'{"model": ')
    assert_failure(r, 400, "Request body is not valid JSON")


def test_body_that_is_not_an_object(gateway: GatewayServer) -> None:
    assert_failure(post(gateway, OPENAI, json=[1, 2]), 400, "Request body must be a JSON object")


def test_empty_body(gateway: GatewayServer) -> None:
    assert_failure(post(gateway, OPENAI, content=b""), 400, "Request body is empty")


def test_missing_provider(gateway: GatewayServer) -> None:
    r = post(gateway, {"Authorization": "Bearer sk-test"}, json=CHAT)
    assert_failure(r, 400, "Either x-portkey-config or x-portkey-provider header is required")


def test_unknown_provider(gateway: GatewayServer) -> None:
    r = post(gateway, {**OPENAI, "x-portkey-provider": "openia"}, json=CHAT)
    assert_failure(r, 400, "Invalid provider passed: 'openia'. Known providers: ")


def test_config_without_provider_and_no_provider_header(gateway: GatewayServer) -> None:
    r = post(gateway, {"x-portkey-config": '{"retry": {"attempts": 1}}'}, json=CHAT)
    assert_failure(r, 400, "Either x-portkey-provider needs to be passed")


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '"text"'])
def test_bad_metadata(gateway: GatewayServer, value: str) -> None:
    r = post(gateway, {**OPENAI, "x-portkey-metadata": value}, json=CHAT)
    assert_failure(r, 400, "x-portkey-metadata must be a JSON object")


def test_bad_request_timeout_header(gateway: GatewayServer) -> None:
    r = post(gateway, {**OPENAI, "x-portkey-request-timeout": "soon"}, json=CHAT)
    assert_failure(r, 400, "x-portkey-request-timeout must be a number of milliseconds")


def test_wrong_content_type(gateway: GatewayServer) -> None:
    r = post(gateway, {**OPENAI, "content-type": "text/xml"}, content=b"<a/>")
    assert_failure(r, 400, "Invalid content type passed")


def test_huge_body_is_413_by_content_length(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
    r = post(gateway, OPENAI, json=big)
    assert_failure(r, 413, "the limit is 1048576 bytes")
    assert openai_emulator.requests == []


def test_huge_chunked_body_is_413(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}]}'

    r = post(gateway, {**OPENAI, "content-type": "application/json"}, content=chunks())
    assert_failure(r, 413, "larger than the limit of 1048576 bytes")
    assert openai_emulator.requests == []


def test_upstream_unreachable_names_the_provider(gateway: GatewayServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    r = post(gateway, {**OPENAI, "x-portkey-custom-host": dead}, json=CHAT)
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["message"].startswith("openai error: could not connect to " + dead + "/chat/completions")
    assert r.json()["provider"] == "openai"
    assert "Traceback" not in r.text


def test_upstream_returns_html(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(
        Fault(status=200, text="<html><body>Bad gateway</body></html>", content_type="text/html")
    )
    r = post(gateway, OPENAI, json=CHAT)
    assert r.status_code == 502
    body = r.json()
    assert body["provider"] == "openai"
    assert "Invalid response received from openai: expected JSON, got 'text/html" in body["error"]["message"]


def test_upstream_error_page_keeps_status(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(
        Fault(status=503, text="<html>Service Unavailable</html>", content_type="text/html")
    )
    r = post(gateway, OPENAI, json=CHAT)
    assert r.status_code == 503
    assert r.json()["error"]["message"] == (
        "openai error: Invalid response received from openai: <html>Service Unavailable</html>"
    )


def test_provider_error_is_passed_through_in_openai_shape(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(
        Fault(
            status=400,
            json={
                "error": {
                    "message": "bad model",
                    "type": "invalid_request_error",
                    "param": "model",
                    "code": "x",
                }
            },
        )
    )
    r = post(gateway, OPENAI, json=CHAT)
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": "openai error: bad model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "x",
        },
        "provider": "openai",
    }


def test_secrets_never_appear_in_errors(gateway: GatewayServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {"provider": "openai", "api_key": "sk-very-secret", "custom_host": dead}
    r = post(gateway, {"x-portkey-config": orjson.dumps(config).decode()}, json=CHAT)
    assert r.status_code == 502
    assert "sk-very-secret" not in r.text
    r = post(gateway, {"x-portkey-config": '{"provider": "nope", "api_key": "sk-very-secret"}'}, json=CHAT)
    assert r.status_code == 400 and "sk-very-secret" not in r.text


def test_unsafe_custom_host_is_refused(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    r = post(gateway, {**OPENAI, "x-portkey-custom-host": "http://169.254.169.254/latest"}, json=CHAT)
    assert_failure(r, 400, "Invalid custom host")
    r = post(gateway, {**OPENAI, "x-portkey-custom-host": "http://10.1.2.3/v1"}, json=CHAT)
    assert_failure(r, 400, "WAYPORT_TRUSTED_HOSTS")
    assert openai_emulator.requests == []


def test_a_line_break_in_a_configured_key_is_refused(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    """A key from a config is written into a header: a CRLF in it would add a header of the
    caller's choosing to the provider request (header injection)."""
    config = {"provider": "openai", "api_key": "sk-test\r\nx-injected: 1"}
    r = post(gateway, {"x-portkey-config": orjson.dumps(config).decode()}, json=CHAT)
    assert_failure(r, 400, "cannot be sent: a header name or value contains a line break")
    assert "sk-test" not in r.text
    assert openai_emulator.requests == []
