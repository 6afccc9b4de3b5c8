"""The rank changes the search playground marks in its second column."""

from __future__ import annotations

from app.console.compare import Mark, dropped, marks


def test_each_result_is_marked_by_how_far_it_moved_from_the_first_ranking() -> None:
    first = [10, 20, 30, 40]
    second = [30, 20, 50, 10]

    found = marks(first, second)

    assert found == [Mark("up", 2), Mark("same"), Mark("new"), Mark("down", 3)]
    assert [m.text for m in found] == ["▲2", "=", "new", "▼3"]
    assert dropped(first, second) == [40]


def test_marks_say_in_words_what_the_arrows_show() -> None:
    assert Mark("up", 1).label == "up 1 place from the first column"
    assert Mark("down", 4).label == "down 4 places from the first column"
    assert Mark("new").label == "new: not in the first column's results"
    assert Mark("same").label == "same place as in the first column"


def test_identical_rankings_are_all_in_place_and_drop_nothing() -> None:
    assert {m.change for m in marks([1, 2, 3], [1, 2, 3])} == {"same"}
    assert dropped([1, 2, 3], [1, 2, 3]) == []
    assert marks([], [5]) == [Mark("new")]
