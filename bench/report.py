"""Tables of a benchmark run, rendered with rich and as plain markdown (for pasting into notes).
Both renderings come from the same rows so they can never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from model import BenchReport, ScenarioResult

DASH = "–"


@dataclass(frozen=True)
class Grid:
    title: str
    headers: list[str]
    rows: list[list[str]]


def fmt_ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def fmt_delta(value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return DASH
    return f"{value - base:+.2f}"


def fmt_cpu(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def fmt_share(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.0f} %"


def fmt_mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def throughput_grid(report: BenchReport) -> Grid:
    headers = ["scenario", "path", "requests", "req/s", "p50 ms", "p99 ms", "gw CPU ms/req",
               "gw CPU % of core", "mock CPU ms/req", "failed"]  # fmt: skip
    rows = [
        [
            s.scenario,
            s.path,
            f"{s.load.requests:,}",
            f"{s.load.rps:,.0f}",
            fmt_ms(s.load.p50_ms),
            fmt_ms(s.load.p99_ms),
            fmt_cpu(s.gateway_cpu_ms_per_req),
            fmt_share(s.gateway_core_share),
            fmt_cpu(s.mock_cpu_ms_per_req),
            str(s.failed),
        ]
        for s in report.scenarios
    ]
    conc = report.config["concurrency"]
    return Grid(f"Throughput and latency, {conc} concurrent connections", headers, rows)


def ttfb_grid(report: BenchReport) -> Grid | None:
    streams = [s for s in report.scenarios if s.ttfb is not None]
    if not streams:
        return None
    direct = next((s.ttfb for s in streams if s.path == "direct"), None)
    rows: list[list[str]] = []
    for s in streams:
        t = s.ttfb
        assert t is not None
        base_p50 = direct.ttfb_p50_ms if direct else None
        base_p99 = direct.ttfb_p99_ms if direct else None
        if s.path == "direct":
            base_p50 = base_p99 = None  # no delta against itself
        rows.append([s.path, fmt_ms(t.ttfb_p50_ms), fmt_ms(t.ttfb_p99_ms),
                     fmt_delta(t.ttfb_p50_ms, base_p50), fmt_delta(t.ttfb_p99_ms, base_p99)])  # fmt: skip
    headers = ["path", "first byte p50 ms", "first byte p99 ms", "p50 vs direct ms", "p99 vs direct ms"]
    return Grid("Time to first streamed byte", headers, rows)


def memory_grid(report: BenchReport) -> Grid | None:
    if not report.memory:
        return None
    rows = [[m.label, fmt_mib(m.rss_kib), fmt_mib(m.hwm_kib), str(m.processes)] for m in report.memory]
    samples = [rss for _, rss in report.long_run_rss_kib]
    if samples:  # RSS polled every 0.5 s during the long run; flat memory keeps the three close
        label = f"during the long run ({len(samples)} samples: first / min / max)"
        spread = f"{fmt_mib(samples[0])} / {fmt_mib(min(samples))} / {fmt_mib(max(samples))}"
        rows.insert(-1, [label, spread, DASH, DASH])
    return Grid("Gateway memory", ["when", "RSS MiB", "peak RSS MiB", "processes"], rows)


def grids(report: BenchReport) -> list[Grid]:
    found = [throughput_grid(report), ttfb_grid(report), memory_grid(report)]
    return [g for g in found if g is not None]


def to_rich(grid: Grid) -> Table:
    table = Table(title=grid.title, box=box.SIMPLE_HEAVY, title_justify="left")
    for i, header in enumerate(grid.headers):
        table.add_column(header, justify="left" if _is_text(grid, i) else "right")  # figures right
    for row in grid.rows:
        table.add_row(*row)
    return table


def _is_text(grid: Grid, col: int) -> bool:
    cells = [row[col].replace(",", "").replace(".", "").replace(" %", "").lstrip("+-") for row in grid.rows]
    return any(cell != DASH and not cell.isdigit() for cell in cells)


def to_markdown(grid: Grid) -> str:
    lines = [f"**{grid.title}**", "", "| " + " | ".join(grid.headers) + " |"]
    lines.append("|" + "|".join("---" for _ in grid.headers) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in grid.rows]
    return "\n".join(lines)


def summary_lines(report: BenchReport) -> list[str]:
    c = report.config
    lines = [
        f"load generator: {c['loadgen']}; {c['concurrency']} connections; {c['duration']} s per run "
        f"after {c['warmup']} s warm-up; streams: {c['stream_events']} events {c['gap_ms']} ms apart",
        f"pinning: {c['pinning']}",
        f"gateway: {c['gateway_cmd']}",
    ]
    lines += report.notes
    return lines


def print_report(report: BenchReport, console: Console) -> None:
    console.print()
    for grid in grids(report):
        console.print(to_rich(grid))
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False)
    console.print()
    console.print("Markdown:", style="bold")
    markdown = "\n\n".join(to_markdown(g) for g in grids(report))
    notes = "\n".join(f"- {line}" for line in summary_lines(report))
    console.print(markdown + "\n\n" + notes, markup=False, highlight=False, soft_wrap=True)


def progress_line(index: int, total: int, s: ScenarioResult) -> str:
    cpu = s.gateway_cpu_ms_per_req
    parts = [
        f"[{index}/{total}] {s.scenario:<10} {s.path:<8}",
        f"{s.load.rps:>9,.0f} req/s",
        f"p50 {fmt_ms(s.load.p50_ms):>7} ms",
        f"p99 {fmt_ms(s.load.p99_ms):>7} ms",
    ]
    if cpu is not None:
        parts.append(f"gateway {cpu:.3f} CPU-ms/req")
    if s.ttfb is not None:
        parts.append(f"first byte p50 {fmt_ms(s.ttfb.ttfb_p50_ms)} ms")
    parts.append(f"failed {s.failed}")
    if s.disturbed:
        parts.append(
            f"(busy machine: other processes used {(s.other_core_share or 0) * 100:.0f} % of a core)"
        )
    return "  ".join(parts)
