"""Load generator drivers: wrk when installed, else bench/loadgen.py. Both run as pinned
child processes so that run.py itself never competes with the process being measured."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from model import LoadResult
from supervisor import Supervisor, pinned

HERE = Path(__file__).resolve().parent
SLACK_S = 30.0  # beyond a run's own length before its process is killed as hung


@dataclass(frozen=True)
class Load:
    """What to send: `duration` seconds and/or `requests` requests, whichever ends first."""

    url: str
    body: str
    headers: tuple[str, ...]
    concurrency: int
    duration: float
    stream: bool
    requests: int | None = None


class Driver(Protocol):
    name: str
    measures_ttfb: bool
    counts_requests: bool

    def run(self, load: Load, on_tick: Callable[[], None] | None = None) -> LoadResult: ...


class DriverError(RuntimeError):
    pass


class PythonDriver:
    """bench/loadgen.py: asyncio raw-protocol client; measures time to first byte of streams."""

    measures_ttfb = True
    counts_requests = True

    def __init__(self, sup: Supervisor, cpu: int | None) -> None:
        self.sup = sup
        self.cpu = cpu
        self.name = "python (bench/loadgen.py, asyncio + uvloop)"

    def run(self, load: Load, on_tick: Callable[[], None] | None = None) -> LoadResult:
        argv = [sys.executable, str(HERE / "loadgen.py"), "--url", load.url, "--body", load.body]
        argv += ["--concurrency", str(load.concurrency), "--duration", str(load.duration)]
        if load.requests is not None:
            argv += ["--requests", str(load.requests)]
        if load.stream:
            argv.append("--stream")
        for header in load.headers:
            argv += ["--header", header]
        code, out, err = self.sup.run(pinned(argv, self.cpu), load.duration + SLACK_S, on_tick=on_tick)
        if code != 0:
            raise DriverError(f"loadgen.py exited with {code}: {err.strip()[-2000:]}")
        return _python_result(json.loads(out.strip().splitlines()[-1]))


def _python_result(raw: dict[str, Any]) -> LoadResult:
    return LoadResult(
        tool="python",
        requests=raw["requests"],
        non2xx=raw["non2xx"],
        errors=raw["errors"],
        seconds=raw["seconds"],
        rps=raw["rps"],
        p50_ms=raw["p50_ms"],
        p90_ms=raw["p90_ms"],
        p99_ms=raw["p99_ms"],
        max_ms=raw["max_ms"],
        ttfb_p50_ms=raw.get("ttfb_p50_ms"),
        ttfb_p90_ms=raw.get("ttfb_p90_ms"),
        ttfb_p99_ms=raw.get("ttfb_p99_ms"),
    )


class WrkDriver:
    """wrk -t1 with bench/wrk_post.lua. wrk cannot stop after N requests, nor see the first byte
    of a response, so run.py uses the Python driver for those two measurements."""

    measures_ttfb = False
    counts_requests = False

    def __init__(self, sup: Supervisor, cpu: int | None, wrk: str) -> None:
        self.sup = sup
        self.cpu = cpu
        self.wrk = wrk
        self.name = wrk_version(wrk)

    def run(self, load: Load, on_tick: Callable[[], None] | None = None) -> LoadResult:
        seconds = max(1, math.ceil(load.duration))  # wrk takes whole seconds only
        argv = [self.wrk, "-t1", f"-c{load.concurrency}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
        for header in load.headers:
            argv += ["-H", header]
        argv += ["-s", str(HERE / "wrk_post.lua"), load.url]
        env = {**os.environ, "WAYPORT_BENCH_BODY": load.body}
        code, out, err = self.sup.run(pinned(argv, self.cpu), seconds + SLACK_S, env=env, on_tick=on_tick)
        if code != 0 or "WAYPORT_WRK " not in out:
            raise DriverError(f"wrk exited with {code}: {(err or out).strip()[-2000:]}")
        return _wrk_result(out)


def _wrk_result(out: str) -> LoadResult:
    line = next(ln for ln in out.splitlines() if ln.startswith("WAYPORT_WRK "))
    raw = json.loads(line.removeprefix("WAYPORT_WRK "))
    non2xx = 0
    for ln in out.splitlines():
        if "Non-2xx or 3xx responses:" in ln:
            non2xx = int(ln.split(":")[1])
    seconds = raw["duration_us"] / 1e6
    return LoadResult(
        tool="wrk",
        requests=raw["requests"],
        non2xx=non2xx,
        # status errors (>= 400) are already in non2xx
        errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        seconds=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    words = (proc.stdout or proc.stderr).split()
    return f"wrk {words[1]}" if len(words) > 1 and words[0] == "wrk" else "wrk"


def choose_driver(choice: str, sup: Supervisor, cpu: int | None) -> Driver:
    wrk = shutil.which("wrk")
    if choice == "wrk" and wrk is None:
        raise DriverError("--loadgen wrk, but wrk is not on PATH")
    if choice != "python" and wrk is not None:
        return WrkDriver(sup, cpu, wrk)
    return PythonDriver(sup, cpu)
