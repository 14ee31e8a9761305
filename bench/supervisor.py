"""Starts the benchmark's processes, each in its own process group, and stops them all.

Every child gets its own session (start_new_session), so a Ctrl-C in the terminal reaches only
run.py, which then stops each group by id: nothing is left behind and nothing else is touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

STOP_GRACE_S = 5.0


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """Prefix `taskset -c CPU` (taskset execs the command, so the pid stays the command's)."""
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A long-running child; its output goes to <log_dir>/<name>.log."""
        log = (self.log_dir / f"{name}.log").open("wb")
        with log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run(
        self,
        argv: Sequence[str],
        timeout: float,
        env: Mapping[str, str] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> tuple[int, str, str]:
        """Run a short-lived child to completion -> (exit code, stdout, stderr). On timeout the
        group is killed and TimeoutError raised. `on_tick` is called about twice a second."""
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    out, err = proc.communicate(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{argv[0]} did not finish in {timeout:.0f} s") from None
                    if on_tick is not None:
                        on_tick()
        finally:
            self.stop(proc)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the child's process group, SIGKILL it if still alive after a grace period."""
        if proc in self.procs:
            self.procs.remove(proc)
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and _group_alive(proc.pid):
            proc.poll()  # reap the leader so it does not linger as a zombie
            time.sleep(0.05)
        if _group_alive(proc.pid):
            _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE_S)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
