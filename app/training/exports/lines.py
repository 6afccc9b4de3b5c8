"""The lines of the JSONL and CSV exports that Python writes, and the blocks they travel in."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from app.training.formats import records

if TYPE_CHECKING:
    from app.training.exports.schemas import Options

CHAT_KEYS = ("tools", "parallel_tool_calls", "functions")  # what a chat example carries besides its messages
CHUNK_BYTES = 256 * 1024

Progress = Callable[[int], None]


def groups(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for row in rows:
        group.append(row)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def blocks(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Lines gathered into blocks of about CHUNK_BYTES: fewer writes, fewer trips through the response."""
    block: list[bytes] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield b"".join(block)
            block, size = [], 0
    if block:
        yield b"".join(block)


def chat_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """{"messages": records.training_messages(row)}, with a chat example's tools, parallel_tool_calls, functions."""
    line: dict[str, Any] = {"messages": records.training_messages(row)}
    if row["format"] == "chat":
        for key in CHAT_KEYS:
            if row["input"].get(key) is not None:
                line[key] = row["input"][key]
    return line


def chat_line(row: Mapping[str, Any]) -> str:
    """The openai-chat line of an example."""
    return json.dumps(chat_object(row), ensure_ascii=False)


def record_line(row: Mapping[str, Any]) -> str:
    """The jsonl line of an example: its record as records.to_record gives it, what the importer takes."""
    return json.dumps(records.to_record(row), ensure_ascii=False)


def csv_lines(rows: Iterator[dict[str, Any]], tick: Progress) -> Iterator[bytes]:
    """text,label; a multi-label example's labels joined by "|"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("text", "label"))
    done = 0
    for row in rows:
        labels = row["labels"]
        writer.writerow((row["input"]["text"], "|".join(labels) if labels is not None else row["label"]))
        done += 1
        if done == 1000:
            tick(done)
            done = 0
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    tick(done)
    yield buffer.getvalue().encode()


def batch_lines(rows: Iterator[dict[str, Any]], dataset: str, options: Options, tick: Progress) -> Iterator[bytes]:
    """Batch API requests: chat completions of each conversation without its final (assistant) turn, or the
    embedding of each example's text."""
    done = 0
    for row in rows:
        if options.kind == "chat":
            chat = chat_object(row)
            messages = chat.pop("messages")
            if messages and messages[-1].get("role") == "assistant":
                messages = messages[:-1]
            # weight is a fine-tuning key; Chat Completions does not take it.
            body = {"model": options.model, "messages": [_without_weight(m) for m in messages], **chat}
            url = "/v1/chat/completions"
        else:
            body = {"model": options.model, "input": records.example_text(row)}
            url = "/v1/embeddings"
        request = {"custom_id": f"{dataset}-{row['id']}", "method": "POST", "url": url, "body": body}
        yield json.dumps(request, ensure_ascii=False).encode() + b"\n"
        done += 1
        if done == 1000:
            tick(done)
            done = 0
    tick(done)


def _without_weight(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "weight"}
