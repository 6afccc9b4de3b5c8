"""Modules every `memora` command imports leave the heavy libraries to the code that uses them (issue 12).

Which modules get imported, not how long they take: timings live in benchmarks/cli_startup.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Each module, and libraries that importing it must not import.
NOT_IMPORTED = {
    "app.cli": [
        "alembic",
        "fastapi",
        "matplotlib",
        "numpy",
        "onnxruntime",
        "openai",
        "pgvector",
        "prometheus_client",
        "psycopg",
        "pyarrow",
        "pypdf",
        "rich",
        "sqlalchemy",
        "tokenizers",
    ],
    "app.db.engine": ["numpy", "pgvector", "psycopg", "sqlalchemy"],
    "app.db.migrate": ["alembic", "psycopg", "sqlalchemy"],
    "app.cli.answer": ["numpy", "openai", "pypdf", "sqlalchemy"],
    "app.upstream": ["numpy", "openai"],
    "app.eval.report": ["matplotlib"],
    "app.console.pages.evaluations": ["matplotlib"],  # its charts are SVG drawn per request
}


@pytest.mark.parametrize("module", NOT_IMPORTED)
def test_importing_leaves_heavy_libraries_alone(module: str) -> None:
    script = (
        f"import json, sys, {module}; "
        f"print(json.dumps([name for name in {NOT_IMPORTED[module]!r} if name in sys.modules]))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)

    assert json.loads(run.stdout) == []
