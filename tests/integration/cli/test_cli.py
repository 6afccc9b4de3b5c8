"""The `memora` command against a real database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import typer.main
from typer.testing import CliRunner

from app.cli import cli
from app.db import migrate
from tests.schema import q

runner = CliRunner()


def memora(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a new process."""
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120)


def test_db_upgrade_current_downgrade(empty_db_url: str) -> None:
    base = ["--database-url", empty_db_url, "db"]

    before = runner.invoke(cli, [*base, "current"])
    upgraded = runner.invoke(cli, [*base, "upgrade"])
    current = runner.invoke(cli, [*base, "current"])
    downgraded = runner.invoke(cli, [*base, "downgrade", "base"])

    head = migrate.head_revision()
    assert before.output.splitlines() == ["current: base", f"head: {head}"]
    assert upgraded.exit_code == 0, upgraded.output
    assert current.output.splitlines() == [f"current: {head}", f"head: {head}"]
    assert downgraded.exit_code == 0, downgraded.output
    assert "database at base" in downgraded.output


def test_environment_variables_configure_the_command(empty_db_url: str) -> None:
    result = runner.invoke(
        cli, ["db", "upgrade"], env={"MEMORA_DATABASE_URL": empty_db_url, "MEMORA_DB_SCHEMA": "envtest"}
    )

    assert result.exit_code == 0, result.output
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM envtest.alembic_version").fetchone() == (1,)


def test_db_url_prints_a_url_psql_can_use(empty_db_url: str) -> None:
    result = runner.invoke(cli, ["--database-url", empty_db_url.replace("postgresql://", "postgres://"), "db", "url"])

    assert result.exit_code == 0
    with psycopg.connect(result.output.strip()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_embedded_db_url_status_and_stop(data_dir: Path) -> None:
    base = ["--data-dir", str(data_dir), "db"]

    url = runner.invoke(cli, [*base, "url"])
    running = runner.invoke(cli, [*base, "status"])
    stopped = runner.invoke(cli, [*base, "stop"])
    after = runner.invoke(cli, [*base, "status"])

    assert url.output.startswith("postgresql://postgres:")
    assert "running" in running.output
    assert stopped.output.strip() == "stopped"
    assert after.exit_code == 3
    assert "stopped" in after.output


def test_unreachable_database_is_one_clear_line() -> None:
    result = memora("--database-url", "postgresql://nobody@127.0.0.1:9/nothing", "db", "current")

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot use the database:")
    assert "Traceback" not in result.stderr


def test_bad_setting_is_reported_with_its_name() -> None:
    result = memora("--database-url", "mysql://x/y", "db", "current")

    assert result.returncode != 0
    assert "database_url" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_option_has_an_env_var_and_a_shown_default() -> None:
    def commands(command: Any) -> list[Any]:
        children = getattr(command, "commands", {})
        return [command, *(found for child in children.values() for found in commands(child))]

    options = [
        param
        for command in commands(typer.main.get_command(cli))
        for param in command.params
        if param.param_type_name == "option" and param.name not in {"help", "start", "end", "down"}
    ]

    assert len(options) >= 8
    for option in options:
        assert str(option.envvar).startswith("MEMORA_"), option.name
        assert option.show_default, option.name


def test_db_psql_passes_psql_options_through(fresh_db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "q.sql"
    script.write_text("SELECT 40 + 2;\n")

    inline = memora("--database-url", fresh_db_url, "db", "psql", "-At", "-c", q("SELECT count(*) FROM memora.dataset"))
    from_file = memora("--database-url", fresh_db_url, "db", "psql", "-At", "-f", str(script))

    assert inline.returncode == 0, inline.stderr
    assert inline.stdout.strip() == "0"
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.strip() == "42"


def test_help_keeps_square_brackets_and_names_every_command() -> None:
    ask = runner.invoke(cli, ["ask", "--help"], terminal_width=200)
    top = runner.invoke(cli, ["--help"], terminal_width=200)

    assert "citing its sources as [n]" in ask.output
    for command in ("serve", "worker", "ingest", "collection", "eval", "embed", "ask", "dataset", "export", "finetune"):
        assert f" {command} " in top.output, command


def test_a_bad_option_names_its_flag_not_a_setting(fresh_db_url: str) -> None:
    result = memora("--database-url", fresh_db_url, "dataset", "create", "d", "--task", "chat", "--train", "2")

    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid options: --train: ")
    assert "MEMORA_" not in result.stderr


def test_commands_on_an_empty_dataset_say_so(fresh_db_url: str, tmp_path: Path) -> None:
    base = ("--database-url", fresh_db_url)
    assert memora(*base, "dataset", "create", "empty", "--task", "chat").returncode == 0

    split = memora(*base, "dataset", "split", "empty")
    snapshot = memora(*base, "dataset", "snapshot", "create", "empty", "v1")
    exported = memora(*base, "export", "empty", "--format", "openai-chat", "-o", str(tmp_path / "out.jsonl"))

    assert split.returncode == snapshot.returncode == exported.returncode == 0
    assert "warning: dataset 'empty' has no examples yet" in split.stderr
    assert "warning: snapshot 'v1' is empty: dataset 'empty' has no live examples" in snapshot.stderr
    assert "is empty: the dataset has no examples" in exported.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == b""
