"""Eval sets stored as datasets: `memora eval --dataset NAME` reads judged queries from a dataset's pairs examples.

An example `{"query": "...", "positive": "...", "source": {"collection": "docs", "external_id": "doc-7"},
"metadata": {"relevant": ["doc-7", "doc-9"]}}` is a query whose relevant documents are its source document and the
external ids in metadata.relevant (a list, each grade 1, or an object of external id -> grade). Examples with the
same query text are one query with the union of their documents (a pairs dataset often has one row per positive).
The positive's text is not matched against documents: relevance is by external id only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Dataset
from app.db.repository import get_named
from app.errors import InvalidInputError
from app.eval import repository
from app.eval.service import JudgedQuery


def relevant_documents(relevant: Any, source: str | None) -> dict[str, int]:
    """External id -> grade from metadata.relevant (a list or an object) and the source document."""
    grades: dict[str, int] = {}
    if isinstance(relevant, list):
        grades |= {str(doc): 1 for doc in relevant if isinstance(doc, str | int)}
    elif isinstance(relevant, Mapping):
        grades |= {str(doc): int(grade) for doc, grade in relevant.items() if _is_grade(grade)}
    elif isinstance(relevant, str):
        grades[relevant] = 1
    if source is not None:
        grades.setdefault(source, 1)
    return grades


def dataset_queries(db: Session, name: str, split: str | None = None) -> list[JudgedQuery]:
    """The judged queries of dataset NAME's pairs examples (of SPLIT when given), in example order; the id of a
    query is the id of its first example."""
    get_named(db, Dataset, name)  # a 404 when there is none
    queries: dict[str, JudgedQuery] = {}
    for example_id, text, relevant, source in repository.pairs_examples(db, name, split):
        grades = relevant_documents(relevant, source)
        if text is None or not text.strip() or not grades:
            continue
        if text in queries:
            queries[text] = JudgedQuery(queries[text].id, text, {**grades, **queries[text].judgments})
        else:
            queries[text] = JudgedQuery(str(example_id), text, grades)
    # A query only judged not relevant (search feedback, grade 0) has nothing to find: no judged query.
    queries = {text: q for text, q in queries.items() if any(grade > 0 for grade in q.judgments.values())}
    if not queries:
        raise InvalidInputError(
            f"dataset {name!r} has no pairs examples with relevant documents: give each a source "
            '({"collection", "external_id"}) or metadata {"relevant": [external ids]}',
            details=[{"field": "--dataset", "reason": "no pairs examples with relevant documents"}],
        )
    return list(queries.values())


def _is_grade(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
