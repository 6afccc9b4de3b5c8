"""`memora embeddings`: add a version, let the worker fill it, watch it, make it active, roll back, drop the old one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


def test_a_version_from_creation_to_activation_and_back(fresh_db_url: str, tmp_path: Path) -> None:
    base = ["--database-url", fresh_db_url]

    def memora(*args: str) -> str:
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output

    memora("collection", "create", "docs", "--provider", "hashing", "--dimensions", "16")
    for i in range(3):
        (tmp_path / f"doc-{i}.txt").write_text(f"Document {i} is about topic {i}.")
    memora("ingest", "--collection", "docs", str(tmp_path))
    memora("worker", "--until-empty")
    created = memora("embeddings", "create", "docs", "--dimensions", "8", "--metric", "l2")
    refused = runner.invoke(cli, [*base, "embeddings", "activate", "docs", "3"])
    memora("worker", "--until-empty")
    waited = memora("embeddings", "status", "docs", "2", "--wait")
    activated = memora("embeddings", "activate", "docs", "2")
    listed = memora("embeddings", "list", "docs")
    memora("embeddings", "activate", "docs", "1")
    dropped = memora("embeddings", "drop", "docs", "2")

    assert "created version 2 of docs" in created
    assert "\tbuilding\t" in created
    assert "0/3 vectors" in created
    assert refused.exit_code == 1
    assert "has no embedding version 3" in str(refused.exception)
    assert "\tready\t" in waited
    assert "3/3 vectors" in waited
    assert "version 2 of docs is active" in activated
    assert listed.splitlines()[1].startswith("* 2\tready\thashing/hashing\t8d l2 vector")
    assert "dropped version 2 of docs" in dropped
    assert memora("embeddings", "list", "docs").splitlines()[0].startswith("* 1\tready")
