"""Memora: a Postgres-native home for ML training data and retrieval."""

__version__ = "0.1.0"
