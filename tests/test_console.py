"""The console in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, which
.ci/run installs) against a running Wayport with auth on and seeded data.

Screenshots of every page go to ``$WAYPORT_ARTIFACTS`` (default ``test-artifacts/console``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from tests.security_harness import SecuredGateway, secured

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("WAYPORT_ARTIFACTS", "test-artifacts/console"))
SECRET = "sk-console-secret-0123456789abcdef"


class Seeded:
    def __init__(self, wp: SecuredGateway, vk: str, fallback_trace: str, prompt_id: str, viewer: str) -> None:
        self.wp = wp
        self.vk = vk
        self.fallback_trace = fallback_trace
        self.prompt_id = prompt_id
        self.viewer = viewer


def chat(wp: SecuredGateway, headers: dict[str, str], content: str, **extra: Any) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(
        wp.server.v1 + "/chat/completions", json=body, headers={"x-portkey-api-key": wp.admin, **headers}
    )


@pytest.fixture(scope="module")
def seeded(openai_emulator: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    wp = secured(emulator_settings(openai_emulator, tmp_path_factory.mktemp("console")))
    with wp.control(wp.admin) as api:
        vk = api.post(
            "/v1/virtual-keys", json={"name": "emulated openai", "provider": "openai", "key": SECRET}
        ).json()
        backup = api.post(
            "/v1/virtual-keys",
            json={
                "name": "backup",
                "provider": "openai",
                "key": SECRET + "b",
                "usage_limits": {"type": "cost", "credit_limit": 5, "periodic_reset": "monthly"},
            },
        ).json()
        prompt = api.post(
            "/v1/prompts", json={"name": "greeting", "string": "Say hello to {{name}} in French"}
        ).json()
    time.sleep(0.3)
    for index in range(4):
        chat(
            wp,
            {"x-portkey-virtual-key": vk["slug"], "x-portkey-metadata": '{"env": "prod"}'},
            f"question {index}",
        )
    chat(wp, {"x-portkey-virtual-key": vk["slug"]}, "a streamed one", stream=True)
    openai_emulator.inject(Fault(status=500, json={"error": {"message": "primary is down"}}))
    config = (
        '{"strategy": {"mode": "fallback"}, "targets": '
        f'[{{"virtual_key": "{vk["slug"]}"}}, {{"virtual_key": "{backup["slug"]}"}}]}}'
    )
    answer = chat(
        wp, {"x-portkey-config": config, "x-portkey-trace-id": "trace-fallback"}, "needs a fallback"
    )
    assert answer.status_code == 200, answer.text
    with wp.control(wp.admin) as api:
        given = api.post("/v1/feedback", json={"trace_id": "trace-fallback", "value": 7, "weight": 0.5})
        assert given.status_code == 200, given.text
    _, viewer = wp.create_key("viewer")
    time.sleep(0.3)  # logs are written in the background
    yield Seeded(wp, vk["slug"], "trace-fallback", prompt["id"], viewer)
    wp.server.stop()


@pytest.fixture(scope="module")
def browser(seeded: Seeded) -> Iterator[Browser]:
    # after ``seeded``: Playwright's sync API keeps an event loop running while it is open
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def sign_in(browser: Browser, seeded: Seeded, token: str) -> Page:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(seeded.wp.server.url + "/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Logs")).to_be_visible()
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_sign_in_filter_logs_and_open_a_request(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    rows = page.locator("#log-rows tr")
    expect(rows).to_have_count(6)
    shot(page, "logs")
    page.get_by_label("Metadata key=value").fill("env=prod")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(4)
    page.get_by_label("Metadata key=value").fill("")
    page.get_by_label("Trace id").fill(seeded.fallback_trace)
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Request")
    attempts = page.locator("#attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("500")
    expect(attempts.nth(1)).to_contain_text("200")
    expect(page.locator("#cost")).to_contain_text("$")
    expect(page.locator("#feedback tbody tr")).to_have_count(1)
    expect(page.locator("#feedback")).to_contain_text("7")
    shot(page, "request")
    page.get_by_role("link", name=seeded.fallback_trace).click()
    expect(page.locator(".timeline li")).to_have_count(1)
    shot(page, "trace")


def test_a_streamed_answer_is_shown_reassembled(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    logs = httpx.get(seeded.wp.server.v1 + "/logs", headers={"x-portkey-api-key": seeded.wp.admin}).json()[
        "data"
    ]
    streamed = next(log for log in logs if log["stream"])
    page.goto(seeded.wp.server.url + f"/console/logs/{streamed['id']}")
    expect(page.get_by_role("heading", name="Response (stream, reassembled)")).to_be_visible()
    expect(page.locator("#response-body")).to_contain_text('"object": "chat.completion"')


def test_new_requests_appear_without_reload(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    rows = page.locator("#log-rows tr")
    before = rows.count()
    chat(seeded.wp, {"x-portkey-virtual-key": seeded.vk}, "arrives while the page is open")
    expect(rows).to_have_count(before + 1, timeout=10_000)


def test_edit_a_prompt_and_run_it_in_the_playground(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    page.goto(seeded.wp.server.url + f"/console/prompts/{seeded.prompt_id}")
    expect(page.locator("#template mark.var")).to_have_text("{{name}}")
    page.get_by_label("Template", exact=True).fill("Say hello to {{name}} in German, briefly")
    page.get_by_label("What changed").fill("German")
    page.get_by_role("button", name="Save version").click()
    expect(page.locator("#template")).to_contain_text("in German")
    page.get_by_role("button", name="Compare side by side").click()
    expect(page.locator("#diff")).to_contain_text("French")
    expect(page.locator("#diff")).to_contain_text("German")
    page.get_by_label("Label", exact=True).fill("production")
    page.get_by_label("on version").select_option("1")
    page.get_by_role("button", name="Set label").click()
    expect(page.get_by_text("production → 1")).to_be_visible()
    page.get_by_label("Virtual key (provider and credentials)").fill(seeded.vk)
    page.get_by_label("Models (comma-separated; each runs side by side)").fill("gpt-4o-mini, gpt-4o")
    page.locator("#play-name").fill("Ada")
    page.get_by_role("button", name="Run").click()
    runs = page.locator("#playground-results .run")
    expect(runs).to_have_count(2)
    expect(runs.nth(0)).to_contain_text("status 200")
    expect(runs.nth(0)).to_contain_text("cost $")
    expect(runs.nth(1)).to_contain_text("ms")
    shot(page, "prompt")


def test_a_config_with_an_error_shows_it_at_the_field(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    page.goto(seeded.wp.server.url + "/console/configs")
    page.get_by_label("Name").fill("broken")
    page.get_by_label("Config (JSON)").fill(
        '{"strategy": {"mode": "fallback"}, "targets": [{"provider": "no-such"}]}'
    )
    page.get_by_role("button", name="Save config").click()
    field = page.get_by_label("Config (JSON)")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#config-error")).to_contain_text("targets,0,provider")
    shot(page, "config-error")
    page.get_by_label("Config (JSON)").fill('{"retry": {"attempts": 2}, "virtual_key": "' + seeded.vk + '"}')
    page.get_by_role("button", name="Save config").click()
    expect(page.get_by_role("heading", name="broken")).to_be_visible()


def test_a_virtual_keys_secret_is_never_shown_again(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    page.goto(seeded.wp.server.url + "/console/keys")
    secret = "sk-typed-in-the-console-0123456789"
    page.get_by_label("Name", exact=True).nth(1).fill("from the console")
    page.get_by_label("Provider", exact=True).fill("openai")
    page.get_by_label("Provider key (write-only)").fill(secret)
    page.get_by_label("Budget (USD)").fill("3")
    page.get_by_role("button", name="Create virtual key").click()
    expect(page.locator("#vk-created")).to_contain_text("never shown again")
    assert secret not in page.content()
    page.goto(seeded.wp.server.url + "/console/keys")
    expect(page.locator("#virtual-keys")).to_contain_text("from the console")
    expect(page.locator("#virtual-keys meter").first).to_be_visible()
    assert secret not in page.content()
    shot(page, "keys")
    page.goto(seeded.wp.server.url + "/console/analytics")
    expect(page.locator("#groups")).to_contain_text("openai")
    expect(page.locator("svg.chart")).to_have_count(8)
    errors = page.locator("#totals .card").filter(has_text="Errors rate")
    expect(errors.locator("dd")).to_have_text("0.0%")
    shot(page, "analytics")
    page.goto(seeded.wp.server.url + "/console/audit")
    expect(page.locator("#audit")).to_contain_text("virtual-keys")
    assert secret not in page.content()
    shot(page, "audit")


def test_a_viewer_sees_no_edit_buttons_and_cannot_post_the_forms(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.viewer)
    for path, button in (
        ("/console/configs", "Save config"),
        ("/console/keys", "Create virtual key"),
        (f"/console/prompts/{seeded.prompt_id}", "Save version"),
    ):
        page.goto(seeded.wp.server.url + path)
        expect(page.get_by_role("button", name=button)).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    status = page.evaluate(
        """async ([csrf]) => {
            const body = new URLSearchParams({csrf, name: "sneaky", config: '{"provider": "openai"}'});
            const answer = await fetch("/console/configs", {method: "POST", body});
            return answer.status;
        }""",
        [csrf],
    )
    assert status == 403
    with seeded.wp.control(seeded.wp.admin) as api:
        names = [c["name"] for c in api.get("/v1/configs").json()["data"]]
    assert "sneaky" not in names


def test_a_form_without_the_csrf_token_is_refused(browser: Browser, seeded: Seeded) -> None:
    page = sign_in(browser, seeded, seeded.wp.admin)
    status = page.evaluate(
        """async () => {
            const body = new URLSearchParams({name: "no-token", config: '{"provider": "openai"}'});
            return (await fetch("/console/configs", {method: "POST", body})).status;
        }"""
    )
    assert status == 403
    cookie = next(c for c in page.context.cookies() if c["name"] == "wayport_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
