"""The API with keys required, on a database of the module's own seeded once (a collection with an evaluation run, a
dataset with a snapshot, a fine-tuning job, and one key per kind of caller), and the same API open, for comparison.

Keys are looked up as the served API looks them up, in sessions of their own on committed rows. Each request's own
session is a transaction rolled back when the request ends, so a DELETE or a POST leaves the seeded rows as they
were for the next test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.api.deps import get_session
from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.db.engine import make_engine
from app.db.models import Collection, FinetuneJob
from app.embeddings.hashing import HashingEmbedder
from tests.conftest import create_database, drop_database
from tests.factories import make_eval_run

COLLECTION = "kb"
DATASET = "train"
SNAPSHOT = "v1"
DOCUMENT = "aardvark"
OTHER_COLLECTION = "other-kb"
OTHER_DATASET = "other-set"
DIMENSIONS = 8
# Who calls, by the key each sends (None: no key). "other" is an admin granted only other-* collections and datasets.
CALLERS = ("none", "expired", "revoked", "read", "write", "admin", "other")
KEY_NAMES = {"read": "reader", "write": "writer", "admin": "root", "other": "elsewhere", "expired": "old",
             "revoked": "gone"}  # fmt: skip


@dataclass
class Seeded:
    """The module's database: its URL and engine, and the secrets of its keys by caller."""

    url: str
    engine: Engine
    settings: Settings
    secrets: dict[str, str] = field(default_factory=dict)
    example_id: int = 0
    example_ids: list[int] = field(default_factory=list)  # of DATASET, in seq order (example_id is the first)
    job_id: int = 0
    run_id: int = 0  # an evaluation run of COLLECTION

    def headers(self, caller: str) -> dict[str, str]:
        return {} if caller == "none" else {"Authorization": f"Bearer {self.secrets[caller]}"}

    def add_key(self, name: str, role: Role, **grants: object) -> str:
        """A key committed now; its secret."""
        with Session(self.engine) as db:
            new = keys.create(db, self.settings, name, role, **grants)  # type: ignore[arg-type]
            db.commit()
        return new.secret


def rolled_back(engine: Engine) -> object:
    """A get_session whose session's transaction is rolled back after the request."""

    def session() -> Iterator[Session]:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                with Session(bind=conn, join_transaction_mode="create_savepoint") as db:
                    yield db
                    db.flush()
            finally:
                transaction.rollback()

    return session


def app_for(seeded: Seeded, auth: str, *, settings: Settings | None = None) -> FastAPI:
    settings = (settings or seeded.settings).model_copy(update={"auth": auth})
    app = create_app(settings, engine=seeded.engine)
    app.dependency_overrides[get_session] = rolled_back(seeded.engine)
    return app


@pytest.fixture(scope="module")
def seeded(server_url: str, template_db: str) -> Iterator[Seeded]:
    url = create_database(server_url, template=template_db)
    # A chat server that refuses at once: answers reach the model and fail as the route's own 502.
    settings = Settings(
        database_url=url, openai_base_url="http://127.0.0.1:9/v1", openai_max_retries=0, console_stream_seconds=0.1
    )
    engine = make_engine(settings, "test")
    seeded = Seeded(url, engine, settings)
    with TestClient(create_app(settings.model_copy(update={"auth": "off"}), engine=engine)) as client:
        _seed(client, seeded)
    yield seeded
    engine.dispose()
    drop_database(server_url, url)


def _seed(client: TestClient, seeded: Seeded) -> None:
    embedder = HashingEmbedder(DIMENSIONS)
    for collection in (COLLECTION, OTHER_COLLECTION):
        body = {"name": collection, "embedding_provider": "hashing", "dimensions": DIMENSIONS}
        _expect(client.post("/v1/collections", json=body), 201)
        text = "The aardvark eats ants at night."
        chunks = [{"text": text, "embedding": embedder.embed([text])[0].tolist()}]
        document = {"external_id": DOCUMENT, "content": text, "chunks": chunks}
        _expect(client.post(f"/v1/collections/{collection}/documents", json=document), 202)
    for dataset in (DATASET, OTHER_DATASET):
        _expect(client.post("/v1/datasets", json={"name": dataset, "task": "classification"}), 201)
        examples = [{"text": f"example {i}", "label": "spam" if i % 3 else "ham"} for i in range(6)]
        _expect(client.post(f"/v1/datasets/{dataset}/examples", json=examples), 201)
        _expect(client.post(f"/v1/datasets/{dataset}/snapshots", json={"name": SNAPSHOT}), 201)
    seeded.example_ids = [item["id"] for item in client.get(f"/v1/datasets/{DATASET}/examples").json()["items"]]
    seeded.example_id = seeded.example_ids[0]
    with Session(seeded.engine) as db:
        for dataset, job in ((DATASET, "ftjob-1"), (OTHER_DATASET, "ftjob-2")):
            db.add(FinetuneJob(dataset_name=dataset, snapshot_name=SNAPSHOT, base_url="http://127.0.0.1:9/v1",
                               model="gpt-4o-mini", training_file_id="file-1", provider_job_id=job,
                               status="succeeded"))  # fmt: skip
        db.commit()
        seeded.job_id = db.query(FinetuneJob.id).filter_by(provider_job_id="ftjob-1").scalar() or 0
        seeded.run_id = make_eval_run(db, db.scalars(select(Collection).filter_by(name=COLLECTION)).one()).id
        db.commit()
    others = {"collections": ["other-*"], "datasets": ["other-*"]}
    for caller, role, grants in (("read", Role.read, {}), ("write", Role.write, {}), ("admin", Role.admin, {}),
                                 ("other", Role.admin, others), ("expired", Role.admin, {}),
                                 ("revoked", Role.admin, {})):  # fmt: skip
        seeded.secrets[caller] = seeded.add_key(KEY_NAMES[caller], role, **grants)
    with Session(seeded.engine) as db:
        expired = keys.live(db, KEY_NAMES["expired"])
        assert expired is not None
        expired.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        keys.revoke(db, KEY_NAMES["revoked"])
        db.commit()


def _expect(response: object, status: int) -> None:
    assert getattr(response, "status_code", None) == status, getattr(response, "text", response)


@pytest.fixture(scope="module")
def keyed(seeded: Seeded) -> Iterator[TestClient]:
    """The API with keys required (MEMORA_AUTH=required)."""
    with TestClient(app_for(seeded, "required")) as client:
        yield client


@pytest.fixture(scope="module")
def open_api(seeded: Seeded) -> Iterator[TestClient]:
    """The same API open, as on loopback by default (MEMORA_AUTH=auto, 127.0.0.1)."""
    with TestClient(app_for(seeded, "auto")) as client:
        yield client
