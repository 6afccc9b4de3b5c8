"""Where the files that ship beside the code are: at the repository root, or inside an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "_bundled"  # filled by the wheel build (pyproject.toml, force-include)
_ROOT = _BUNDLED if (_BUNDLED / "alembic.ini").exists() else _PACKAGE.parent

ALEMBIC_INI = _ROOT / "alembic.ini"
MIGRATIONS_DIR = _ROOT / "migrations"
SQL_FUNCTIONS_DIR = _ROOT / "sql" / "functions"
