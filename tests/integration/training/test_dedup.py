"""Exact and near duplicates (POST .../dedup), train/test leakage (GET .../leakage), their HNSW index, the CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Dataset
from app.embeddings.registry import get_embedder
from app.training.quality import index as dataset_index
from app.training.quality import neighbours
from tests.conftest import app_on
from tests.factories import make_dataset
from tests.openai_server import OpenAIServer
from tests.schema import q, sql

HASHING = {"provider": "hashing"}
WORDS = [f"w{i}" for i in range(5000)]


def sentence(rng: random.Random, n: int = 20) -> str:
    """Words drawn from a large vocabulary: two such sentences share almost nothing (hashing cosine ~0.1)."""
    return " ".join(rng.choice(WORDS) for _ in range(n))


def add(db: Session, dataset: Dataset, texts: list[str], *, label: str = "ham") -> list[int]:
    """Classification examples with these texts, in this order (so in seq order); returns their ids."""
    rows = db.execute(
        sql(
            "INSERT INTO memora.example (dataset_id, format, input, label) "
            "SELECT :d, 'classification', jsonb_build_object('text', t), :label "
            "FROM unnest(CAST(:texts AS text[])) WITH ORDINALITY AS x(t, i) ORDER BY i RETURNING id"
        ),
        {"d": dataset.id, "texts": texts, "label": label},
    ).all()
    return [row.id for row in rows]


def live(db: Session, dataset: Dataset) -> set[int]:
    rows = db.execute(
        sql("SELECT id FROM memora.example WHERE dataset_id = :d AND deleted_at IS NULL"), {"d": dataset.id}
    )
    return {row.id for row in rows}


def clusters(body: dict[str, Any], kind: str) -> list[list[int]]:
    return [c["members"] for c in body["clusters"] if c["kind"] == kind]


def test_exact_clusters_then_drop_keeps_the_first_and_snapshots_still_read_the_rest(
    api: TestClient, db: Session
) -> None:
    dataset = make_dataset(db)
    hello = add(db, dataset, ["Hello world", "unique one", "HELLO   world", "hello WORLD", "Foo bar", "foo  bar"])
    db.execute(sql("SELECT * FROM memora.create_snapshot(:n, 's1')"), {"n": dataset.name})
    later = add(db, dataset, ["hello  world", "another unique"])  # not in the snapshot

    report = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"exact": True})

    assert report.status_code == 200, report.text
    body = report.json()
    assert clusters(body, "exact") == [[hello[0], hello[2], hello[3], later[0]], [hello[4], hello[5]]]
    assert [c["keep"] for c in body["clusters"]] == [hello[0], hello[4]]
    assert body["counts"] | {"embedded": 0} == {
        "exact_clusters": 2, "near_clusters": 0, "duplicates": 4, "embedded": 0,
        "dropped": 0, "tombstoned": 0, "deleted": 0,
    }  # fmt: skip
    assert body["embedding"] is None
    assert len(live(db, dataset)) == 8  # reporting removes nothing

    dropped = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"exact": True, "drop": True}).json()

    assert dropped["counts"]["dropped"] == 4
    assert dropped["counts"]["tombstoned"] == 3  # held by s1
    assert dropped["counts"]["deleted"] == 1  # added after s1
    assert live(db, dataset) == {hello[0], hello[1], hello[4], later[1]}
    in_snapshot = db.execute(
        sql(
            "SELECT e.id, e.input ->> 'text' AS t FROM memora.snapshot_example s "
            "JOIN memora.example e ON (e.dataset_id, e.id) = (s.dataset_id, s.example_id) "
            "JOIN memora.snapshot n ON n.id = s.snapshot_id WHERE n.name = 's1' AND n.dataset_id = :d"
        ),
        {"d": dataset.id},
    ).all()
    assert {row.id for row in in_snapshot} == set(hello)
    assert db.scalar(sql("SELECT count(*) FROM memora.example WHERE id = :i"), {"i": later[0]}) == 0
    again = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"drop": True}).json()
    assert again["clusters"] == []
    assert again["counts"]["dropped"] == 0


def near_fixture(db: Session, dataset: Dataset) -> dict[str, int]:
    """Named examples: a base sentence and its variants, the same for a second one, and unrelated filler."""
    rng = random.Random(1)
    a, b = sentence(rng), sentence(rng)
    a_words = a.split()
    named = {
        "a": a,
        "a_case": a.upper() + " !",  # cosine 1.0 under hashing, another text_hash
        "a_longer": a + " w1",  # cosine 0.972
        "a_two_words": " ".join(["x1", *a_words[1:-1], "x2"]),  # two words replaced: cosine 0.891
        "a_copy": a.replace(" ", "   ", 3),  # the same normalised text: an exact duplicate
        "b": b,
        "b_comma": b.replace(" ", ", ", 3),  # cosine 1.0 under hashing, another text_hash
    }
    ids = dict(zip(named, add(db, dataset, list(named.values())), strict=True))
    add(db, dataset, [sentence(rng) for _ in range(60)])
    return ids


def test_near_clusters_found_with_the_hashing_provider(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    ids = near_fixture(db, dataset)
    request = {"exact": True, "near": {"threshold": 0.95, "k": 10}, **HASHING}

    body = api.post(f"/v1/datasets/{dataset.name}/dedup", json=request).json()

    assert clusters(body, "exact") == [[ids["a"], ids["a_copy"]]]
    # a_copy is folded into a (its exact cluster's first); a_two_words is below 0.95.
    assert clusters(body, "near") == [[ids["a"], ids["a_case"], ids["a_longer"]], [ids["b"], ids["b_comma"]]]
    near = [c for c in body["clusters"] if c["kind"] == "near"]
    assert near[0]["max_similarity"] == pytest.approx(1.0, abs=1e-6)
    assert 0.95 <= near[0]["min_similarity"] < 0.99
    assert body["counts"]["embedded"] == 67
    assert body["embedding"] == {"provider": "hashing", "model": "hashing", "dimensions": 256}

    looser = api.post(f"/v1/datasets/{dataset.name}/dedup", json={**request, "near": {"threshold": 0.85}}).json()

    assert looser["counts"]["embedded"] == 0  # the embeddings are kept
    assert clusters(looser, "near")[0] == [ids["a"], ids["a_case"], ids["a_longer"], ids["a_two_words"]]


def test_near_without_exact_clusters_exact_copies_too(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    ids = near_fixture(db, dataset)

    body = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"exact": False, "near": {}, **HASHING}).json()

    assert clusters(body, "exact") == []
    assert clusters(body, "near")[0] == [ids["a"], ids["a_case"], ids["a_longer"], ids["a_copy"]]


def test_drop_near_duplicates_keeps_one_of_each_cluster(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    ids = near_fixture(db, dataset)
    before = live(db, dataset)

    body = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, "drop": True, **HASHING}).json()

    gone = {ids["a_copy"], ids["a_case"], ids["a_longer"], ids["b_comma"]}
    assert body["counts"]["dropped"] == body["counts"]["deleted"] == 4
    assert live(db, dataset) == before - gone
    assert api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, **HASHING}).json()["clusters"] == []


def test_new_examples_are_embedded_and_another_model_re_embeds(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    near_fixture(db, dataset)
    api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, **HASHING})
    add(db, dataset, ["one more example"])

    more = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, **HASHING}).json()
    other = api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, **HASHING, "dimensions": 64}).json()

    assert more["counts"]["embedded"] == 1
    assert other["counts"]["embedded"] == 68
    assert other["embedding"]["dimensions"] == 64
    dims = db.execute(
        sql("SELECT DISTINCT vector_dims(embedding) FROM memora.example WHERE dataset_id = :d"), {"d": dataset.id}
    ).all()
    assert dims == [(64,)]
    definition = db.scalar(
        sql("SELECT indexdef FROM pg_indexes WHERE indexname = memora.example_index_name(:d)"), {"d": dataset.id}
    )
    assert "vector(64)" in definition
    assert len(clusters(other, "near")) == 2


def test_the_hnsw_index_serves_the_neighbour_queries(db: Session, settings: Settings) -> None:
    rng = random.Random(2)
    embedder = get_embedder("hashing", "hashing", 256, settings)
    # The first index of the table is built empty and filled row by row; later ones are built after embedding.
    first, second = make_dataset(db), make_dataset(db)
    add(db, first, [sentence(rng) for _ in range(2000)])
    add(db, second, [sentence(rng) for _ in range(2000)])
    dataset_index.ensure_embeddings(db, first, embedder, batch_size=500)
    dataset_index.ensure_embeddings(db, second, embedder, batch_size=500)
    db.execute(sql("ANALYZE memora.example"))
    conn = db.connection()
    neighbours.search_settings(conn, 10)  # as neighbours.neighbours runs them

    for dataset in (first, second):
        index = db.scalar(sql("SELECT memora.example_index_name(:d)"), {"d": dataset.id})
        # An index its own transaction may not use (built over HOT chains it made) would leave only scans.
        usable = "SELECT NOT indcheckxmin AND indisvalid FROM pg_index WHERE indexrelid = to_regclass(:i)"
        assert db.scalar(text(usable), {"i": q(f"memora.{index}")}) is True
        for mode in ("all", "distinct", "leakage"):
            statement = neighbours.neighbour_statement(conn, dataset.id, 256, mode)  # type: ignore[arg-type]
            params = {"k": 10, "after": -1, "upto": 255}
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params))
            assert f"Index Scan using {index} on example x" in plan, plan
            assert "Seq Scan on example x" not in plan, plan
            assert "Sort" not in plan, plan


def test_leakage_lists_pairs_across_the_train_boundary(api: TestClient, db: Session) -> None:
    dataset = make_dataset(db)
    rng = random.Random(3)
    a, b, c, d = (sentence(rng) for _ in range(4))
    named = {
        "a_train": a, "a_test": a.upper() + ".",  # near (cosine 1), different text_hash
        "b_train": b, "b_validation": b.upper(),  # exact: the same text_hash, put in two splits by hand
        "c_train": c, "c_train_too": c + " w9",  # near, but both in train: no leak
        "d_test": d, "d_validation": d + " w8 w7",  # near, but neither in train: not reported
    }  # fmt: skip
    ids = dict(zip(named, add(db, dataset, list(named.values())), strict=True))
    filler = add(db, dataset, [sentence(rng) for _ in range(40)])
    db.execute(sql("UPDATE memora.example SET split = 'train' WHERE id = ANY(:ids)"), {"ids": filler})
    for name, example_id in ids.items():
        split = name.split("_")[-1] if name.split("_")[-1] in ("test", "validation") else "train"
        db.execute(sql("UPDATE memora.example SET split = :s WHERE id = :i"), {"s": split, "i": example_id})

    response = api.get(f"/v1/datasets/{dataset.name}/leakage", params={"threshold": 0.95, **HASHING})

    assert response.status_code == 200, response.text
    body = response.json()
    pairs = {(p["train_id"], p["other_id"], p["other_split"], p["exact"]) for p in body["pairs"]}
    assert pairs == {
        (ids["b_train"], ids["b_validation"], "validation", True),
        (ids["a_train"], ids["a_test"], "test", False),
    }
    assert all(p["similarity"] == pytest.approx(1.0, abs=1e-6) for p in body["pairs"])
    assert body["counts"] == {
        "pairs": 2, "exact": 1, "near": 1, "train_validation": 1, "train_test": 1, "embedded": 48,
    }  # fmt: skip
    assert body["checked"] == 4
    # With the splits that memora assigns, exact duplicates never cross: the split is keyed by text_hash.
    api.post(f"/v1/datasets/{dataset.name}/split", json={"seed": 1})
    after = api.get(f"/v1/datasets/{dataset.name}/leakage", params={"threshold": 0.95, **HASHING}).json()
    assert after["counts"]["exact"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"near": {"threshold": 0}}, "body.near.threshold"),
        ({"near": {"threshold": 1.5}}, "body.near.threshold"),
        ({"near": {"threshold": "high"}}, "body.near.threshold"),
        ({"near": {"k": 0}}, "body.near.k"),
        ({"near": {}, "provider": "nope"}, "body.provider"),
        ({"near": {}, "provider": "hashing", "dimensions": 5000}, "body.dimensions"),
        ({"near": {}, "provider": "hashing", "model": "other", "dimensions": 64}, "model"),
        ({"near": {}, "provider": "openai", "model": "custom-embedder"}, "dimensions"),
        ({"exact": True, "cluster": True}, "body.cluster"),
    ],
)
def test_bad_dedup_requests_are_422(api: TestClient, db: Session, body: dict[str, Any], field: str) -> None:
    dataset = make_dataset(db)
    add(db, dataset, ["same", "same "])

    response = api.post(f"/v1/datasets/{dataset.name}/dedup", json={**body, "drop": True})

    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert len(live(db, dataset)) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"threshold": 0}, "query.threshold"),
        ({"threshold": 2}, "query.threshold"),
        ({"threshold": "nan"}, "query.threshold"),
        ({"k": 101}, "query.k"),
        ({"provider": "word2vec"}, "query.provider"),
    ],
)
def test_bad_leakage_queries_are_422(api: TestClient, db: Session, params: dict[str, Any], field: str) -> None:
    dataset = make_dataset(db)

    response = api.get(f"/v1/datasets/{dataset.name}/leakage", params=params)

    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


@pytest.fixture
def openai_api(settings: Settings, engine: Engine, db: Session, openai_server: OpenAIServer) -> Iterator[TestClient]:
    """The API on the test's transaction, its openai provider the loopback server (no retries)."""
    update = {
        "openai_base_url": openai_server.base_url,
        "openai_api_key": SecretStr("sk-test"),
        "openai_max_retries": 0,
    }
    app = app_on(db, settings.model_copy(update=update), engine)
    with TestClient(app) as client:
        yield client


OPENAI = {"provider": "openai", "model": "custom-embedder", "dimensions": 48}


@pytest.mark.parametrize("route", ["dedup", "leakage"])
def test_a_model_the_server_lacks_or_a_width_it_does_not_give_is_422(
    openai_api: TestClient, openai_server: OpenAIServer, db: Session, route: str
) -> None:
    """Issue 13: the embedding server refusing the request's own choice (its 404 for the model; vectors of another
    width than the dimensions asked for) is a 422 naming that field, not a 502."""
    dataset = make_dataset(db)
    add(db, dataset, ["same", "other"])

    def ask() -> dict[str, Any]:
        if route == "dedup":
            response = openai_api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, **OPENAI})
        else:
            response = openai_api.get(f"/v1/datasets/{dataset.name}/leakage", params=OPENAI)
        assert response.status_code == 422, response.text
        [problem] = response.json()["error"]["details"]
        return problem

    openai_server.fail_next(1, 404, path="/v1/embeddings")
    unknown = ask()
    openai_server.wrong_dimensions = 32
    narrower = ask()

    assert unknown["field"] == "model"
    assert "HTTP 404" in unknown["reason"]
    assert narrower["field"] == "dimensions"
    assert "returned 32-dimensional vectors, expected 48" in narrower["reason"]


def test_a_server_that_refuses_a_default_the_request_left_alone_stays_502(
    openai_api: TestClient, openai_server: OpenAIServer, db: Session
) -> None:
    dataset = make_dataset(db)
    add(db, dataset, ["same", "other"])
    openai_server.fail_next(1, 404, path="/v1/embeddings")

    response = openai_api.post(f"/v1/datasets/{dataset.name}/dedup", json={"near": {}, "provider": "openai"})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "embedding_provider"


def test_unknown_dataset_is_404(api: TestClient) -> None:
    assert api.post("/v1/datasets/nope/dedup", json={}).status_code == 404
    assert api.get("/v1/datasets/nope/leakage", params=HASHING).status_code == 404


def memora(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "--database-url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_cli_dedup_and_leakage(fresh_db_url: str) -> None:
    rng = random.Random(4)
    texts = [sentence(rng) for _ in range(30)]
    texts += [texts[0] + "!", texts[1] + " w1", texts[2].upper()]
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute(q("INSERT INTO memora.dataset (name, task) VALUES ('notes', 'classification')"))
        conn.execute(
            q(
                "INSERT INTO memora.example (dataset_id, format, input, label) "
                "SELECT d.id, 'classification', jsonb_build_object('text', t), 'x' "
                "FROM memora.dataset d, unnest(%s::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i"
            ),
            (texts,),
        )
        conn.execute(q("UPDATE memora.example SET split = CASE WHEN seq = 30 THEN 'test' ELSE 'train' END"))

    leaks = memora(fresh_db_url, "dataset", "leakage", "notes", "--provider", "hashing", "--json")
    report = memora(fresh_db_url, "dataset", "dedup", "notes", "--near", "0.95", "--provider", "hashing")
    dropped = memora(fresh_db_url, "dataset", "dedup", "notes", "--near", "0.95", "--provider", "hashing", "--drop")
    bad = memora(fresh_db_url, "dataset", "leakage", "notes", "--threshold", "1.5")

    assert leaks.returncode == 0, leaks.stderr
    assert json.loads(leaks.stdout)["counts"]["near"] == 1
    assert report.returncode == 0, report.stderr
    assert "1 exact and 2 near clusters, 3 duplicates" in report.stdout
    assert "embedding" in report.stderr  # the progress bar
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 3 (0 kept as tombstones for snapshots)" in dropped.stdout
    with psycopg.connect(fresh_db_url) as conn:
        remaining = conn.execute(q("SELECT count(*) FROM memora.example")).fetchone()
    assert remaining == (30,)
    assert bad.returncode == 1
    assert "--threshold" in bad.stderr


def test_deleting_a_dataset_in_sql_drops_its_index(db: Session, settings: Settings) -> None:
    dataset = make_dataset(db)
    add(db, dataset, ["one example", "another example"])
    dataset_index.ensure_embeddings(db, dataset, get_embedder("hashing", "hashing", 64, settings))
    name = db.scalar(sql("SELECT memora.example_index_name(:d)"), {"d": dataset.id})
    assert db.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = :i"), {"i": name}) == 1

    db.execute(sql("DELETE FROM memora.dataset WHERE id = :d"), {"d": dataset.id})

    assert db.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = :i"), {"i": name}) == 0
