"""Exports of datasets and snapshots as training files (service.py)."""

EXPORT_FORMATS = ("openai-chat", "jsonl", "parquet", "csv", "pairs", "triplets", "openai-batch")
