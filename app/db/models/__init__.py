"""The data model: collections of documents, their chunks and embeddings (collections.py); datasets of labeled
examples (training.py); API keys and the audit trail (access.py); evaluation runs (evaluation.py); what they share
(base.py). Everything is importable from here, as app.db.models.

Every table lives in one schema (SCHEMA here; another name at run time through the engine's
schema_translate_map). Child tables carry collection_id or dataset_id and lead their primary keys with it, so
the schema can be distributed by that column (Citus) without rewriting keys. docs/schema.md explains the choices.
"""

from app.db.models.access import ROLES, ApiKey, AuditEvent
from app.db.models.base import (
    CONTENT_TYPES,
    DOCUMENT_STATUSES,
    EXAMPLE_FORMATS,
    MAX_INDEXED_DIMENSIONS,
    METRICS,
    PROVIDERS,
    SCHEMA,
    STORAGE_TYPES,
    TASKS,
    Base,
    Meta,
    embedding_partition,
    version_table,
)
from app.db.models.collections import (
    Chunk,
    Collection,
    Document,
    DocumentCount,
    Embedding,
    EmbeddingAdapter,
    EmbeddingVersion,
    Posting,
    TermStats,
    TextStats,
)
from app.db.models.evaluation import EvalRun
from app.db.models.training import Dataset, Example, FinetuneJob, Snapshot, SnapshotExample

__all__ = [
    "CONTENT_TYPES",
    "DOCUMENT_STATUSES",
    "EXAMPLE_FORMATS",
    "MAX_INDEXED_DIMENSIONS",
    "METRICS",
    "PROVIDERS",
    "ROLES",
    "SCHEMA",
    "STORAGE_TYPES",
    "TASKS",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Chunk",
    "Collection",
    "Dataset",
    "Document",
    "DocumentCount",
    "Embedding",
    "EmbeddingAdapter",
    "EmbeddingVersion",
    "EvalRun",
    "Example",
    "FinetuneJob",
    "Meta",
    "Posting",
    "Snapshot",
    "SnapshotExample",
    "TermStats",
    "TextStats",
    "embedding_partition",
    "version_table",
]
