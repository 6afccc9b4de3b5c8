"""`memora ask`: the streamed answer and its sources on stdout, against the loopback OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.api.main import create_app
from app.cli import answer
from app.cli.answer import ask
from app.config import Settings
from app.db import engine as db_engine
from app.db.engine import make_engine
from app.embeddings.hashing import HashingEmbedder
from app.errors import ChatProviderError, InvalidInputError
from tests.openai_server import OpenAIServer, Request, Response

CHAT = "/v1/chat/completions"
QUESTION = "What does the aardvark eat?"
PARAGRAPHS = {
    "aardvark": ["The aardvark is a nocturnal burrowing mammal.", "It eats ants and termites at night."],
    "markets": ["Stock markets fell sharply today after a central bank raised interest rates."],
}


@pytest.fixture
def setup(fresh_db_url: str, openai_server: OpenAIServer) -> Iterator[tuple[Settings, Engine]]:
    """Settings that point at the loopback server, and an engine on a database whose collection kb is committed."""
    settings = Settings(
        database_url=fresh_db_url, openai_base_url=openai_server.base_url, openai_api_key=SecretStr("sk-cli"),
        openai_max_retries=0, openai_timeout_seconds=10.0,
    )  # fmt: skip
    engine = make_engine(settings, "cli")
    embedder = HashingEmbedder(256)
    docs = [
        {"external_id": name, "title": name.title(), "content": "\n\n".join(texts),
         "chunks": [{"text": t, "embedding": v.tolist()} for t, v in zip(texts, embedder.embed(texts), strict=True)]}
        for name, texts in PARAGRAPHS.items()
    ]  # fmt: skip
    try:
        with TestClient(create_app(settings, engine=engine)) as api:
            created = api.post(
                "/v1/collections", json={"name": "kb", "embedding_provider": "hashing", "dimensions": 256}
            )
            assert created.status_code == 201, created.text
            stored = api.post("/v1/collections/kb/documents", json=docs).json()
            assert [doc["status"] for doc in stored["documents"]] == ["ready", "ready"]
        yield settings, engine
    finally:
        engine.dispose()


def test_ask_prints_the_streamed_answer_then_its_sources(
    setup: tuple[Settings, Engine], openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.chat.reply("Aardvarks eat ants and termites [1].")

    response = ask(*setup, "kb", QUESTION)

    out, err = capsys.readouterr()
    answer, sources = out.split("\n\nSources:\n")
    assert answer == "Aardvarks eat ants and termites [1]."
    lines = sources.splitlines()
    assert len(lines) == len(response.sources) == 2
    first = response.sources[0]
    where = f"chunk {first.chunk_id}, chars {first.char_start}-{first.char_end}"
    assert lines[0] == f"[1]* {first.external_id}  {where}  {first.title}"
    assert lines[1].startswith("[2]  aardvark")
    assert response.citations == [1]
    assert f"gpt-4o-mini: {response.usage.context_tokens} context tokens; prompt " in err
    (sent,) = [request.json() for request in openai_server.requests_to(CHAT)]
    assert sent["stream"] is True


def test_options_reach_the_request(
    setup: tuple[Settings, Engine], openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    response = ask(
        *setup, "kb", QUESTION, k=1, mode="text", model="gpt-4o", temperature=0.5, min_score=-1,
        system_prompt="Be brief; cite [n].", filter_json='{"document.external_id": "aardvark"}',
    )  # fmt: skip

    (sent,) = [request.json() for request in openai_server.requests_to(CHAT)]
    assert (sent["model"], sent["temperature"]) == ("gpt-4o", 0.5)
    assert sent["messages"][0]["content"] == "Be brief; cite [n]."
    assert [source.external_id for source in response.sources] == ["aardvark"]
    assert response.min_score == -1
    assert capsys.readouterr().out.startswith("The sources answer this [1].\n")


def test_without_relevant_sources_the_model_is_not_asked(
    setup: tuple[Settings, Engine], openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    response = ask(*setup, "kb", "Mount Everest height in meters?")

    assert response.answer is None
    assert capsys.readouterr().out == (
        "No relevant sources in kb: none of the 3 chunks found reached min_score 0.25; the model was not asked.\n"
    )
    assert openai_server.requests_to(CHAT) == []


def test_a_failure_mid_answer_raises_after_the_text_so_far(
    setup: tuple[Settings, Engine], openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_server.chat.reply("one two three four [1]")
    openai_server.chat.fail_mid_stream(after=2, how="drop")

    with pytest.raises(ChatProviderError, match="failed mid-answer"):
        ask(*setup, "kb", QUESTION)

    assert capsys.readouterr().out == "one two \n"


def test_bad_options_name_the_option(setup: tuple[Settings, Engine]) -> None:
    with pytest.raises(InvalidInputError, match="--max-context-tokens"):
        ask(*setup, "kb", QUESTION, max_context_tokens=0)
    with pytest.raises(InvalidInputError, match="--filter: not JSON"):
        ask(*setup, "kb", QUESTION, filter_json="{team: hr}")
    with pytest.raises(InvalidInputError, match="QUESTION"):
        ask(*setup, "kb", "  ")


def cli_with_ask(settings: Settings) -> typer.Typer:
    """A `memora`-like app whose root callback sets the settings, with `ask` added as app/cli/__init__.py adds it."""
    cli = typer.Typer()

    @cli.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = settings

    cli.add_typer(answer.cli)
    return cli


def test_the_ask_command(
    setup: tuple[Settings, Engine], openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, engine = setup
    monkeypatch.setattr(db_engine, "make_engine", lambda *args, **kwargs: engine)
    openai_server.chat.reply("Ants [1].")
    cli = cli_with_ask(settings)

    result = CliRunner().invoke(cli, ["ask", "kb", QUESTION, "-k", "1"], env={"MEMORA_ASK_MODE": "text"})

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Ants [1].\n\nSources:\n[1]* aardvark")
    assert "[2]" not in result.stdout
    command = typer.main.get_command(cli).commands["ask"]  # type: ignore[attr-defined]
    options: list[Any] = [param for param in command.params if param.param_type_name == "option"]
    assert len(options) == 10
    for option in options:
        assert str(option.envvar).startswith("MEMORA_"), option.name
        assert option.show_default, option.name


def test_rerank_options_rerank_the_chunks_before_the_model_sees_them(
    setup: tuple[Settings, Engine], openai_server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def reverse(request: Request) -> Response:
        documents = request.json()["documents"]
        scored = [{"index": i, "relevance_score": float(i)} for i in range(len(documents))]  # the last first
        return Response(body={"results": sorted(scored, key=lambda r: -r["relevance_score"])})

    openai_server.route("POST", "/v1/rerank", reverse)
    plain = ask(*setup, "kb", QUESTION, min_score=-1)
    reranked = ask(*setup, "kb", QUESTION, min_score=-1, rerank_model="reverse-ranker", rerank_top_n=10)

    (sent,) = [request.json() for request in openai_server.requests_to("/v1/rerank")]
    assert sent["model"] == "reverse-ranker"
    assert sent["top_n"] == len(sent["documents"]) == len(plain.sources)  # all retrieved chunks, at most 10
    assert [s.chunk_id for s in reranked.sources] == [s.chunk_id for s in reversed(plain.sources)]
