"""What an operator sees: request ids in every log line (context.py, logs.py), Prometheus metrics (metrics.py,
collector.py, middleware.py) and the status summary of GET /v1/status and `memora status` (status.py)."""
