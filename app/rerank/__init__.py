"""Re-scoring the best search candidates with a reranker (a cross-encoder behind an OpenAI-compatible server)."""
