"""The web console (app/console/): its pages, each calling the services its JSON endpoints call, and showing a caller
only what its key may see and do."""

from __future__ import annotations

from fastapi import APIRouter

from app.console.pages import (
    access,
    answers,
    collections,
    dataset_quality,
    dataset_snapshots,
    datasets,
    documents,
    evaluations,
    home,
    search,
)

router = APIRouter(include_in_schema=False)
router.include_router(home.router)
router.include_router(access.router)
router.include_router(collections.router)
router.include_router(documents.router)
router.include_router(search.router)
router.include_router(answers.router)
router.include_router(datasets.router)
router.include_router(dataset_quality.router)
router.include_router(dataset_snapshots.router)
router.include_router(evaluations.router)
