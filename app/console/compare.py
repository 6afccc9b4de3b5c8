"""How a second ranking differs from a first, result by result: what the search playground marks in its second
column. Pure functions over chunk ids, so they are tested without a database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Change = Literal["up", "down", "same", "new"]


@dataclass(frozen=True)
class Mark:
    """Where a result of the second ranking stood in the first: CHANGE, by how many places (MOVED), and its text."""

    change: Change
    moved: int = 0

    @property
    def text(self) -> str:
        return {"up": f"▲{self.moved}", "down": f"▼{self.moved}", "same": "=", "new": "new"}[self.change]

    @property
    def label(self) -> str:
        """What a screen reader says: the arrow alone says nothing."""
        if self.change == "new":
            return "new: not in the first column's results"
        if self.change == "same":
            return "same place as in the first column"
        places = "place" if self.moved == 1 else "places"
        return f"{self.change} {self.moved} {places} from the first column"


def marks(first: list[int], second: list[int]) -> list[Mark]:
    """For each id of SECOND, in order, how its place compares with its place in FIRST."""
    before = {chunk_id: rank for rank, chunk_id in enumerate(first)}
    found = []
    for rank, chunk_id in enumerate(second):
        if chunk_id not in before:
            found.append(Mark("new"))
        elif before[chunk_id] > rank:
            found.append(Mark("up", before[chunk_id] - rank))
        elif before[chunk_id] < rank:
            found.append(Mark("down", rank - before[chunk_id]))
        else:
            found.append(Mark("same"))
    return found


def dropped(first: list[int], second: list[int]) -> list[int]:
    """The ids of FIRST that SECOND does not have, in FIRST's order."""
    kept = set(second)
    return [chunk_id for chunk_id in first if chunk_id not in kept]
