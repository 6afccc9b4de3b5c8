"""The geometry of the evaluation charts (app/console/eval_charts.py): where bars, lines, points and ticks land."""

from __future__ import annotations

import math

import pytest

from app.console import eval_charts as charts


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert charts.nice_ticks(0.281, 0.359) == [0.28, 0.3, 0.32, 0.34, 0.36]
    assert charts.nice_ticks(0.0, 13.7) == [0, 5, 10, 15]
    assert charts.nice_ticks(0.0, 0.004) == [0.0, 0.001, 0.002, 0.003, 0.004]
    assert charts.nice_ticks(0.5, 0.5)[0] <= 0.5 <= charts.nice_ticks(0.5, 0.5)[-1]  # an empty range still has ticks


@pytest.mark.parametrize(("value", "step", "label"), [(0.2, 0.2, "0.2"), (0.34, 0.02, "0.34"), (15, 5, "15")])
def test_tick_labels_have_the_decimals_their_step_needs(value: float, step: float, label: str) -> None:
    assert charts.tick_label(value, step) == label


def test_scales_map_their_ends_and_the_log_scale_spaces_decades_evenly() -> None:
    y = charts.linear(0.0, 1.0, 276.0, 16.0)
    x = charts.logarithmic(1, 100, 56.0, 460.0)

    assert (y(0.0), y(1.0), y(0.5)) == (276.0, 16.0, 146.0)
    assert (x(1), x(10), x(100)) == (56.0, 258.0, 460.0)


def test_each_bar_stands_on_the_axis_as_high_as_its_value_in_its_own_band() -> None:
    chart = charts.ndcg_chart({"text": {"ndcg@10": 0.8}, "vector": {"ndcg@10": 0.25}, "hybrid": {"ndcg@10": 1.0}})
    plot = chart.plot
    full = plot.bottom - plot.top

    assert [bar.mode for bar in chart.bars] == ["text", "vector", "hybrid"]
    for bar, value in zip(chart.bars, (0.8, 0.25, 1.0), strict=True):
        assert bar.y + bar.height == pytest.approx(plot.bottom)
        assert bar.height == pytest.approx(full * value, abs=0.1)
        assert bar.label == f"{value:.4f}"
        assert bar.label_y < bar.y  # the value above its bar
        assert bar.x < bar.label_x < bar.x + bar.width
    band = (plot.right - plot.left) / 3
    assert [t.at for t in chart.x_ticks] == [pytest.approx(plot.left + band * (i + 0.5), abs=0.1) for i in range(3)]
    assert [t.label for t in chart.x_ticks] == ["text", "vector", "hybrid"]
    assert chart.bars[1].x + chart.bars[1].width < chart.bars[2].x  # bands do not overlap
    assert [t.label for t in chart.y_ticks] == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert (chart.y_ticks[0].at, chart.y_ticks[-1].at) == (plot.bottom, plot.top)


def test_recall_lines_run_along_a_log_k_axis_from_k_1_to_100() -> None:
    curve = [k / 100 for k in range(1, 101)]
    chart = charts.recall_chart({"text": curve, "hybrid": [1.0] * 100})
    plot = chart.plot
    text, hybrid = chart.series

    assert len(text.points) == 100
    assert (text.points[0].x, text.points[-1].x) == (plot.left, plot.right)
    assert text.points[9].x == pytest.approx(plot.left + (plot.right - plot.left) / 2, abs=0.1)  # k 10: mid-way
    assert text.points[-1].y == plot.top  # recall 1.0 at k 100
    assert text.points[0].y == pytest.approx(plot.bottom - 0.01 * (plot.bottom - plot.top), abs=0.1)
    assert all(p.y == plot.top for p in hybrid.points)
    assert text.path.split()[0] == f"{plot.left:g},{text.points[0].y:g}"
    assert [t.label for t in chart.x_ticks] == ["1", "2", "5", "10", "20", "50", "100"]
    assert [(e.name, e.mode) for e in chart.legend] == [("text", "text"), ("hybrid", "hybrid")]
    assert all(e.x > plot.right for e in chart.legend)  # beside the plot, never over a line


SWEEP = [
    {"mode": "text", "label": "text", "p50_ms": 2.0, "ndcg@10": 0.30},
    {"mode": "vector", "label": "ef 16", "p50_ms": 4.0, "ndcg@10": 0.31},
    {"mode": "vector", "label": "ef 40", "p50_ms": 6.0, "ndcg@10": 0.33},
    {"mode": "hybrid", "label": "ef 16", "p50_ms": 8.0, "ndcg@10": 0.34},
    {"mode": "hybrid", "label": "cand 10", "p50_ms": 9.0, "ndcg@10": 0.32},
    {"mode": "hybrid", "label": "cand 80", "p50_ms": 15.0, "ndcg@10": 0.35},
]


def test_latency_points_are_joined_per_mode_and_knob_at_their_latency_and_quality() -> None:
    chart = charts.latency_chart(SWEEP)
    plot = chart.plot
    x0, x1 = float(chart.x_ticks[0].label), float(chart.x_ticks[-1].label)
    y0, y1 = float(chart.y_ticks[0].label), float(chart.y_ticks[-1].label)

    assert [(s.name, len(s.points), s.marker, s.dashed) for s in chart.series] == [
        ("text", 1, "circle", False),
        ("vector, ef_search", 2, "circle", False),
        ("hybrid, ef_search", 1, "circle", False),
        ("hybrid, candidates", 2, "square", True),
    ]
    assert (x0, x1) == (0, 15)  # latency from 0
    assert y0 <= 0.30
    assert 0.35 <= y1 < y0 + 0.2  # quality over the points' range, not 0 to 1
    drawn = [p for s in chart.series for p in s.points]
    width, height = plot.right - plot.left, plot.bottom - plot.top
    for point, source in zip(drawn, SWEEP, strict=True):
        assert point.label == source["label"]
        assert point.x == pytest.approx(plot.left + (source["p50_ms"] - x0) / (x1 - x0) * width, abs=0.1)
        assert point.y == pytest.approx(plot.bottom - (source["ndcg@10"] - y0) / (y1 - y0) * height, abs=0.1)
        assert plot.top <= point.y <= plot.bottom
    assert [p.anchor for p in drawn] == ["start"] * 5 + ["end"]  # at the right edge, its label before it
    assert drawn[-1].label_x < drawn[-1].x == plot.right


def test_a_label_that_would_overprint_another_is_left_out() -> None:
    close = [{"mode": "vector", "label": f"ef {ef}", "p50_ms": 5.0 + ef / 1000, "ndcg@10": 0.5} for ef in (16, 40)]
    apart = [*close, {"mode": "vector", "label": "ef 100", "p50_ms": 1.0, "ndcg@10": 0.3}]

    (series,) = charts.latency_chart(apart).series

    assert [p.label for p in series.points] == ["ef 16", "", "ef 100"]
    assert len(series.points) == 3  # the point itself is drawn


def test_without_a_sweep_each_mode_is_one_point_as_it_was_run() -> None:
    summary = {"modes": {"text": {"p50_ms": 2.5, "ndcg@10": 0.8}, "hybrid": {"p50_ms": 9.0, "ndcg@10": 0.9}},
               "sweep": []}  # fmt: skip

    points = charts.latency_points(summary, {"k_depth": 200})
    chart = charts.latency_chart(points)

    assert points == [{"mode": "text", "label": "k 200", "p50_ms": 2.5, "ndcg@10": 0.8},
                      {"mode": "hybrid", "label": "k 200", "p50_ms": 9.0, "ndcg@10": 0.9}]  # fmt: skip
    assert [(s.name, len(s.points)) for s in chart.series] == [("text", 1), ("hybrid", 1)]
    assert charts.latency_points({**summary, "sweep": SWEEP}, {}) == SWEEP


def test_empty_and_degenerate_runs_still_draw() -> None:
    one = charts.latency_chart([{"mode": "text", "label": "k 10", "p50_ms": 0.0, "ndcg@10": 0.0}])
    nothing = charts.latency_chart([])

    for chart in (one, nothing):
        assert all(math.isfinite(t.at) for t in chart.x_ticks + chart.y_ticks)
    assert charts.ndcg_chart({}).bars == []
