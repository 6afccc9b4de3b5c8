"""Uploaded files to document text: plain text, Markdown, HTML, PDF and JSON Lines."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from pypdf import PdfReader

from app.db.models import CONTENT_TYPES  # one list, also behind the table's CHECK
from app.db.storable import unstorable
from app.errors import InvalidInputError, UnreadableFileError, UnsupportedMediaTypeError
from app.ingest.chunking import markdown_headings


@dataclass(frozen=True)
class ParsedDocument:
    """One document read from a file, ready to store."""

    content: str
    content_type: str
    title: str | None
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _decode(filename: str, data: bytes, encoding: str = "utf-8-sig") -> str:
    """Text with a BOM dropped and line endings made \\n; PostgreSQL cannot store NUL characters."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFileError.about_file(
            filename,
            f"is not {encoding.removesuffix('-sig').upper()} text: byte 0x{data[exc.start]:02x} "
            f"at offset {exc.start} cannot be decoded",
            offset=exc.start,
        ) from None
    if "\x00" in text:
        raise UnreadableFileError.about_file(filename, "contains NUL characters; is it a binary file?")
    return _newlines(text)


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _has_text(filename: str, content: str) -> str:
    if not content.strip():
        raise InvalidInputError.about_file(filename, "has no text")
    return content


def _markdown_title(content: str) -> str | None:
    return next((h.title for h in markdown_headings(content) if h.level == 1), None)


def _text(filename: str, data: bytes) -> list[ParsedDocument]:
    return [ParsedDocument(_has_text(filename, _decode(filename, data)), "text/plain", None)]


def _markdown(filename: str, data: bytes) -> list[ParsedDocument]:
    content = _has_text(filename, _decode(filename, data))
    return [ParsedDocument(content, "text/markdown", _markdown_title(content))]


_SKIPPED = frozenset({"head", "script", "style", "noscript", "template", "svg"})
_BLOCKS = frozenset(
    {"address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "dialog", "div", "dl"}
    | {"dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header"}
    | {"hgroup", "hr", "html", "legend", "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary"}
    | {"table", "tbody", "tfoot", "thead", "tr", "ul"}
)
_CELLS = frozenset({"td", "th"})


class _HtmlText(HTMLParser):
    """Visible text: block elements become paragraphs, whitespace inside a paragraph collapses (except in <pre>)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.title: str | None = None
        self.first_h1: str | None = None
        self._parts: list[str | None] = []  # None is a <br>
        self._skipping: list[str] = []
        self._pre = 0
        self._title: list[str] | None = None
        self._h1: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self._skipping:  # <body> closes an unclosed <head>
            del self._skipping[self._skipping.index("head") :]
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag == "title" and set(self._skipping) <= {"head"}:
            self._title = []
        elif self._skipping:
            return
        elif tag == "br":
            self._parts.append(None)
        elif tag in _CELLS:
            self._parts.append(" ")
        elif tag in _BLOCKS:
            self._flush()
            if tag == "pre":
                self._pre += 1
            if tag == "h1" and self.first_h1 is None:
                self._h1 = []

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self._skipping:
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
        elif tag == "title" and self._title is not None:
            self.title = self.title or _collapse("".join(self._title)) or None
            self._title = None
        elif not self._skipping and tag in _BLOCKS:
            if tag == "h1" and self._h1 is not None:
                self.first_h1, self._h1 = _collapse("".join(self._h1)) or None, None
            self._flush()
            if tag == "pre" and self._pre:
                self._pre -= 1

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        elif not self._skipping:
            self._parts.append(data)
            if self._h1 is not None:
                self._h1.append(data)

    def _flush(self) -> None:
        if self._pre:
            text = "".join("\n" if part is None else part for part in self._parts).strip("\n").rstrip()
        else:
            lines = "".join("\n" if part is None else part.replace("\n", " ") for part in self._parts).split("\n")
            text = "\n".join(line for line in map(_collapse, lines) if line)
        if text.strip():
            self.paragraphs.append(text)
        self._parts = []

    def close(self) -> None:
        super().close()
        self._flush()


def _collapse(text: str) -> str:
    return " ".join(text.split())


def html_to_text(html: str) -> tuple[str, str | None]:
    """The visible text of an HTML page and its title (<title>, else the first <h1>)."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return _newlines("\n\n".join(parser.paragraphs)), parser.title or parser.first_h1


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.IGNORECASE)


def _html(filename: str, data: bytes) -> list[ParsedDocument]:
    try:
        markup = _decode(filename, data)
    except UnreadableFileError:
        declared = _META_CHARSET.search(data[:2048])
        if declared is None or declared[1].decode().lower().replace("_", "-") in ("utf-8", "utf8"):
            raise
        try:
            markup = _decode(filename, data, declared[1].decode())
        except LookupError:
            raise UnreadableFileError.about_file(
                filename, f"declares an unknown charset {declared[1].decode()!r}"
            ) from None
    content, title = html_to_text(markup)
    return [ParsedDocument(_has_text(filename, content), "text/html", title)]


def _pdf(filename: str, data: bytes) -> list[ParsedDocument]:
    def unreadable(reason: str) -> UnreadableFileError:
        return UnreadableFileError.about_file(filename, reason)

    try:
        reader = PdfReader(io.BytesIO(data))
        # An owner password alone does not stop anyone reading, so try the empty user password.
        if reader.is_encrypted and not _decrypts(reader):
            raise unreadable("is an encrypted PDF; remove its password and upload it again")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata is not None else None
    except UnreadableFileError:
        raise
    except Exception as exc:  # pypdf raises many kinds of error on a damaged file
        raise unreadable(f"is damaged or not a PDF: {str(exc) or type(exc).__name__}") from exc
    # The chunker counts form feeds to tell pages apart, so none may come from inside a page.
    texts = [_newlines(text).replace("\x00", "").replace("\f", "\n").strip() for text in pages]
    if not any(texts):
        raise unreadable(f"has no extractable text on its {len(texts)} pages (scanned pages need OCR first)")
    title = title.strip() if isinstance(title, str) else None
    return [ParsedDocument("\f".join(texts), "application/pdf", title or None, metadata={"pages": len(texts)})]


def _decrypts(reader: PdfReader) -> bool:
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. AES without the optional cryptography package
        return False


_ID_KEYS = ("external_id", "_id", "id")


def _jsonl(filename: str, data: bytes) -> list[ParsedDocument]:
    documents: list[ParsedDocument] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_decode(filename, data).split("\n"), start=1):
        if line.strip():
            document = _jsonl_line(filename, number, line)
            if document.external_id is not None:
                if document.external_id in seen:
                    raise UnreadableFileError.at_line(
                        filename, number, f"repeats line {seen[document.external_id]}", field="external_id"
                    )
                seen[document.external_id] = number
            documents.append(document)
    if not documents:
        raise InvalidInputError.about_file(filename, "has no text")
    return documents


def _jsonl_line(filename: str, number: int, line: str) -> ParsedDocument:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UnreadableFileError.at_line(
            filename, number, f"not valid JSON ({exc.msg} at column {exc.colno})", field="line"
        ) from None
    except RecursionError:
        raise UnreadableFileError.at_line(filename, number, "JSON nested too deeply to parse", field="line") from None
    if not isinstance(item, dict):
        raise UnreadableFileError.at_line(filename, number, "must be a JSON object", field="line")
    key = "content" if "content" in item else "text"
    content = item.get(key)
    if not isinstance(content, str):
        raise UnreadableFileError.at_line(
            filename, number, "must be a string" if key in item else "missing (give content or text)", field=key
        )
    content_type = item.get("content_type") or "text/plain"
    if content_type not in CONTENT_TYPES:
        raise UnreadableFileError.at_line(
            filename, number, f"must be one of {', '.join(CONTENT_TYPES)}", field="content_type"
        )
    title = item.get("title")
    if title is not None and not isinstance(title, str):
        raise UnreadableFileError.at_line(filename, number, "must be a string", field="title")
    id_key = next((k for k in _ID_KEYS if item.get(k) is not None), "external_id")
    external_id = item.get(id_key)
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if external_id is not None and (not isinstance(external_id, str) or not external_id.strip()):
        raise UnreadableFileError.at_line(filename, number, "must be a non-empty string", field=id_key)
    metadata = item.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise UnreadableFileError.at_line(filename, number, "must be an object", field="metadata")
    for name, value in (("content", content), ("title", title), ("metadata", metadata)):
        if reason := unstorable(value):
            raise UnreadableFileError.at_line(filename, number, reason, field=key if name == "content" else name)

    content = _newlines(content)
    if content_type == "text/html":
        content, html_title = html_to_text(content)
        title = title or html_title
    elif content_type == "text/markdown":
        title = title or _markdown_title(content)
    if not content.strip():
        raise UnreadableFileError.at_line(filename, number, "has no text", field=key)
    return ParsedDocument(content, content_type, title or None, external_id, metadata or {})


_Parser = Callable[[str, bytes], list[ParsedDocument]]
_BY_EXTENSION: dict[str, _Parser] = {
    ".txt": _text,
    ".text": _text,
    ".md": _markdown,
    ".markdown": _markdown,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
    ".jsonl": _jsonl,
    ".ndjson": _jsonl,
}
_BY_MEDIA_TYPE: dict[str, _Parser] = {
    "text/plain": _text,
    "text/markdown": _markdown,
    "text/x-markdown": _markdown,
    "text/html": _html,
    "application/xhtml+xml": _html,
    "application/pdf": _pdf,
    "application/jsonl": _jsonl,
    "application/x-jsonlines": _jsonl,
    "application/x-ndjson": _jsonl,
    "application/ndjson": _jsonl,
}


def parse_file(filename: str, data: bytes, content_type: str | None = None) -> list[ParsedDocument]:
    """The documents in one file; the format comes from the file name's extension, else from CONTENT_TYPE."""
    extension = PurePath(filename).suffix.lower()
    media_type = (content_type or "").split(";")[0].strip().lower()
    parser = _BY_EXTENSION.get(extension) or _BY_MEDIA_TYPE.get(media_type)
    if parser is None:
        found = ", ".join(
            [f"extension {extension!r}" if extension else "no extension"]
            + ([f"content type {media_type!r}"] if media_type else [])
        )
        raise UnsupportedMediaTypeError(
            f"{filename}: unsupported file type ({found}); send .txt, .md, .html, .pdf or .jsonl",
            details=[{"file": filename, "reason": "unsupported file type", "content_type": content_type}],
        )
    return parser(filename, data)
