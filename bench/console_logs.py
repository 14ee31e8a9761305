"""How fast the console's logs page is on a big store: 1M request logs in the embedded SQLite store.

    .venv/bin/python bench/console_logs.py                 # 1,000,000 rows (about two minutes)
    .venv/bin/python bench/console_logs.py --rows 100000   # quicker

Fills a fresh data dir with ``--rows`` logs spread over the last 30 days (providers, models, status
codes, metadata and traces varied), starts ``wayport serve`` on it, signs in to the console and
times each page view (server time to the complete HTML, median of ``--repeat`` views).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from wayport.observability.record import LogRecord
from wayport.settings import Settings
from wayport.store.engine import create_engine
from wayport.store.logs import LogRepository
from wayport.store.migrate import upgrade

PROVIDERS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4"),
    ("groq", "llama-3.3-70b"),
]
BATCH = 20_000


def record(rng: random.Random, now: datetime, index: int) -> LogRecord:
    provider, model = rng.choice(PROVIDERS)
    status = 200 if rng.random() > 0.02 else rng.choice([429, 500, 502])
    return LogRecord(
        trace_id=f"trace-{index // 3}",
        created_at=now - timedelta(seconds=rng.uniform(0, 30 * 86400)),
        provider=provider,
        model_requested=model,
        model_served=model,
        endpoint="chat",
        status=status,
        stream=rng.random() < 0.3,
        latency_ms=rng.randint(80, 4000),
        prompt_tokens=rng.randint(10, 2000),
        completion_tokens=rng.randint(1, 800),
        cost_micros=rng.randint(5, 20_000),
        cache_status=rng.choice(["MISS", "DISABLED", "HIT"]),
        metadata={"env": rng.choice(["prod", "staging"]), "_user": f"user-{rng.randint(1, 500)}"},
        workspace_id="default",
    )


async def fill(data_dir: Path, rows: int) -> float:
    engine = create_engine(None, data_dir)
    await upgrade(engine)
    repo = LogRepository(engine)
    rng = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    columns = (TextColumn("filling the store"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("fill", total=rows)
        for start in range(0, rows, BATCH):
            await repo.insert_many([record(rng, now, i) for i in range(start, min(rows, start + BATCH))])
            progress.advance(task, min(BATCH, rows - start))
    await engine.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    console = Console()
    data_dir = Path(tempfile.mkdtemp(prefix="wayport-console-bench-"))
    seconds = asyncio.run(fill(data_dir, opts.rows))
    size = sum(p.stat().st_size for p in data_dir.glob("wayport.db*")) / 2**20
    console.print(f"{opts.rows:,} logs written in {seconds:.0f} s; store {size:.0f} MiB")
    port = 18787
    env = {**os.environ, "WAYPORT_DATA_DIR": str(data_dir)}
    exe = str(Path(sys.executable).with_name("wayport"))
    server = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        token = ""
        for line in server.stdout:
            found = re.search(r"wp-[A-Za-z0-9_-]{43}", line)
            if found:
                token = found.group(0)
                break
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        client = httpx.Client(base_url=base, timeout=60)
        client.post("/console/login", data={"api_key": token})
        first = client.get("/console/logs")
        cursor = re.search(r'cursor=([^"&]+)"', first.text)
        pages = {
            "logs, newest first": "/console/logs",
            "next page (cursor)": f"/console/logs?cursor={cursor.group(1) if cursor else ''}",
            "status 5xx": "/console/logs?status=5xx",
            "provider anthropic": "/console/logs?provider=anthropic",
            "metadata env=staging": "/console/logs?metadata=env%3Dstaging",
            "one trace": "/console/logs?trace_id=trace-12345",
            "cost over $0.019": "/console/logs?cost_min=0.019",
            "request detail": re.findall(r'href="(/console/logs/[0-9a-f-]{36})"', first.text)[0],
        }
        table = Table(
            "page", "rows shown", "median ms", "max ms", title=f"Console on {opts.rows:,} logs (SQLite)"
        )
        for name, path in pages.items():
            times = []
            for _ in range(opts.repeat):
                started = time.perf_counter()
                answer = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            shown = answer.text.count('<tr class="') if "/console/logs/" not in path else 1
            table.add_row(name, str(shown), f"{statistics.median(times):.0f}", f"{max(times):.0f}")
        console.print(table)
        console.print(f"settings: {Settings(data_dir=data_dir).database_path}")
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
