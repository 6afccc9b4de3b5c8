"""A small Python client of Memora's REST API, for training loops: batches with resumable cursors.

    client = MemoraClient("http://127.0.0.1:8000")  # the API key: api_key=..., else $MEMORA_API_KEY
    for batch in client.iter_batches("reviews", size=256, split="train", snapshot="v1", shuffle_seed=epoch):
        train_step(batch.items)
        save_checkpoint(cursor=batch.cursor)  # iter_batches(..., cursor=saved) goes on after this batch

MemoraIterableDataset (torch.utils.data.IterableDataset) is built on first use, so torch is needed only by code
that uses it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Batch", "ExampleStream", "MemoraAPIError", "MemoraClient"]  # and MemoraIterableDataset, with torch


class MemoraAPIError(Exception):
    """An error answer of the API: its HTTP status and Memora's error body (code, message, details)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Batch:
    """One batch. CURSOR resumes after it (None: it was the epoch's last); EPOCH is the API's epoch object."""

    items: list[dict[str, Any]]
    cursor: str | None
    epoch: dict[str, Any]


class MemoraClient:
    """The REST API at BASE_URL; or pass HTTP_CLIENT, an httpx.Client with its own base_url (a proxy, an ASGI
    transport), which close() leaves open. API_KEY (else the MEMORA_API_KEY variable; "" for none) goes with every
    request as `Authorization: Bearer`, as a server that others can reach requires (docs/security.md)."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 60.0,
        *,
        api_key: str | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._own = http_client is None
        self.http = http_client or httpx.Client(base_url=base_url, timeout=timeout)
        # A key read from a file or pasted keeps its newline; an empty variable means no key.
        key = (os.environ.get("MEMORA_API_KEY", "") if api_key is None else api_key).strip()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> MemoraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, headers=self._headers, **kwargs)
        if response.is_error:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text}
            message = error.get("message", "")
            if response.status_code == 401 and not self._headers:
                message += " (no API key was sent: pass api_key= or set MEMORA_API_KEY)"
            raise MemoraAPIError(response.status_code, error.get("code", ""), message, error.get("details"))
        return None if response.status_code == 204 else response.json()

    def create_dataset(self, name: str, task: str, **options: Any) -> dict[str, Any]:
        """POST /v1/datasets (options: description, metadata, split)."""
        result: dict[str, Any] = self._call("POST", "/v1/datasets", json={"name": name, "task": task, **options})
        return result

    def add_examples(self, dataset: str, records: Sequence[dict[str, Any]], *, mode: str = "strict") -> dict[str, Any]:
        """POST /v1/datasets/{dataset}/examples: records in any format; returns the import report."""
        result: dict[str, Any] = self._call(
            "POST", f"/v1/datasets/{dataset}/examples", json=list(records), params={"mode": mode}
        )
        return result

    def import_file(
        self, dataset: str, path: str | Path, *, mode: str = "skip", format: str | None = None
    ) -> dict[str, Any]:
        """POST /v1/datasets/{dataset}/import: a JSONL, CSV or SQuAD JSON file, streamed from disk."""
        params = {"mode": mode} | ({"format": format} if format else {})
        with Path(path).open("rb") as file:
            result: dict[str, Any] = self._call(
                "POST", f"/v1/datasets/{dataset}/import", files={"file": (Path(path).name, file)}, params=params
            )
        return result

    def create_snapshot(self, dataset: str, name: str, description: str = "") -> dict[str, Any]:
        """POST /v1/datasets/{dataset}/snapshots: freeze the live examples as NAME."""
        result: dict[str, Any] = self._call(
            "POST", f"/v1/datasets/{dataset}/snapshots", json={"name": name, "description": description}
        )
        return result

    def batch(
        self,
        dataset: str,
        *,
        size: int = 100,
        split: str | None = None,
        snapshot: str | None = None,
        shuffle_seed: int | None = None,
        fields: Iterable[str] | None = None,
        cursor: str | None = None,
    ) -> Batch:
        """GET /v1/datasets/{dataset}/batches: one batch."""
        params: dict[str, Any] = {"size": size, "split": split, "snapshot": snapshot, "shuffle_seed": shuffle_seed}
        params = {k: v for k, v in params.items() if v is not None}
        if fields is not None:
            params["fields"] = ",".join(fields)
        if cursor is not None:
            params["cursor"] = cursor
        body = self._call("GET", f"/v1/datasets/{dataset}/batches", params=params)
        return Batch(items=body["items"], cursor=body["next_cursor"], epoch=body["epoch"])

    def iter_batches(
        self,
        dataset: str,
        *,
        size: int = 100,
        split: str | None = None,
        snapshot: str | None = None,
        shuffle_seed: int | None = None,
        fields: Iterable[str] | None = None,
        cursor: str | None = None,
    ) -> Iterator[Batch]:
        """The batches of one epoch, from CURSOR (a Batch.cursor saved earlier) or from its start."""
        fields = None if fields is None else list(fields)
        while True:
            batch = self.batch(
                dataset,
                size=size,
                split=split,
                snapshot=snapshot,
                shuffle_seed=shuffle_seed,
                fields=fields,
                cursor=cursor,
            )
            if batch.items:
                yield batch
            if batch.cursor is None:
                return
            cursor = batch.cursor


class ExampleStream:
    """The examples of one epoch, one at a time, resumable at any example: the core of MemoraIterableDataset.

    state_dict() says where the stream is (the cursor of the batch being read and how many of its items were
    taken); load_state_dict() makes the next iteration go on from there. set_epoch(k) shuffles epoch k with
    shuffle_seed + k, as torch's DistributedSampler does.
    """

    def __init__(
        self,
        client: MemoraClient,
        dataset: str,
        *,
        batch_size: int = 256,
        split: str | None = None,
        snapshot: str | None = None,
        shuffle_seed: int | None = None,
        fields: Iterable[str] | None = None,
    ) -> None:
        self.client = client
        self.dataset = dataset
        self.batch_size = batch_size
        self.split = split
        self.snapshot = snapshot
        self.shuffle_seed = shuffle_seed
        self.fields = None if fields is None else list(fields)
        self.epoch = 0
        self._cursor: str | None = None  # of the batch being read
        self._taken = 0  # items of it already yielded

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._cursor, self._taken = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "cursor": self._cursor, "taken": self._taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self._cursor, self._taken = state["epoch"], state["cursor"], state["taken"]

    @property
    def seed(self) -> int | None:
        return None if self.shuffle_seed is None else self.shuffle_seed + self.epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cursor, skip = self._cursor, self._taken
        while True:
            batch = self.client.batch(
                self.dataset,
                size=self.batch_size,
                split=self.split,
                snapshot=self.snapshot,
                shuffle_seed=self.seed,
                fields=self.fields,
                cursor=cursor,
            )
            for i in range(skip, len(batch.items)):
                self._cursor, self._taken = cursor, i + 1
                yield batch.items[i]
            if batch.cursor is None:
                break
            cursor, skip = batch.cursor, 0
        # The epoch is over: the next iteration starts the next one at its beginning.
        self._cursor, self._taken = None, 0


_torch_dataset: type | None = None


def _iterable_dataset() -> type:
    """MemoraIterableDataset: ExampleStream as a torch.utils.data.IterableDataset (torch is imported here)."""
    global _torch_dataset
    if _torch_dataset is None:
        try:
            data = importlib.import_module("torch.utils.data")
        except ImportError as exc:
            raise ImportError(
                "MemoraIterableDataset needs PyTorch: pip install torch (app.client works without it)"
            ) from exc

        class MemoraIterableDataset(ExampleStream, data.IterableDataset):  # type: ignore[misc,name-defined]
            """ExampleStream as a torch IterableDataset, for DataLoader(num_workers=0 or 1); resumable through
            state_dict() and load_state_dict()."""

            def __iter__(self) -> Iterator[dict[str, Any]]:
                worker = data.get_worker_info()
                if worker is not None and worker.num_workers > 1:
                    raise ValueError(
                        "MemoraIterableDataset reads one cursor-chained stream: use DataLoader(num_workers=0 or 1)"
                    )
                return ExampleStream.__iter__(self)

        _torch_dataset = MemoraIterableDataset
    return _torch_dataset


def __getattr__(name: str) -> Any:
    if name == "MemoraIterableDataset":
        return _iterable_dataset()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
