"""The charts of an evaluation run as SVG geometry: nDCG@10 per mode (bars), recall@k (a line per mode over a log k
axis) and latency against quality (a point per setting, joined per mode and knob).

Pure functions of a stored run's summary; templates/evaluation.html draws what they return with SVG presentation
attributes and classes (the console's CSP allows no inline style, and matplotlib would take most of a second to
import per request). Coordinates are in the SVG's user units (its viewBox), rounded to 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT = 640, 320
LEFT, TOP, BOTTOM = 56, 16, 44  # margins: tick labels and the y title left, the x title below
RIGHT = 16
LEGEND = 170  # room on the right for the legend of a chart with several series
RECALL_TICKS = (1, 2, 5, 10, 20, 50, 100)
LABEL_CHAR, LABEL_HEIGHT = 6.0, 12  # a point label's size (10 px type): wide enough an estimate to keep them apart
Scale = Callable[[float], float]


@dataclass(frozen=True)
class Box:
    """The plot area, in user units."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Tick:
    """A tick along an axis: its place (x for the x axis, y for the y axis) and its label."""

    at: float
    label: str


@dataclass(frozen=True)
class Bar:
    """One bar: its rectangle, and its value's label centred above it."""

    mode: str
    x: float
    y: float
    width: float
    height: float
    label: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class Point:
    """A point of a series, and where its label goes (after it, or before it near the plot's right edge)."""

    x: float
    y: float
    label: str = ""
    label_x: float = 0.0
    label_y: float = 0.0
    anchor: str = "start"


@dataclass(frozen=True)
class Series:
    """A line through POINTS, of one mode (its colour) and one knob (its dashes and markers)."""

    mode: str
    name: str
    points: list[Point]
    marker: str | None = None  # "circle", "square" or none
    dashed: bool = False

    @property
    def path(self) -> str:
        """The points as an SVG polyline's points attribute."""
        return " ".join(f"{p.x:g},{p.y:g}" for p in self.points)


@dataclass(frozen=True)
class LegendEntry:
    """A series' sample line (from x to x + 20 at y) and its name after it."""

    name: str
    mode: str
    x: float
    y: float
    marker: str | None
    dashed: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot: Box
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_title: str
    y_title: str
    bars: list[Bar] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)


def linear(lo: float, hi: float, start: float, end: float) -> Scale:
    """The map of [LO, HI] onto [START, END] (END < START for a y axis, which grows upwards)."""
    span = (hi - lo) or 1.0
    return lambda value: _round(start + (value - lo) / span * (end - start))


def logarithmic(lo: float, hi: float, start: float, end: float) -> Scale:
    """The map of [LO, HI] onto [START, END] on a log scale (LO > 0)."""
    to = linear(math.log10(lo), math.log10(hi), start, end)
    return lambda value: to(math.log10(value))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About COUNT round values (steps of 1, 2 or 5 times a power of ten) from at or below LO to at or above HI."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """VALUE with as many decimals as STEP needs."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    return f"{value:.{decimals}f}"


def ndcg_chart(modes: Mapping[str, Mapping[str, float | int]]) -> Chart:
    """A bar per mode of its nDCG@10, on a 0 to 1 axis (runs compare at a glance)."""
    plot = Box(LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    y = linear(0.0, 1.0, plot.bottom, plot.top)
    band = (plot.right - plot.left) / max(len(modes), 1)
    bars, x_ticks = [], []
    for i, (mode, figures) in enumerate(modes.items()):
        value = min(max(float(figures["ndcg@10"]), 0.0), 1.0)
        left, centre = plot.left + i * band + band * 0.2, plot.left + (i + 0.5) * band
        top = y(value)
        bars.append(Bar(mode, _round(left), top, _round(band * 0.6), _round(plot.bottom - top),
                        f"{float(figures['ndcg@10']):.4f}", _round(centre), _round(top - 6)))  # fmt: skip
        x_ticks.append(Tick(_round(centre), mode))
    return Chart(WIDTH, HEIGHT, plot, x_ticks, _y_ticks(y, nice_ticks(0.0, 1.0)), "mode", "nDCG@10", bars=bars)


def recall_chart(curves: Mapping[str, Sequence[float]]) -> Chart:
    """A line per mode of its mean recall@k, k = 1 to the curve's length (100), k on a log axis."""
    plot = Box(LEFT, TOP, WIDTH - LEGEND, HEIGHT - BOTTOM)
    most = max((len(curve) for curve in curves.values()), default=100)
    x = logarithmic(1, max(most, 2), plot.left, plot.right)
    y = linear(0.0, 1.0, plot.bottom, plot.top)
    series = [
        Series(mode, mode, [Point(x(k), y(min(max(v, 0.0), 1.0))) for k, v in enumerate(curve, start=1)])
        for mode, curve in curves.items()
    ]
    x_ticks = [Tick(x(k), str(k)) for k in RECALL_TICKS if k <= max(most, 2)]
    y_ticks = _y_ticks(y, nice_ticks(0.0, 1.0))
    return Chart(WIDTH, HEIGHT, plot, x_ticks, y_ticks, "k (documents)", "recall@k", series=series,
                 legend=_legend(plot, series))  # fmt: skip


def latency_points(summary: Mapping[str, Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The points of the latency chart: the sweep's, or without one (no --report) each mode as it was run."""
    if summary.get("sweep"):
        return list(summary["sweep"])
    label = f"k {params.get('k_depth', '?')}"
    return [{"mode": mode, "label": label, "p50_ms": figures["p50_ms"], "ndcg@10": figures["ndcg@10"]}
            for mode, figures in summary.get("modes", {}).items()]  # fmt: skip


def latency_chart(points: Sequence[Mapping[str, Any]]) -> Chart:
    """Each point at (p50 ms, nDCG@10), labelled with its setting; the points of a mode and knob (ef_search,
    candidates) joined in the order of the setting, as report.md's chart does. Latency from 0, nDCG@10 over the
    points' range."""
    plot = Box(LEFT, TOP, WIDTH - LEGEND, HEIGHT - BOTTOM)
    x_values = nice_ticks(0.0, max((float(p["p50_ms"]) for p in points), default=1.0) or 1.0)
    quality = [float(p["ndcg@10"]) for p in points] or [0.0, 1.0]
    y_values = nice_ticks(max(min(quality) - 0.02, 0.0), min(max(quality) + 0.02, 1.0))
    x = linear(x_values[0], x_values[-1], plot.left, plot.right)
    y = linear(y_values[0], y_values[-1], plot.bottom, plot.top)
    series, taken = [], list[Box]()
    for mode, knob in dict.fromkeys((p["mode"], _knob(p)) for p in points):
        members = [p for p in points if (p["mode"], _knob(p)) == (mode, knob)]
        name = mode if knob in (mode, "k") else f"{mode}, {'ef_search' if knob == 'ef' else 'candidates'}"
        marked = [_labelled(plot, x(float(p["p50_ms"])), y(float(p["ndcg@10"])), str(p["label"]), taken)
                  for p in members]  # fmt: skip
        series.append(Series(mode, name, marked, "square" if knob == "cand" else "circle", dashed=knob == "cand"))
    x_step = x_values[1] - x_values[0]
    x_ticks = [Tick(x(v), tick_label(v, x_step)) for v in x_values]
    return Chart(WIDTH, HEIGHT, plot, x_ticks, _y_ticks(y, y_values), "p50 latency (ms)",
                 "nDCG@10", series=series, legend=_legend(plot, series))  # fmt: skip


def _labelled(plot: Box, x: float, y: float, label: str, taken: list[Box]) -> Point:
    """The point with its label after it (before it near the plot's right edge, clear of the legend), or unlabelled
    where its label would overprint one placed before (the table under the chart has every point). TAKEN: the boxes
    of the labels placed so far."""
    width = LABEL_CHAR * len(label)
    anchor, label_x = ("end", x - 6) if x + 6 + width > plot.right + 8 else ("start", x + 6)
    left = label_x - width if anchor == "end" else label_x
    box = Box(left - 2, y - 6 - LABEL_HEIGHT, left + width + 2, y - 6)  # and a gap
    if any(box.left < b.right and b.left < box.right and box.top < b.bottom and b.top < box.bottom for b in taken):
        return Point(x, y)
    taken.append(box)
    return Point(x, y, label, _round(label_x), _round(y - 6), anchor)


def _knob(point: Mapping[str, Any]) -> str:
    return str(point["label"]).split()[0]


def _y_ticks(y: Scale, values: Sequence[float]) -> list[Tick]:
    step = values[1] - values[0]
    return [Tick(y(v), tick_label(v, step)) for v in values]


def _legend(plot: Box, series: Sequence[Series]) -> list[LegendEntry]:
    return [LegendEntry(s.name, s.mode, plot.right + 16, plot.top + 8 + 18 * i, s.marker, s.dashed)
            for i, s in enumerate(series)]  # fmt: skip


def _round(value: float) -> float:
    return round(value, 1)
