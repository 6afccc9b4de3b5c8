"""Settings: environment variables, defaults that work on a laptop, and URL normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_database_url_is_pointed_at_psycopg3(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(database_url="mysql://u@h/d")


def test_unset_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMORA_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEMORA_DATABASE_URL", "")

    settings = Settings()

    assert settings.embedded is True
    assert settings.data_dir == Path(".memora")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORA_DATA_DIR", "/srv/memora")
    monkeypatch.setenv("MEMORA_PORT", "9000")
    monkeypatch.setenv("MEMORA_DB_SCHEMA", "ml_data")

    settings = Settings()

    assert (settings.data_dir, settings.port, settings.db_schema) == (Path("/srv/memora"), 9000, "ml_data")


@pytest.mark.parametrize("schema", ["Memora", "memora; drop", "1abc", ""])
def test_schema_must_be_a_plain_identifier(schema: str) -> None:
    with pytest.raises(ValidationError, match="db_schema"):
        Settings(db_schema=schema)
