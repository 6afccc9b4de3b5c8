"""The wheel carries what a host project imports: memora_migrations with the revisions, the SQL files and
alembic.ini bundled inside it, and finds them there when no source checkout is around."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_bundles_the_migrations_and_finds_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("memora-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = "memora_migrations/_bundled/"
    assert f"{bundled}alembic.ini" in names
    assert f"{bundled}migrations/env.py" in names
    revisions = {n for n in names if n.startswith(f"{bundled}migrations/versions/") and n.endswith(".py")}
    assert len(revisions) == len(list((ROOT / "migrations" / "versions").glob("*.py")))
    sql = {n.removeprefix(f"{bundled}sql/") for n in names if n.startswith(f"{bundled}sql/")}
    assert sql == {str(p.relative_to(ROOT / "sql")) for p in (ROOT / "sql").rglob("*.sql")}

    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = "import memora_migrations.files as f; print(f.ALEMBIC_INI, f.IDEMPOTENT_DIR)"
    found = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(unpacked)!r}); {script}"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert found == [str(unpacked / bundled / "alembic.ini"), str(unpacked / bundled / "sql" / "idempotent")]
