"""app.client against a real uvicorn server on loopback: datasets in, snapshots, batches, resumable streams."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api.main import create_app
from app.client import Batch, ExampleStream, MemoraAPIError, MemoraClient
from app.config import Settings
from tests.live_server import serving

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture
def base_url(fresh_db_url: str) -> Iterator[str]:
    """The API served by uvicorn on 127.0.0.1, in a thread, on a database of the test's own."""
    with serving(create_app(Settings(database_url=fresh_db_url))) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[MemoraClient]:
    with MemoraClient(base_url, timeout=30) as client:
        yield client


@pytest.fixture
def dataset(client: MemoraClient, tmp_path: Path) -> str:
    """60 classification examples: 20 sent as JSON, 40 imported from a JSONL file."""
    client.create_dataset("reviews", "classification")
    records = [{"text": f"review {i}", "label": "good" if i % 2 else "bad"} for i in range(60)]
    assert client.add_examples("reviews", records[:20])["stored"] == 20
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records[20:]))
    assert client.import_file("reviews", path)["stored"] == 40
    return "reviews"


def texts(batches: list[Batch]) -> list[str]:
    return [item["record"]["text"] for batch in batches for item in batch.items]


def test_iter_batches_reads_an_epoch_and_resumes_from_a_saved_cursor(client: MemoraClient, dataset: str) -> None:
    snapshot = client.create_snapshot(dataset, "v1", "for training")
    whole = list(client.iter_batches(dataset, size=7, snapshot="v1", shuffle_seed=3))

    first_two = []
    for batch in client.iter_batches(dataset, size=7, snapshot="v1", shuffle_seed=3):
        first_two.append(batch)
        if len(first_two) == 2:
            saved = batch.cursor
            break
    rest = list(client.iter_batches(dataset, size=7, snapshot="v1", shuffle_seed=3, cursor=saved))

    assert snapshot["examples"] == 60
    assert sorted(texts(whole)) == sorted(f"review {i}" for i in range(60))
    assert texts(whole) != [f"review {i}" for i in range(60)]  # shuffled
    assert texts(first_two + rest) == texts(whole)
    assert [len(b.items) for b in whole] == [7] * 8 + [4]
    assert whole[-1].cursor is None
    assert whole[0].epoch == {"seed": 3, "examples": 60}
    ids = list(client.iter_batches(dataset, size=50, fields=["id", "seq"]))
    assert [list(item) for item in ids[0].items[:1]] == [["id", "seq"]]


def test_api_errors_carry_status_code_and_field(client: MemoraClient, dataset: str) -> None:
    with pytest.raises(MemoraAPIError) as missing:
        client.batch("nope")
    with pytest.raises(MemoraAPIError) as bad:
        client.batch(dataset, fields=["id", "colour"])
    client.create_snapshot(dataset, "v1")
    with pytest.raises(MemoraAPIError) as taken:
        client.create_snapshot(dataset, "v1")

    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert bad.value.status == 422
    assert bad.value.details[0]["field"] == "fields"
    assert taken.value.status == 409
    assert "409" in str(taken.value)


def test_an_example_stream_resumes_at_any_example(client: MemoraClient, dataset: str) -> None:
    def stream() -> ExampleStream:
        return ExampleStream(client, dataset, batch_size=8, split=None, shuffle_seed=10)

    whole = [item["id"] for item in stream()]
    interrupted = stream()
    taken = []
    for item in interrupted:
        taken.append(item["id"])
        if len(taken) == 13:  # mid-batch
            break
    state = json.loads(json.dumps(interrupted.state_dict()))  # as a checkpoint stores it
    resumed = stream()
    resumed.load_state_dict(state)

    assert taken + [item["id"] for item in resumed] == whole
    assert sorted(whole) == sorted(set(whole))
    assert len(whole) == 60
    # The epoch ended: iterating again starts it over, in the same order; the next epoch has its own order.
    assert [item["id"] for item in resumed] == whole
    resumed.set_epoch(1)
    next_epoch = [item["id"] for item in resumed]
    assert sorted(next_epoch) == sorted(whole)
    assert next_epoch != whole


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed")
def test_the_torch_dataset_asks_for_torch_only_when_used() -> None:
    import app.client

    with pytest.raises(ImportError, match="pip install torch"):
        app.client.MemoraIterableDataset  # noqa: B018


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_the_torch_dataset_feeds_a_dataloader(client: MemoraClient, dataset: str) -> None:
    from torch.utils.data import DataLoader

    from app.client import MemoraIterableDataset

    data = MemoraIterableDataset(client, dataset, batch_size=16, fields=["id"])
    loader = DataLoader(data, batch_size=10, collate_fn=lambda items: [item["id"] for item in items])

    batches = list(loader)

    assert sum(len(b) for b in batches) == 60
