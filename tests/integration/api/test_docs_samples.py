"""Sample output in docs/ is what the code prints: a sample that drifts from it fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from app import __version__
from app.db import migrate
from tests.schema import q

DOCS = Path(__file__).resolve().parents[3] / "docs"


def json_block_after(page: str, heading: str) -> object:
    """The first ```json block after HEADING in docs/PAGE."""
    text = (DOCS / page).read_text()
    rest = text[text.index(heading) :]
    match = re.search(r"```json\n(.*?)```", rest, flags=re.S)
    assert match, f"no JSON sample after {heading!r} in {page}"
    return json.loads(match.group(1))


def test_the_healthz_sample_is_what_healthz_answers(api: TestClient) -> None:
    sample = json_block_after("rest.md", "## `GET /healthz`")
    answer = api.get("/healthz").json()

    assert isinstance(sample, dict)
    assert sample.keys() == answer.keys()
    assert sample["database"].keys() == answer["database"].keys()
    assert sample["status"] == answer["status"] == "ok"
    assert sample["version"] == answer["version"] == __version__
    assert sample["database"]["revision"] == sample["database"]["head"] == migrate.head_revision()


def test_the_search_sql_sample_is_what_search_answers(api: TestClient) -> None:
    text = (DOCS / "rest.md").read_text()
    section = text[text.index("### The search as SQL") :]
    curl = re.search(r"-d '(\{.*?\})'", section, flags=re.S)
    sample = re.search(r"```sql\n(.*?)\n```", section, flags=re.S)
    assert curl, "no curl -d '{...}' after '### The search as SQL' in rest.md"
    assert sample, "no ```sql block after '### The search as SQL' in rest.md"
    assert api.post("/v1/collections", json={"name": "handbook", "embedding_provider": "hashing"}).status_code == 201

    answer = api.post("/v1/collections/handbook/search", json=json.loads(curl.group(1)))

    assert answer.status_code == 200, answer.text
    assert answer.json()["sql"] == q(sample.group(1))
