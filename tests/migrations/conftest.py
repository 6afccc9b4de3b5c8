"""Migrations are about schemas themselves: each test names the schema it migrates (memora unless it says
otherwise), so they carry the memora_schema marker and stay out of the MEMORA_DB_SCHEMA=ml run."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.memora_schema)
