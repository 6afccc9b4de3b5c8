"""Versions of a collection's embeddings: making one, filling it in the background, making it the one search reads."""
