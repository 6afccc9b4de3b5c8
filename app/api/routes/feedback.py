"""/v1/collections/{name}/feedback: whether a search result was relevant, kept as training data
(app/search/feedback.py)."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import SessionDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.search import feedback

router = APIRouter(prefix="/v1/collections/{name}", tags=["search"])


@router.post(
    "/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=feedback.FeedbackStored,
    dependencies=[needs(Role.write, collection="name")],
)
def give_feedback(name: str, body: feedback.Feedback, db: SessionDep) -> feedback.FeedbackStored:
    """Say whether a search result was relevant to its query. It is kept as a labeled example in the collection's
    feedback_dataset (a pair if relevant; a not_relevant example otherwise), so feedback is training data: split,
    snapshotted, exported, read by `memora eval --dataset` and by adapter training. 409 if the collection names no
    feedback_dataset."""
    return feedback.record(db, name, body)
