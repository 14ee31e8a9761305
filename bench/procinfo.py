"""CPU time and memory of a process tree, read from /proc (Linux only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("latin-1")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """`root` and all its live descendants (found through each process's parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] = ppid
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_ticks(root: int) -> int:
    """utime+stime of the tree, plus cutime+cstime so that workers that exited and were reaped
    during a run still count."""
    total = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            total += sum(int(v) for v in fields[11:15])  # stat fields 14-17
    return total


def ticks_to_ms(ticks: int) -> float:
    return ticks * 1000.0 / CLK_TCK


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    hwm_kib: int  # peak RSS (VmHWM)
    processes: int


def _status_kib(pid: int, keys: tuple[str, ...]) -> dict[str, int] | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    found = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in keys:
            found[key] = int(value.split()[0])
    return found


def memory(root: int) -> Memory:
    rss = hwm = count = 0
    for pid in tree_pids(root):
        values = _status_kib(pid, ("VmRSS", "VmHWM"))
        if values is None:
            continue
        rss += values.get("VmRSS", 0)
        hwm += values.get("VmHWM", 0)
        count += 1
    return Memory(rss, hwm, count)


def machine_busy_ticks() -> int:
    """Busy time of all CPUs: user, nice, system, irq, softirq (guest time is inside user; idle,
    iowait and steal are not busy). irq/softirq are in because tick-based accounting charges a
    softirq tick to the interrupted task's stime as well, and the processes are counted that way."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return user + nice + system + irq + softirq


def own_ticks() -> int:
    """This process plus its waited-for children (the load generator runs)."""
    t = os.times()
    return round((t.user + t.system + t.children_user + t.children_system) * CLK_TCK)
