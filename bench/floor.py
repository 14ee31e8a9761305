"""The floor under a Python gateway: time to first streamed byte through minimal relays, beside Wayport.

    .venv/bin/python bench/floor.py                  # about a minute
    .venv/bin/python bench/floor.py --duration 10

Starts bench/mock_upstream.py on CPU 0 and then, one at a time on CPU 1, each relay of
bench/floor_relays.py (tcp, aiohttp, http1) and `wayport serve --no-auth`; bench/loadgen.py
(CPU 0) streams chat completions through each at 1 and at 16 connections. The table shows the
first-byte p50 of each path and what it adds to going straight to the mock. See docs/bench.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from drivers import Load, PythonDriver
from run import GATEWAY_HEADERS, HOST, STREAM_BODY, free_port, wait_healthy
from supervisor import Supervisor, pinned

HERE = Path(__file__).resolve().parent
RELAYS = {
    "tcp": "byte-forwarding asyncio proxy (no HTTP)",
    "aiohttp": "uvicorn + aiohttp client relay",
    "http1": "uvicorn + wayport.gateway.http1 relay",
}


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (5)")
    args = parser.parse_args()
    pin = len(os.sched_getaffinity(0)) >= 2
    load_cpu, relay_cpu = (0, 1) if pin else (None, None)
    work = Path(tempfile.mkdtemp(prefix="wayport-floor-"))
    sup = Supervisor(work)
    driver = PythonDriver(sup, load_cpu)
    console = Console(width=130)
    try:
        mock_port = free_port()
        argv = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(mock_port)]
        mock = sup.start("mock", pinned(argv, load_cpu))
        wait_healthy(f"http://{HOST}:{mock_port}/health", mock, 15, work / "mock.log")
        paths = [("direct", "the mock itself", ()), *((relay, what, ()) for relay, what in RELAYS.items())]
        paths.append(("wayport", "wayport serve --no-auth (logging on)", GATEWAY_HEADERS))
        rows = []
        for name, what, headers in paths:
            proc, port = None, mock_port
            if name == "wayport":
                port = free_port()
                data = work / "data"
                data.mkdir()
                env = {**os.environ, "WAYPORT_BASE_URL_OPENAI": f"http://{HOST}:{mock_port}/v1",
                       "WAYPORT_DATA_DIR": str(data)}  # fmt: skip
                exe = Path(sys.executable).parent / "wayport"
                argv = [str(exe), "serve", "--no-auth", "--host", HOST, "--port", str(port), "--workers", "1"]
                proc = sup.start(name, pinned(argv, relay_cpu), env)
                wait_healthy(f"http://{HOST}:{port}/health", proc, 60, work / "wayport.log")
            elif name != "direct":
                port = free_port()
                argv = [sys.executable, str(HERE / "floor_relays.py"), name, "--port", str(port),
                        "--upstream", f"http://{HOST}:{mock_port}/v1"]  # fmt: skip
                proc = sup.start(name, pinned(argv, relay_cpu))
                wait_port(port)
            url = f"http://{HOST}:{port}/v1/chat/completions"
            figures = []
            for concurrency in (1, 16):
                load = Load(url, STREAM_BODY, headers, concurrency, 1.0, True)
                driver.run(load)  # warm-up
                result = driver.run(Load(url, STREAM_BODY, headers, concurrency, args.duration, True))
                if result.errors or result.non2xx:
                    raise SystemExit(
                        f"{name}: {result.errors} errors, {result.non2xx} non-2xx; logs in {work}"
                    )
                figures.append(result.ttfb_p50_ms or 0.0)
            console.print(f"  {name}: first byte p50 {figures[0]:.3f} ms at c=1, {figures[1]:.3f} ms at c=16")
            rows.append((name, what, figures))
            if proc is not None:
                sup.stop(proc)
    finally:
        sup.stop_all()
    direct = rows[0][2]
    table = Table(title="Time to first streamed byte (p50)")
    for column in ("path", "what", "c=1 ms", "c=1 vs direct", "c=16 ms", "c=16 vs direct"):
        table.add_column(column)
    for name, what, (one, sixteen) in rows:
        extra = ("–", "–") if name == "direct" else (f"+{one - direct[0]:.2f}", f"+{sixteen - direct[1]:.2f}")
        table.add_row(name, what, f"{one:.3f}", extra[0], f"{sixteen:.3f}", extra[1])
    console.print(table)
    where = "mock + load generator on CPU 0, relay on CPU 1" if pin else "none (fewer than 2 CPUs)"
    console.print(f"pinning: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
