"""/v1/datasets/{name}/...: snapshots, batches (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
