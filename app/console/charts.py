"""The geometry of the console's charts, computed here so that templates only place what is given (inline SVG, with
no script and no style attribute) and so that a test can check the numbers without a browser.

A bar chart is a row per item: its name on the left, a bar whose length is the item's share of the largest, and
the count after the bar. Lengths are relative to the largest value, not the total, so the longest bar always fills
the plot and small differences stay visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Drawing units of the SVG's viewBox; the style sheet scales the whole drawing to the width it has.
WIDTH = 480
NAME_WIDTH = 160
VALUE_WIDTH = 70
ROW_HEIGHT = 26
BAR_HEIGHT = 18
NAME_CHARS = 18


@dataclass(frozen=True, slots=True)
class Bar:
    name: str
    shown: str  # the name as drawn: cut to NAME_CHARS, the full name in the bar's <title> and in the table
    value: int
    share: float  # of the chart's total, 0..1
    y: float  # top of the bar
    length: float
    text_y: float  # baseline of the name and the value, centred on the bar
    value_x: float


@dataclass(frozen=True, slots=True)
class BarChart:
    bars: list[Bar]
    width: int
    height: int
    bar_x: int  # where every bar starts, right of the names
    bar_height: int
    total: int


def bar_chart(items: Sequence[tuple[str, int]]) -> BarChart:
    """ITEMS (name, count) as horizontal bars, in the order given."""
    total = sum(value for _, value in items)
    largest = max((value for _, value in items), default=0)
    plot = WIDTH - NAME_WIDTH - VALUE_WIDTH
    bars = []
    for row, (name, value) in enumerate(items):
        length = plot * value / largest if largest > 0 else 0.0
        y = row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2
        bars.append(
            Bar(
                name=name,
                shown=name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…",
                value=value,
                share=value / total if total > 0 else 0.0,
                y=round(y, 2),
                length=round(length, 2),
                text_y=round(y + BAR_HEIGHT / 2 + 5, 2),
                value_x=round(NAME_WIDTH + length + 6, 2),
            )
        )
    return BarChart(bars, WIDTH, max(len(items), 1) * ROW_HEIGHT, NAME_WIDTH, BAR_HEIGHT, total)


def folded(items: Sequence[tuple[str, int]], keep: int) -> list[tuple[str, int]]:
    """The first KEEP of ITEMS, and the rest summed into one "N others" item, so a chart stays readable."""
    if len(items) <= keep:
        return list(items)
    rest = items[keep:]
    return [*items[:keep], (f"{len(rest)} others", sum(value for _, value in rest))]
