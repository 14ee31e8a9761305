"""One ``/metrics`` for all the workers of ``wayport serve --workers N``.

The workers share one listening socket, so a scrape reaches whichever worker accepts it. Each
worker writes its exposition text to ``<directory>/<pid>.prom`` about once a second when something
changed, and answers a scrape with its own live metrics summed with the other workers' last
texts: counters and histograms add up, and so do the log writer's gauges (each worker has its
own writer). A worker that exits leaves its file, so totals never go back while the server runs;
``wayport serve`` gives each run a fresh directory. Nothing here runs on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["MetricsShare", "fresh_run_directory", "merge"]

log = logging.getLogger("wayport")

WORKERS_METRIC = "wayport_workers_reporting"


class MetricsShare:
    """``render`` gives this worker's text; ``changed`` says cheaply whether it may differ from
    the last one written (both from the worker's ``Metrics``)."""

    def __init__(
        self,
        directory: Path,
        render: Callable[[], bytes],
        changed: Callable[[], Hashable],
        interval_s: float = 1.0,
        worker: str | None = None,
    ) -> None:
        self._directory = directory
        self._render = render
        self._changed = changed
        self._interval_s = interval_s
        self._own = directory / f"{worker or os.getpid()}.prom"
        self._written: Hashable = None
        self._failing = False  # warned already

    async def run(self) -> None:
        """Write this worker's text whenever it changed, until cancelled (then once more)."""
        try:
            while True:
                self.write()
                await asyncio.sleep(self._interval_s)
        finally:
            self.write()

    def write(self) -> None:
        state = self._changed()
        if state == self._written:
            return
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            temporary = self._own.with_suffix(".tmp")
            temporary.write_bytes(self._render())
            os.replace(temporary, self._own)
            self._written = state
        except OSError as exc:  # a full disk must not stop the worker; the scrape shows less
            if not self._failing:
                log.warning("could not share this worker's metrics in %s: %s", self._directory, exc)
            self._failing = True
        else:
            self._failing = False

    def scrape(self, own: bytes) -> bytes:
        """``own`` (this worker's live text) summed with the other workers' last texts."""
        texts = [own.decode()]
        with contextlib.suppress(FileNotFoundError):
            for path in sorted(self._directory.glob("*.prom")):
                if path != self._own:
                    with contextlib.suppress(FileNotFoundError):
                        texts.append(path.read_text())
        return merge(texts)


def merge(texts: Iterable[str]) -> bytes:
    """Exposition texts summed sample by sample (``_created`` samples keep the earliest), with
    ``wayport_workers_reporting``, the number of texts merged."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    count = 0
    for text in texts:
        count += 1
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                values[family.name] = {}
            sums = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in sums:
                    sums[key] = sample.value
                elif sample.name.endswith("_created"):
                    sums[key] = min(sums[key], sample.value)
                else:
                    sums[key] += sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    reporting = Metric(WORKERS_METRIC, "Worker processes whose metrics this scrape sums", "gauge")
    reporting.add_sample(WORKERS_METRIC, {}, count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([*families.values(), reporting]))
    return generate_latest(registry)


def fresh_run_directory(root: Path, pid: int) -> Path:
    """``root/<pid>``, emptied, after removing the directories of runs whose process is gone."""
    if root.is_dir():
        for entry in root.iterdir():
            if entry.is_dir() and (
                not entry.name.isdigit() or not _alive(int(entry.name)) or entry.name == str(pid)
            ):
                shutil.rmtree(entry, ignore_errors=True)
    directory = root / str(pid)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
