"""The shape of the migrations: frozen incremental files, idempotent files that say what they need, and nothing
that imports Memora's service (a host project's own `app` package would shadow it)."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from memora_migrations import files
from memora_migrations.idempotent import idempotent_files, needed
from tests.migrations.helpers import HEAD, REVISIONS

FROZEN = files.MIGRATIONS_DIR / "frozen.sha256"
VERSIONS = files.MIGRATIONS_DIR / "versions"


def revision_file(revision: str) -> Path:
    (path,) = VERSIONS.glob(f"*_{revision}_*.py")
    return path


def frozen() -> dict[str, str]:
    """migrations/frozen.sha256 (`sha256sum -c migrations/frozen.sha256` checks it too): path -> digest."""
    return {path: digest for digest, path in (line.split() for line in FROZEN.read_text().splitlines())}


def test_frozen_files_have_not_changed() -> None:
    for path, digest in frozen().items():
        actual = hashlib.sha256((files.ROOT / path).read_bytes()).hexdigest()
        assert actual == digest, f"{path} changed after it was frozen: write a new revision instead"


def test_every_revision_but_the_newest_and_its_incremental_files_are_frozen() -> None:
    released = [revision for revision in REVISIONS if revision != HEAD]
    expected = {str(revision_file(revision).relative_to(files.ROOT)) for revision in released}
    expected |= {
        str(path.relative_to(files.ROOT))
        for path in files.INCREMENTAL_DIR.glob("*.sql")
        if path.name.split("-")[0] in released
    }

    assert expected <= frozen().keys()


def test_every_incremental_file_is_applied_once_by_the_revision_it_is_named_after() -> None:
    texts = {revision: revision_file(revision).read_text() for revision in REVISIONS}
    names = [path.name for path in files.INCREMENTAL_DIR.glob("*.sql")]
    assert names

    for name in names:
        call = f'apply_incremental("{name}")'
        assert [revision for revision, text in texts.items() if call in text] == [name.split("-")[0]], name


def test_every_idempotent_file_names_the_revision_whose_schema_it_needs() -> None:
    requirements = {file.name: file.requires for file in idempotent_files()}

    assert len(requirements) == len(list(files.IDEMPOTENT_DIR.glob("*.sql")))
    assert set(requirements.values()) <= set(REVISIONS)
    assert list(requirements.values()) == sorted(requirements.values()), "files apply in name order"
    for file in idempotent_files():
        if file.until is not None:
            assert REVISIONS.index(file.requires) < REVISIONS.index(file.until), file.name


def test_a_database_gets_the_vector_layout_of_its_revision() -> None:
    script = ScriptDirectory(str(files.MIGRATIONS_DIR))

    def layout(revision: str) -> list[str]:
        names = [file.name for file in needed(script, [revision])]
        return [name for name in names if name in ("001-partitions-by-collection.sql", "014-embedding-versions.sql")]

    assert layout("0008") == ["001-partitions-by-collection.sql"]
    assert layout("0009") == ["014-embedding-versions.sql"]


def test_no_revision_applies_an_idempotent_file() -> None:
    for revision in REVISIONS:
        text = revision_file(revision).read_text()
        assert not re.search(r"apply_sql_file|idempotent\.(apply|drop)|read\(", text), revision


@pytest.mark.parametrize("schema", ["memora", "tenant_7"])
def test_sql_files_are_rewritten_for_the_target_schema(schema: str) -> None:
    paths = [*files.IDEMPOTENT_DIR.glob("*.sql"), *files.INCREMENTAL_DIR.glob("*.sql")]
    for path in paths:
        text = files.read(path, schema)
        assert f"{schema}." in text, path
        if schema != "memora":
            assert "memora." not in text, path


def imported_packages(path: Path) -> set[str]:
    packages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            packages.add(node.module.split(".")[0])
    return packages


def test_the_migrations_import_nothing_of_the_service() -> None:
    package = Path(files.__file__).parent
    paths = [*package.rglob("*.py"), *files.MIGRATIONS_DIR.rglob("*.py")]
    assert len(paths) > 10

    for path in paths:
        assert "app" not in imported_packages(path), path
