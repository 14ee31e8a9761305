"""Price overrides for private models (settings file) and log retention."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.openai import OpenAIEmulator
from wayport.settings import Settings, SettingsError


def test_price_override_from_the_settings_file(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    file = tmp_path / "wayport.toml"
    file.write_text('[prices."my-llama"]\ninput = "2"\noutput = "6"\n')
    prices = Settings.load(file, env={}).prices
    server = GatewayServer(
        replace(emulator_settings(openai_emulator, tmp_path / "data"), prices=prices)
    ).start()
    try:
        r = httpx.post(
            server.v1 + "/chat/completions",
            headers={"x-portkey-provider": "openai", "Authorization": "Bearer k"},
            json={"model": "my-llama", "messages": [{"role": "user", "content": "one two three"}]},
        )
        usage = r.json()["usage"]
        expected = (Decimal(usage["prompt_tokens"]) * 2 + Decimal(usage["completion_tokens"]) * 6) / 1_000_000
        assert Decimal(r.headers["x-wayport-cost-usd"]) == expected
    finally:
        server.stop()


def test_a_bad_price_names_the_model(tmp_path: Path) -> None:
    file = tmp_path / "wayport.toml"
    file.write_text('[prices."my-llama"]\ninput = "2"\n')
    with pytest.raises(SettingsError, match="prices.my-llama: a price override needs 'input' and 'output'"):
        Settings.load(file, env={})


def test_old_logs_are_deleted(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    settings = emulator_settings(openai_emulator, tmp_path / "data")
    first = GatewayServer(settings).start()
    first.stop()  # the store now exists
    db = sqlite3.connect(settings.data_dir / "wayport.db")
    columns = [row[1] for row in db.execute("pragma table_info(logs)")]
    old = {c: None for c in columns} | {
        "id": "old-log",
        "trace_id": "t-old",
        "created_at": "2020-01-01 00:00:00.000000",
        "endpoint": "chatComplete",
        "status": 200,
        "stream": 0,
        "latency_ms": 1,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_breakdown": "{}",
        "currency": "USD",
        "cache_status": "DISABLED",
        "attempts": "[]",
        "retries": 0,
        "fallbacks": 0,
        "metadata": "{}",
    }
    db.execute(
        f"insert into logs ({', '.join(old)}) values ({', '.join('?' * len(old))})", list(old.values())
    )
    db.commit()
    second = GatewayServer(replace(settings, log_retention_days=30)).start()
    try:
        deadline = time.monotonic() + 5
        while (
            db.execute("select count(*) from logs where id = 'old-log'").fetchone()[0]
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert db.execute("select count(*) from logs where id = 'old-log'").fetchone()[0] == 0
    finally:
        second.stop()
        db.close()
