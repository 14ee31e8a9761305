"""/metrics of `wayport serve --workers N`: every worker answers with the sum of all of them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.emulators.openai import OpenAIEmulator
from tests.test_serve import WAYPORT, serve_env, stop, wait_healthy
from wayport.observability.metrics import Metrics
from wayport.observability.metrics_share import MetricsShare, fresh_run_directory, merge
from wayport.observability.record import LogRecord


def record(model: str = "gpt-4o", status: int = 200, latency_ms: int = 120) -> LogRecord:
    return LogRecord(
        trace_id="t", provider="openai", model_requested=model, endpoint="chatComplete", status=status,
        stream=False, latency_ms=latency_ms, prompt_tokens=10, completion_tokens=5, cost_micros=30,
    )  # fmt: skip


def samples(text: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    raw = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(raw)
        for s in family.samples
    }


def test_merge_sums_counters_histograms_and_gauges_and_keeps_the_first_created() -> None:
    one, two = Metrics(), Metrics()
    odd = 'gpt "4o" \\ mini'  # label values that need escaping survive the round trip
    for metrics, count in ((one, 3), (two, 2)):
        for _ in range(count):
            metrics.observe(record(odd))
    one.observe(record("gpt-4o", status=429))
    two.log_queue.set(4)
    one.log_queue.set(1)
    first, second = one.render().decode(), two.render().decode()
    merged = samples(merge([first, second]))
    labels = (
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "openai"),
        ("gen_ai_request_model", odd),
    )
    assert merged[("wayport_requests_total", (*labels, ("status", "200")))] == 5
    assert (
        merged[
            ("wayport_requests_total", (*labels[:2], ("gen_ai_request_model", "gpt-4o"), ("status", "429")))
        ]
        == 1
    )
    assert merged[("wayport_cost_micro_usd_total", labels)] == 150
    bucket = (
        "gen_ai_client_operation_duration_seconds_bucket",
        (("error_type", ""), *labels, ("le", "0.16")),
    )
    assert merged[bucket] == 5
    assert merged[("gen_ai_client_operation_duration_seconds_count", (("error_type", ""), *labels))] == 5
    assert merged[("wayport_log_queue_depth", ())] == 5
    assert merged[("wayport_workers_reporting", ())] == 2
    created = ("wayport_requests_created", (*labels, ("status", "200")))
    assert merged[created] == min(samples(first)[created], samples(second)[created])
    # one text alone comes back as it was, plus the count of workers
    alone = samples(merge([first]))
    assert alone.pop(("wayport_workers_reporting", ())) == 1
    assert alone == samples(first)


def test_a_worker_shares_its_text_when_it_changed_and_scrapes_the_others(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    mine, theirs = Metrics(), Metrics()
    renders = []

    def render() -> bytes:
        renders.append(1)
        return mine.render()

    share = MetricsShare(directory, render, lambda: mine.observed, worker="a")
    other = MetricsShare(directory, theirs.render, lambda: theirs.observed, worker="b")
    mine.observe(record())
    share.write()
    share.write()  # nothing changed: not rendered again
    assert len(renders) == 1 and (directory / "a.prom").is_file()
    for _ in range(4):
        theirs.observe(record())
    other.write()
    key = ("wayport_requests_total", (
        ("gen_ai_operation_name", "chat"), ("gen_ai_provider_name", "openai"),
        ("gen_ai_request_model", "gpt-4o"), ("status", "200"),
    ))  # fmt: skip
    mine.observe(record())  # live: this worker's scrape is current, the others' as last written
    assert samples(share.scrape(mine.render()))[key] == 6
    assert samples(other.scrape(theirs.render()))[key] == 5


def test_each_run_gets_a_fresh_directory_and_dead_runs_are_cleared(tmp_path: Path) -> None:
    root = tmp_path / "metrics"
    dead, alive = root / "4194999", root / str(os.getppid())  # above Linux's pid_max: never running
    for directory in (dead, alive, root / str(os.getpid())):
        directory.mkdir(parents=True)
        (directory / "1.prom").write_text("x 1\n")
    mine = fresh_run_directory(root, os.getpid())
    assert mine == root / str(os.getpid()) and list(mine.iterdir()) == []
    assert not dead.exists() and (alive / "1.prom").exists()


def test_every_worker_of_wayport_serve_reports_the_whole(
    openai_emulator: OpenAIEmulator, tmp_path: Path
) -> None:
    port = free_port()
    env = serve_env(tmp_path / "data", openai_emulator, WAYPORT_LOG_LEVEL="warning")
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [WAYPORT, "serve", "--port", str(port), "--workers", "2", "--no-auth"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_healthy(url, proc)
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-test", "connection": "close"}
        for _ in range(12):  # a new connection each: the two workers share them out
            assert httpx.post(url + "/v1/chat/completions", headers=headers, json=body).status_code == 200
        seen = []
        for _ in range(60):
            text = httpx.get(url + "/metrics", headers={"connection": "close"}).text
            values = samples(text)
            total = sum(v for (name, _), v in values.items() if name == "wayport_requests_total")
            seen.append((values[("wayport_workers_reporting", ())], total))
            if seen[-8:] == [(2, 12)] * 8:  # the workers write about once a second
                break
            time.sleep(0.1)
        assert seen[-8:] == [(2, 12)] * 8, seen
    finally:
        stop(proc)
    runs = list((tmp_path / "data" / "metrics").iterdir())
    assert len(runs) == 1 and len(list(runs[0].glob("*.prom"))) == 2
