"""Every knob Memora has: one Settings object, each field read from a MEMORA_* environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.limits import READ_JSON_DEPTH
from memora_migrations.database import check_schema, sqlalchemy_url


class Settings(BaseSettings):
    """Memora's configuration; see docs/configuration.md for the whole table."""

    model_config = SettingsConfigDict(env_prefix="MEMORA_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db). Unset: Memora runs its own embedded server.",
    )
    data_dir: Path = Field(
        default=Path(".memora"),
        description="Where the embedded PostgreSQL keeps its data (in DATA_DIR/pg), log and credentials.",
    )
    pg_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="TCP port of the embedded PostgreSQL on 127.0.0.1; 0 picks a free one at start.",
    )
    db_schema: str = Field(default="memora", description="Schema that holds every Memora object.")
    read_database_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Streaming replicas of the database that read-only requests may use (comma-separated URLs); "
        "none: every request goes to the primary (docs/scaling.md).",
    )
    max_replica_lag: float = Field(
        default=5.0, gt=0, description="Seconds a replica may trail the primary and still serve reads."
    )
    replica_check_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often each replica's health and lag are checked."
    )
    host: str = Field(default="127.0.0.1", description="Address the REST API listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the REST API listens on.")
    migrate_on_start: bool = Field(default=True, description="Apply pending migrations when `memora serve` starts.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or as one JSON object each with the request id (docs/reliability.md).",
    )
    metrics: bool = Field(default=True, description="Serve Prometheus metrics at GET /metrics; false: a 404.")
    server_timing: bool = Field(
        default=False,
        description="Tell where each request's time went in a Server-Timing header (search: embed, search, "
        "highlight, commit, respond, other, total).",
    )
    pool_size: int = Field(default=5, ge=1, le=100, description="Connections kept open per process.")
    statement_timeout_ms: int = Field(
        default=0, ge=0, description="statement_timeout of API requests of no kind below, in ms; 0 means none."
    )
    # Per kind of request, set per transaction (SET LOCAL); a statement past one is a 504 naming its setting.
    search_statement_timeout_ms: int = Field(
        default=10_000, ge=0, description="statement_timeout of search and answer requests, in ms; 0 means none."
    )
    import_statement_timeout_ms: int = Field(
        default=0, ge=0, description="statement_timeout of uploads and dataset imports, in ms; 0 means none."
    )
    export_statement_timeout_ms: int = Field(
        default=0, ge=0, description="statement_timeout of exports and training batches, in ms; 0 means none."
    )

    # Access control (app/auth/, docs/security.md).
    auth: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="API keys: required, off, or auto (required when MEMORA_HOST is not a loopback address).",
    )
    api_key_secret: SecretStr | None = Field(
        default=None,
        description="Secret mixed into the stored hash of every API key; set it on every process, keep it out of "
        "the database. Unset: a fixed one (keys carry 256 random bits, so the hash is safe without it).",
    )
    console_session_hours: float = Field(
        default=12,
        gt=0,
        le=24 * 90,
        description="How long a console sign-in lasts (the key's own expiry, when sooner, ends it first).",
    )
    console_stream_seconds: float = Field(
        default=15,
        gt=0,
        le=3600,
        description="How long one live-progress stream of the console lasts before the browser reconnects.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names requests may name besides localhost ones and MEMORA_HOST (comma-separated).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins that may call the API from a browser (comma-separated); none: CORS off.",
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="Requests per minute each API key may send (a key may set its own); 0: no limit."
    )
    audit_retention_days: int = Field(
        default=90, ge=1, description="Days the audit trail keeps an event (memora.audit_event)."
    )

    # Ingestion limits (REST and CLI).
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Largest request body or uploaded file, in bytes."
    )
    max_json_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest body of any request that is not an upload or an import, in bytes (chunked or not).",
    )
    max_query_chars: int = Field(
        default=4000, ge=1, description="Longest search query or answer question, in characters."
    )
    max_documents_per_request: int = Field(
        default=1000, ge=1, description="Most documents one POST .../documents may carry."
    )

    max_json_depth: int = Field(
        default=32,
        ge=1,
        le=READ_JSON_DEPTH,  # so what is stored reads back whole (app/db/jsonb.py)
        description="Deepest nesting of any JSON Memora stores (metadata, example records, filters); deeper is a 422.",
    )

    # Training data.
    max_import_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024,
        description="Largest file one dataset import may send, in bytes; it is spooled to disk, never held in memory.",
    )
    max_examples_per_request: int = Field(
        default=10_000, ge=1, description="Most examples one POST .../examples (JSON) may carry."
    )

    # Answers (app/rag/).
    chat_model: str = Field(
        default="gpt-4o-mini",
        min_length=1,
        description="Chat model that answers questions when a request names none (any OpenAI-compatible server).",
    )

    # Search.
    search_max_k: int = Field(
        default=100, ge=1, le=1000, description="Most results one search may ask for (k); the SQL functions allow 1000."
    )

    # The worker.
    worker_in_serve: bool = Field(default=True, description="Run an ingestion worker inside `memora serve`.")
    worker_batch_size: int = Field(default=16, ge=1, le=1000, description="Documents a worker claims at once.")
    worker_lease_seconds: int = Field(
        default=30,
        ge=5,
        description="How long a claimed document stays with its worker before others may retry it; renewed every "
        "third of it while the worker works, so it bounds how long the batch of a dead worker waits.",
    )
    worker_max_attempts: int = Field(default=5, ge=1, description="Attempts before a document is marked failed.")
    worker_retry_seconds: float = Field(
        default=5.0, ge=0, description="Wait before the first retry of a failed document; doubles each attempt."
    )
    worker_poll_seconds: float = Field(
        default=5.0, gt=0, description="Poll interval when no NOTIFY arrives (a fallback, not the main path)."
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port on MEMORA_HOST where `memora worker` serves its Prometheus metrics; 0: none.",
    )

    # Embedding providers (app/embeddings/).
    embed_batch_size: int = Field(default=64, ge=1, le=2048, description="Texts per embedding call.")
    local_model_dir: Path | None = Field(
        default=None,
        description="Directory with model.onnx and tokenizer.json for the local provider; unset: bundled MiniLM.",
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API base URL (vLLM, Ollama...); unset: api.openai.com."
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="API key for the openai provider; falls back to OPENAI_API_KEY."
    )
    openai_timeout_seconds: float = Field(default=60.0, gt=0, description="Timeout of one OpenAI request.")
    openai_max_retries: int = Field(default=5, ge=0, description="Retries on 429 and 5xx, honouring Retry-After.")

    @field_validator("allowed_hosts", "cors_origins", "read_database_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Lists are read from the environment as comma-separated text."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Accept the URL people copy from psql and point SQLAlchemy at psycopg 3."""
        if not value:
            return None
        try:
            return sqlalchemy_url(value)
        except ValueError:
            raise ValueError("must be a postgresql:// URL") from None

    @field_validator("read_database_urls")
    @classmethod
    def _psycopg_drivers(cls, value: list[str]) -> list[str]:
        try:
            return [sqlalchemy_url(url) for url in value]
        except ValueError:
            raise ValueError("must be postgresql:// URLs, separated by commas") from None

    @field_validator("db_schema")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        try:
            return check_schema(value)
        except ValueError:
            raise ValueError("must be a lower-case SQL identifier (letters, digits, underscore)") from None

    @property
    def embedded(self) -> bool:
        """True when Memora runs its own PostgreSQL rather than one named by database_url."""
        return self.database_url is None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
