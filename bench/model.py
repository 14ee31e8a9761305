"""Result records shared by the benchmark's runner, drivers and report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from procinfo import ticks_to_ms

OTHER_LOAD_WARN = 0.1  # cores used by unrelated processes during a run before the report warns


@dataclass(frozen=True)
class LoadResult:
    """One load generator run. Latencies in ms; ttfb_* only for streams measured by loadgen.py."""

    tool: str
    requests: int  # completed responses, 2xx or not
    non2xx: int
    errors: int  # connect/read/write errors, timeouts, truncated streams
    seconds: float
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    ttfb_p50_ms: float | None = None
    ttfb_p90_ms: float | None = None
    ttfb_p99_ms: float | None = None

    @property
    def failed(self) -> int:
        return self.non2xx + self.errors


@dataclass
class ScenarioResult:
    """A measured run plus the CPU the gateway and the mock spent during it."""

    scenario: str  # "non-stream", "stream", "long run"
    path: str  # "direct" or the gateway's name
    load: LoadResult
    gateway_ticks: int | None  # None when the gateway is not on the request path
    mock_ticks: int
    window_s: float = 0.0  # wall time between the two CPU samples
    other_ticks: int = 0  # CPU used meanwhile by processes outside the benchmark
    warmup: LoadResult | None = None
    ttfb_probe: LoadResult | None = None  # separate streaming probe when wrk ran the load

    def all_loads(self) -> list[LoadResult]:
        """Every run of this scenario: failures in the warm-up or the probe count too."""
        return [r for r in (self.warmup, self.load, self.ttfb_probe) if r is not None]

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.all_loads())

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.all_loads())

    @property
    def non2xx(self) -> int:
        return sum(r.non2xx for r in self.all_loads())

    @property
    def gateway_cpu_ms_per_req(self) -> float | None:
        if self.gateway_ticks is None or not self.load.requests:
            return None
        return ticks_to_ms(self.gateway_ticks) / self.load.requests

    @property
    def gateway_core_share(self) -> float | None:
        """Gateway CPU time over the wall time of the same window: 1.0 = one core fully busy."""
        if self.gateway_ticks is None or not self.window_s:
            return None
        return ticks_to_ms(self.gateway_ticks) / 1000 / self.window_s

    @property
    def other_core_share(self) -> float | None:
        """CPU of unrelated processes during the run, in cores: above ~0.1 the figures are disturbed."""
        return ticks_to_ms(self.other_ticks) / 1000 / self.window_s if self.window_s else None

    @property
    def disturbed(self) -> bool:
        return (self.other_core_share or 0.0) > OTHER_LOAD_WARN

    @property
    def mock_cpu_ms_per_req(self) -> float | None:
        return ticks_to_ms(self.mock_ticks) / self.load.requests if self.load.requests else None

    @property
    def ttfb(self) -> LoadResult | None:
        """The run whose ttfb_* figures apply: the probe if there was one, else the load itself."""
        if self.ttfb_probe is not None:
            return self.ttfb_probe
        return self.load if self.load.ttfb_p50_ms is not None else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["gateway_cpu_ms_per_req"] = self.gateway_cpu_ms_per_req
        out["gateway_core_share"] = self.gateway_core_share
        out["mock_cpu_ms_per_req"] = self.mock_cpu_ms_per_req
        out["other_core_share"] = self.other_core_share
        out["failed"] = self.failed
        return out


@dataclass(frozen=True)
class MemorySample:
    label: str
    rss_kib: int
    hwm_kib: int
    processes: int


@dataclass
class BenchReport:
    config: dict[str, Any]
    scenarios: list[ScenarioResult] = field(default_factory=list)
    memory: list[MemorySample] = field(default_factory=list)
    long_run_rss_kib: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS) samples
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.scenarios)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "scenarios": [s.to_json() for s in self.scenarios],
            "memory": [asdict(m) for m in self.memory],
            "long_run_rss_kib": self.long_run_rss_kib,
            "notes": self.notes,
            "failed": self.failed,
        }
