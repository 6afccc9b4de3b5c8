"""The geometry of the console's bar charts (app/console/charts.py): what the templates draw, checked without a
browser."""

from __future__ import annotations

import pytest

from app.console import charts
from app.console.charts import NAME_WIDTH, ROW_HEIGHT, VALUE_WIDTH, WIDTH, bar_chart, folded

PLOT = WIDTH - NAME_WIDTH - VALUE_WIDTH


def test_the_largest_value_fills_the_plot_and_the_others_are_in_proportion() -> None:
    chart = bar_chart([("train", 80), ("validation", 10), ("test", 20)])

    assert [b.length for b in chart.bars] == [PLOT, PLOT / 8, PLOT / 4]
    assert [b.share for b in chart.bars] == pytest.approx([80 / 110, 10 / 110, 20 / 110])
    assert chart.total == 110
    assert all(b.value_x == pytest.approx(NAME_WIDTH + b.length + 6) for b in chart.bars)


def test_rows_stack_down_the_drawing_each_bar_centred_in_its_row() -> None:
    chart = bar_chart([("a", 1), ("b", 2), ("c", 3)])

    assert chart.height == 3 * ROW_HEIGHT
    assert chart.width == WIDTH
    assert chart.bar_x == NAME_WIDTH
    for row, bar in enumerate(chart.bars):
        assert bar.y == (row * ROW_HEIGHT) + (ROW_HEIGHT - chart.bar_height) / 2
        assert bar.y + chart.bar_height <= (row + 1) * ROW_HEIGHT
        assert bar.y < bar.text_y < bar.y + chart.bar_height + ROW_HEIGHT / 2


def test_values_that_are_all_zero_draw_no_bar_and_divide_by_nothing() -> None:
    chart = bar_chart([("train", 0), ("test", 0)])

    assert [(b.length, b.share) for b in chart.bars] == [(0, 0), (0, 0)]
    assert chart.total == 0


def test_an_empty_chart_still_has_a_row_of_height() -> None:
    chart = bar_chart([])

    assert chart.bars == []
    assert chart.height == ROW_HEIGHT


def test_a_long_name_is_cut_for_the_drawing_and_kept_whole_for_the_table() -> None:
    name = "a label much longer than the room on the left"

    bar = bar_chart([(name, 3)]).bars[0]

    assert bar.name == name
    assert len(bar.shown) == charts.NAME_CHARS
    assert bar.shown.endswith("…")
    assert name.startswith(bar.shown[:-1])


def test_folding_keeps_the_first_items_and_sums_the_rest() -> None:
    items = [("spam", 9), ("ham", 5), ("eggs", 2), ("toast", 1)]

    assert folded(items, 2) == [("spam", 9), ("ham", 5), ("2 others", 3)]
    assert folded(items, 4) == items
    assert folded(items, 10) == items
