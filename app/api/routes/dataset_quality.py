"""/v1/datasets/{name}/...: splits, duplicates, leakage (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
