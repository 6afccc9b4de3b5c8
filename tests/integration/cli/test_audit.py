"""`memora audit`: the trail read straight from the database, as a table or JSON, with its filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.db.models import AuditEvent
from app.errors import InvalidInputError
from tests.conftest import sqlalchemy_engine

runner = CliRunner()


def _events(url: str) -> None:
    now = datetime.now(UTC)
    engine = sqlalchemy_engine(url)
    with Session(engine) as db, db.begin():
        db.add_all(
            [
                AuditEvent(at=now - timedelta(days=3), key_name="ci", method="POST", route="/v1/datasets",
                           path="/v1/datasets", dataset="qa", status=201),
                AuditEvent(at=now - timedelta(hours=2), key_name="ci", method="POST",
                           route="/v1/collections/{name}/documents", path="/v1/collections/kb/documents",
                           collection="kb", status=202),
                AuditEvent(at=now, method="DELETE", route="/v1/collections/{name}", path="/v1/collections/kb",
                           collection="kb", status=403),
            ]
        )  # fmt: skip
    engine.dispose()


def test_memora_audit_shows_the_newest_first_and_filters(fresh_db_url: str) -> None:
    _events(fresh_db_url)
    base = ["--database-url", fresh_db_url, "audit"]

    table = runner.invoke(cli, base)
    assert table.exit_code == 0, table.output
    lines = [line.split() for line in table.output.splitlines() if line.strip()]
    assert lines[0] == ["at", "key", "method", "path", "collection", "dataset", "status"]
    assert [(row[2], row[-1]) for row in lines[1:]] == [("(no", "403"), ("ci", "202"), ("ci", "201")]
    assert "(no key)  DELETE  /v1/collections/kb" in table.output

    as_json = json.loads(runner.invoke(cli, [*base, "--json"]).output)
    assert [e["status"] for e in as_json] == [403, 202, 201]
    assert as_json[1]["route"] == "/v1/collections/{name}/documents"
    since = json.loads(runner.invoke(cli, [*base, "--json", "--since", "1d"]).output)
    assert [e["status"] for e in since] == [403, 202]
    key = json.loads(runner.invoke(cli, [*base, "--json", "--key", "ci", "--limit", "1"]).output)
    assert [e["status"] for e in key] == [202]
    collection = json.loads(runner.invoke(cli, [*base, "--json", "--collection", "kb"]).output)
    assert [e["path"] for e in collection] == ["/v1/collections/kb", "/v1/collections/kb/documents"]
    dataset = json.loads(runner.invoke(cli, [*base, "--json", "--dataset", "qa"]).output)
    assert [e["dataset"] for e in dataset] == ["qa"]


def test_a_bad_since_names_the_option(fresh_db_url: str) -> None:
    result = runner.invoke(cli, ["--database-url", fresh_db_url, "audit", "--since", "last week"])
    assert isinstance(result.exception, InvalidInputError)
    assert result.exception.problems[0]["field"] == "--since"
