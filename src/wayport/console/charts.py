"""Charts for the console as inline SVG, drawn on the server: no script, no library, no CDN.

A chart is a series of (label, value) points drawn as bars, with the axis maximum, a title and a
text table fallback for screen readers (``<title>`` and ``<desc>`` plus an ARIA label).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 640
HEIGHT = 160
PAD_LEFT = 70
PAD_BOTTOM = 22


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    value: float


def bar_chart(title: str, points: Sequence[Point], unit: str = "") -> str:
    """An SVG bar chart of ``points`` (one bar each), scaled to the largest value."""
    top = max((p.value for p in points), default=0.0) or 1.0
    inner_w = WIDTH - PAD_LEFT - 8
    inner_h = HEIGHT - PAD_BOTTOM - 8
    step = inner_w / max(len(points), 1)
    bar = max(step * 0.7, 1.0)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(describe(points, unit))}</desc>",
        f'<line x1="{PAD_LEFT}" y1="8" x2="{PAD_LEFT}" y2="{8 + inner_h}" class="axis"/>',
        f'<line x1="{PAD_LEFT}" y1="{8 + inner_h}" x2="{WIDTH - 8}" y2="{8 + inner_h}" class="axis"/>',
        f'<text x="{PAD_LEFT - 6}" y="14" class="tick" text-anchor="end">{escape(_short(top))}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{8 + inner_h}" class="tick" text-anchor="end">0</text>',
    ]
    for index, point in enumerate(points):
        h = inner_h * (point.value / top) if point.value > 0 else 0.0
        x = PAD_LEFT + index * step + (step - bar) / 2
        y = 8 + inner_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" class="bar">'
            f"<title>{escape(point.label)}: {escape(_short(point.value))}{escape(unit)}</title></rect>"
        )
    if points:
        for index in (0, len(points) - 1):
            x = PAD_LEFT + index * step + step / 2
            anchor = "start" if index == 0 else "end"
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 6}" class="tick" text-anchor="{anchor}">'
                f"{escape(points[index].label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def describe(points: Sequence[Point], unit: str = "") -> str:
    """The chart as a sentence, for screen readers."""
    if not points:
        return "No data in this range."
    peak = max(points, key=lambda p: p.value)
    total = sum(p.value for p in points)
    return (
        f"{len(points)} buckets from {points[0].label} to {points[-1].label}; total {_short(total)}{unit}, "
        f"highest {_short(peak.value)}{unit} at {peak.label}."
    )


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}k"
    if value == int(value):
        return str(int(value))
    if value < 0.01:
        return f"{value:.6f}".rstrip("0")
    return f"{value:.4g}"
