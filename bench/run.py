"""Wayport benchmark: the gateway's cost per request against a near-free mock upstream.

    .venv/bin/python bench/run.py                    # what `make bench` runs (about a minute)
    .venv/bin/python bench/run.py --requests 100000  # plus a long run to see that memory stays flat

Starts bench/mock_upstream.py (pinned to the first CPU, with the load generator) and Wayport
(`wayport serve --workers 1`, pinned to the second CPU, upstream = the mock), then measures
non-streaming and streaming (20 SSE events) chat completions sent directly to the mock and sent
through Wayport: req/s, p50/p99 latency, gateway CPU-ms per request (utime+stime of the gateway's
process tree over the run / requests), time to first streamed byte, and the gateway's RSS.
See docs/bench.md. Exit status 1 if any request failed or got a non-2xx answer.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

import mock_upstream
import procinfo
from drivers import Driver, DriverError, Load, PythonDriver, choose_driver
from model import BenchReport, LoadResult, MemorySample, ScenarioResult
from report import print_report, progress_line
from supervisor import Supervisor, pinned

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
BODY = '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
STREAM_BODY = BODY[:-1] + ',"stream":true}'
JSON_HEADER = "Content-Type: application/json"
AUTH_HEADER = "Authorization: Bearer sk-bench"
GATEWAY_HEADERS = ("x-portkey-provider: openai", AUTH_HEADER, JSON_HEADER)
DIRECT_HEADERS = (AUTH_HEADER, JSON_HEADER)
STREAM_EVENTS = 20
T = TypeVar("T")


class BenchError(RuntimeError):
    """A setup problem that makes the measurement meaningless (not a failed request)."""


@dataclass(frozen=True)
class Target:
    path: str  # label in the tables: "direct" or the gateway's name
    url: str
    headers: tuple[str, ...]
    via_gateway: bool


@dataclass(frozen=True)
class Snapshot:
    """CPU ticks so far (gateway tree, mock tree, everything else on the machine) at monotonic time `at`."""

    at: float
    gateway: int
    mock: int
    other: int


@dataclass(frozen=True)
class Pinning:
    load_cpu: int | None  # mock and load generator
    gateway_cpu: int | None

    def describe(self) -> str:
        if self.load_cpu is None:
            return "none (taskset missing, fewer than 2 CPUs, or --no-pin)"
        return f"mock + load generator on CPU {self.load_cpu}, gateway on CPU {self.gateway_cpu}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each run (2)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent connections (16)")
    p.add_argument("--requests", type=int, help="add a long non-streaming run of N requests through Wayport")
    p.add_argument("--long-timeout", type=float, default=900.0, help="time cap of the long run (900 s)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write raw results to OUT")
    p.add_argument("--gateway-cmd", help="command starting the gateway; {port} and {mock_url} are filled in")
    p.add_argument("--gateway-name", default="wayport", help="label of the gateway path in the tables")
    p.add_argument("--skip-gateway", action="store_true", help="measure the direct path only")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="auto: wrk if installed, else bench/loadgen.py")  # fmt: skip
    p.add_argument("--gap-ms", type=float, default=5.0, help="mock's gap between SSE events (5)")
    p.add_argument("--ttfb-duration", type=float, default=5.0,
                   help="with wrk: seconds of the separate first-byte probe per stream run (5)")  # fmt: skip
    p.add_argument("--startup-timeout", type=float, default=60.0, help="wait for GET /health (60 s)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data dir) after success")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.concurrency < 1 or (args.requests is not None and args.requests < 1):
        p.error("--duration, --concurrency and --requests must be positive")
    return args


# ---------------------------------------------------------------- small helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def choose_pinning(disabled: bool) -> Pinning:
    if disabled or shutil.which("taskset") is None:
        return Pinning(None, None)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Pinning(None, None)
    return Pinning(cpus[0], cpus[1])


def http_request(url: str, method: str, headers: tuple[str, ...] = (), body: str | None = None,
                 timeout: float = 30.0) -> tuple[int, str, bytes]:  # fmt: skip
    """-> (status, content-type, body); loopback only."""
    parts = urlsplit(url)
    if parts.hostname != HOST:
        raise BenchError(f"refusing to send traffic to {url}: only {HOST} is allowed")
    conn = http.client.HTTPConnection(HOST, parts.port or 80, timeout=timeout)
    try:
        hdrs = dict(h.split(":", 1) for h in headers)
        conn.request(method, parts.path, body=body, headers={k.strip(): v.strip() for k, v in hdrs.items()})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read()
    finally:
        conn.close()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> float:
    """Poll GET url until 200 -> seconds waited. Fails fast if the process exits."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise BenchError(f"{log.stem} exited with code {proc.returncode}; log {log}:\n{log_tail(log)}")
        try:
            status, _, body = http_request(url, "GET", timeout=2)
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise BenchError(f"{url} not healthy after {timeout:.0f} s (last: {last}); log {log}:\n{log_tail(log)}")


# ---------------------------------------------------------------- answer checks
def completion_problems(status: int, ctype: str, body: bytes) -> list[str]:
    if status != 200:
        return [f"HTTP {status}: {body[:300]!r}"]
    problems = [] if "application/json" in ctype else [f"content-type {ctype!r}"]
    try:
        obj = json.loads(body)
    except ValueError:
        return [*problems, f"body is not JSON: {body[:300]!r}"]
    if not isinstance(obj, dict) or obj.get("object") != "chat.completion":
        return [*problems, f"not a chat.completion: {body[:300]!r}"]
    content = (obj.get("choices") or [{}])[0].get("message", {}).get("content")
    if content != mock_upstream.REPLY:
        problems.append(f"content differs from the mock's: {content!r}")
    if (obj.get("usage") or {}).get("total_tokens") != 40:
        problems.append(f"usage differs from the mock's: {obj.get('usage')!r}")
    return problems


def stream_problems(status: int, ctype: str, body: bytes) -> list[str]:
    if status != 200:
        return [f"HTTP {status}: {body[:300]!r}"]
    problems = [] if "text/event-stream" in ctype else [f"content-type {ctype!r}"]
    events = [ln[5:].strip() for ln in body.decode(errors="replace").splitlines() if ln.startswith("data:")]
    if not events or events[-1] != "[DONE]":
        return [*problems, f"stream does not end with data: [DONE]: {body[-300:]!r}"]
    chunks = [json.loads(e) for e in events[:-1]]
    if len(chunks) != STREAM_EVENTS:
        problems.append(f"{len(chunks)} chunk events instead of {STREAM_EVENTS}")
    text = "".join((c.get("choices") or [{}])[0].get("delta", {}).get("content") or "" for c in chunks)
    if text != "".join(mock_upstream.STREAM_TOKENS):
        problems.append(f"streamed content differs from the mock's: {text!r}")
    return problems


def check_answers(target: Target) -> None:
    """One plain and one streamed request, compared with what the mock sends: a gateway that
    answers quickly but wrongly must not produce a benchmark figure."""
    plain = completion_problems(*http_request(target.url, "POST", target.headers, BODY))
    streamed = stream_problems(*http_request(target.url, "POST", target.headers, STREAM_BODY))
    problems = [f"non-stream: {p}" for p in plain] + [f"stream: {p}" for p in streamed]
    if problems:
        raise BenchError(f"{target.path} answers are wrong:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- the benchmark
class Bench:
    def __init__(self, opts: argparse.Namespace, console: Console, sup: Supervisor, work: Path) -> None:
        self.opts = opts
        self.console = console
        self.sup = sup
        self.work = work
        self.pin = choose_pinning(opts.no_pin)
        self.driver: Driver = choose_driver(opts.loadgen, sup, self.pin.load_cpu)
        self.python = (
            self.driver if isinstance(self.driver, PythonDriver) else PythonDriver(sup, self.pin.load_cpu)
        )
        self.mock: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.gateway_argv: list[str] = []
        self.report = BenchReport(config={})

    # -- processes
    def start_mock(self) -> Target:
        port = free_port()
        argv = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(port)]
        self.mock = self.sup.start(
            "mock", pinned(argv + ["--gap-ms", str(self.opts.gap_ms)], self.pin.load_cpu)
        )
        wait_healthy(f"http://{HOST}:{port}/health", self.mock, 15, self.work / "mock.log")
        return Target("direct", f"http://{HOST}:{port}/v1/chat/completions", DIRECT_HEADERS, False)

    def gateway_command(self, port: int, mock_base: str) -> list[str]:
        if self.opts.gateway_cmd:
            cmd = self.opts.gateway_cmd.replace("{port}", str(port)).replace("{mock_url}", mock_base)
            return shlex.split(cmd)
        exe = Path(sys.executable).parent / "wayport"
        if not exe.exists():
            exe = ROOT / ".venv" / "bin" / "wayport"
        if not exe.exists():
            raise BenchError("no wayport executable next to this Python nor in .venv/bin; install the "
                             "project, or use --gateway-cmd / --skip-gateway")  # fmt: skip
        return [str(exe), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]

    def start_gateway(self, direct: Target) -> Target:
        port = free_port()
        mock_base = direct.url.removesuffix("/chat/completions")
        self.gateway_argv = self.gateway_command(port, mock_base)
        data_dir = self.work / "data"
        data_dir.mkdir()
        env = {**os.environ, "WAYPORT_BASE_URL_OPENAI": mock_base, "WAYPORT_DATA_DIR": str(data_dir),
               "PORT": str(port)}  # fmt: skip
        self.gateway = self.sup.start("gateway", pinned(self.gateway_argv, self.pin.gateway_cpu), env)
        waited = wait_healthy(
            f"http://{HOST}:{port}/health", self.gateway, self.opts.startup_timeout, self.work / "gateway.log"
        )
        self.report.notes.append(f"gateway answered GET /health {waited:.1f} s after start")
        url = f"http://{HOST}:{port}/v1/chat/completions"
        headers = GATEWAY_HEADERS
        if not self.opts.gateway_cmd:
            # auth is on: requests carry the owner key that the first start printed
            found = re.search(r"wp-[A-Za-z0-9_-]{43}", (self.work / "gateway.log").read_text())
            if found is None:
                raise BenchError("the gateway printed no API key at its first start; see gateway.log")
            headers = (*GATEWAY_HEADERS, f"x-portkey-api-key: {found.group(0)}")
        return Target(self.opts.gateway_name, url, headers, True)

    # -- measurements
    def gateway_ticks(self) -> int:
        assert self.gateway is not None
        return procinfo.cpu_ticks(self.gateway.pid)

    def sample_memory(self, label: str) -> None:
        if self.gateway is None:
            return
        mem = procinfo.memory(self.gateway.pid)
        self.report.memory.append(MemorySample(label, mem.rss_kib, mem.hwm_kib, mem.processes))

    def load(self, target: Target, stream: bool, duration: float, requests: int | None = None) -> Load:
        return Load(
            url=target.url,
            body=STREAM_BODY if stream else BODY,
            headers=target.headers,
            concurrency=self.opts.concurrency,
            duration=duration,
            stream=stream,
            requests=requests,
        )

    def snapshot(self) -> Snapshot:
        assert self.mock is not None
        gateway = self.gateway_ticks() if self.gateway is not None else 0
        mock = procinfo.cpu_ticks(self.mock.pid)
        other = procinfo.machine_busy_ticks() - procinfo.own_ticks() - gateway - mock
        return Snapshot(time.monotonic(), gateway, mock, other)

    def measure(self, scenario: str, target: Target, stream: bool) -> ScenarioResult:
        warmup = None
        if self.opts.warmup > 0:
            warmup = self.driver.run(self.load(target, stream, self.opts.warmup))
        before = self.snapshot()
        result = self.driver.run(self.load(target, stream, self.opts.duration))
        after = self.snapshot()
        probe = None
        if stream and not self.driver.measures_ttfb:
            probe = self.python.run(self.load(target, stream, self.opts.ttfb_duration))
        return self.scenario_result(scenario, target, result, before, after, warmup, probe)

    def scenario_result(
        self,
        scenario: str,
        target: Target,
        result: LoadResult,
        before: Snapshot,
        after: Snapshot,
        warmup: LoadResult | None = None,
        probe: LoadResult | None = None,
    ) -> ScenarioResult:
        res = ScenarioResult(
            scenario=scenario,
            path=target.path,
            load=result,
            gateway_ticks=after.gateway - before.gateway if target.via_gateway else None,
            mock_ticks=after.mock - before.mock,
            window_s=after.at - before.at,
            other_ticks=max(0, after.other - before.other),
            warmup=warmup,
            ttfb_probe=probe,
        )
        if res.disturbed:
            self.report.notes.append(
                f"WARNING: other processes used {(res.other_core_share or 0) * 100:.0f} % of a core during "
                f"{scenario} {target.path}; its figures are disturbed (CPU-ms/req least)"
            )
        return res

    def long_run(self, target: Target, requests: int) -> ScenarioResult:
        """N requests through the gateway with the Python driver (wrk cannot stop after N),
        sampling the gateway's RSS every half second."""
        assert self.mock is not None and self.gateway is not None
        gateway_pid = self.gateway.pid
        started = time.monotonic()

        def sample() -> None:
            rss = procinfo.memory(gateway_pid).rss_kib
            self.report.long_run_rss_kib.append((round(time.monotonic() - started, 1), rss))

        before = self.snapshot()
        result = self.python.run(self.load(target, False, self.opts.long_timeout, requests), on_tick=sample)
        after = self.snapshot()
        if result.requests < requests:
            self.report.notes.append(f"long run stopped by --long-timeout after {result.requests} requests")
        return self.scenario_result(f"long run {requests:,}", target, result, before, after)

    def run_step(self, label: str, seconds: float | None, step: Callable[[], T]) -> T:
        """Run one step with a spinner (shown on terminals only)."""
        eta = f" (about {seconds:.0f} s)" if seconds else ""
        with self.console.status(f"{label}{eta}"):
            return step()

    def plan(self, direct: Target, gateway: Target | None) -> list[tuple[str, Target, bool]]:
        targets = [direct] if gateway is None else [direct, gateway]
        return [
            (name, t, stream) for name, stream in (("non-stream", False), ("stream", True)) for t in targets
        ]

    def run(self) -> int:
        self.report.config = self.config()
        self.console.print(
            f"load generator: {self.driver.name}; pinning: {self.pin.describe()}",
            soft_wrap=True,
            highlight=False,
        )
        direct = self.start_mock()
        check_answers(direct)
        gateway = None
        if not self.opts.skip_gateway:
            gateway = self.start_gateway(direct)
            self.sample_memory("after start")
            check_answers(gateway)
            self.report.config["gateway_cmd"] = shlex.join(self.gateway_argv)
        steps = self.plan(direct, gateway)
        total = len(steps) + (1 if self.opts.requests and gateway else 0)
        per_step = self.opts.warmup + self.opts.duration
        for i, (scenario, target, stream) in enumerate(steps, 1):
            step = functools.partial(self.measure, scenario, target, stream)
            res = self.run_step(f"{scenario} {target.path}", per_step, step)
            self.report.scenarios.append(res)
            self.console.print(progress_line(i, total, res), markup=False, highlight=False, soft_wrap=True)
        self.sample_memory("after the runs")
        if self.opts.requests and gateway is not None:
            step_long = functools.partial(self.long_run, gateway, self.opts.requests)
            res = self.run_step(f"long run, {self.opts.requests:,} requests", None, step_long)
            self.report.scenarios.append(res)
            self.console.print(
                progress_line(total, total, res), markup=False, highlight=False, soft_wrap=True
            )
            self.sample_memory(f"after {self.opts.requests:,} more requests")
        return self.finish()

    def config(self) -> dict[str, Any]:
        return {
            "loadgen": self.driver.name,
            "concurrency": self.opts.concurrency,
            "duration": self.opts.duration,
            "warmup": self.opts.warmup,
            "stream_events": STREAM_EVENTS,
            "gap_ms": self.opts.gap_ms,
            "pinning": self.pin.describe(),
            "gateway_cmd": "skipped (--skip-gateway)" if self.opts.skip_gateway else "",
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "clk_tck": procinfo.CLK_TCK,
        }

    def finish(self) -> int:
        print_report(self.report, self.console)
        if self.opts.json:
            self.opts.json.write_text(json.dumps(self.report.to_json(), indent=2) + "\n")
            self.console.print(f"raw results written to {self.opts.json}")
        failed = self.report.failed
        if failed:
            errors = sum(s.errors for s in self.report.scenarios)
            non2xx = sum(s.non2xx for s in self.report.scenarios)
            self.console.print(
                f"[bold red]FAILED:[/] {failed} requests failed ({errors} errors, {non2xx} non-2xx)"
            )
            return 1
        return 0


# ---------------------------------------------------------------- entry point
def make_console() -> Console:
    """Rich assumes 80 columns when stdout is not a terminal, which squashes the tables in logs."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=160)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM/SIGHUP clean up like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    console = make_console()
    # also SIGINT: a background job inherits it as ignored, and `kill -INT` should still clean up
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="wayport-bench-"))
    sup = Supervisor(work)
    code = 2
    try:
        code = Bench(opts, console, sup, work).run()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        code = 130
    except (BenchError, DriverError, TimeoutError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    finally:
        # a second Ctrl-C must not cut the cleanup short and leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sup.stop_all()
        if code == 0 and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"logs and data dir kept in {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
