"""Uploaded files to document text: format detection, each format, and the errors a user sees."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from app.errors import InvalidInputError, UnreadableFileError, UnsupportedMediaTypeError
from app.ingest.parsing import CONTENT_TYPES, html_to_text, parse_file

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ingest"


def pdf_bytes(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (ASCII without parentheses)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def encrypted(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def only(filename: str, data: bytes, content_type: str | None = None) -> tuple[str, str, str | None]:
    [document] = parse_file(filename, data, content_type)
    return document.content, document.content_type, document.title


# Format detection


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("notes.txt", None, "text/plain"),
        ("NOTES.TEXT", None, "text/plain"),
        ("guide.md", None, "text/markdown"),
        ("guide.Markdown", None, "text/markdown"),
        ("page.htm", None, "text/html"),
        ("guide.md", "text/html", "text/markdown"),  # the extension wins
        ("README", "text/markdown; charset=utf-8", "text/markdown"),
        ("upload", "text/plain", "text/plain"),
        ("page.php", "text/html", "text/html"),
    ],
)
def test_format_comes_from_the_extension_then_the_content_type(
    filename: str, content_type: str | None, expected: str
) -> None:
    assert only(filename, b"<p>Some text</p>", content_type)[1] == expected


@pytest.mark.parametrize(
    ("filename", "content_type", "mentions"),
    [
        ("data.csv", None, "'.csv'"),
        ("README", None, "no extension"),
        ("image.png", "image/png", "'image/png'"),
        ("blob", "application/octet-stream", "'application/octet-stream'"),
    ],
)
def test_unknown_formats_are_415_naming_the_file(filename: str, content_type: str | None, mentions: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        parse_file(filename, b"a,b\n1,2\n", content_type)
    assert caught.value.status == 415
    assert caught.value.code == "unsupported_media_type"
    assert filename in caught.value.message
    assert mentions in caught.value.message


def test_error_classes() -> None:
    error = UnreadableFileError("x")
    assert isinstance(error, InvalidInputError)
    assert (error.status, error.code) == (422, "unreadable_file")


# Plain text and Markdown


def test_plain_text_fixture() -> None:
    [document] = parse_file("sample.txt", (FIXTURES / "sample.txt").read_bytes())
    assert document.content == (FIXTURES / "sample.txt").read_text()
    assert (document.content_type, document.title, document.external_id, document.metadata) == (
        "text/plain",
        None,
        None,
        {},
    )


def test_text_drops_a_bom_and_normalises_line_endings() -> None:
    content, _, _ = only("a.txt", "\ufeffone\r\ntwo\rthree\n".encode())
    assert content == "one\ntwo\nthree\n"


def test_invalid_utf8_names_the_file_and_the_offset() -> None:
    with pytest.raises(UnreadableFileError, match=r"latin\.txt is not UTF-8 text: byte 0xe9 at offset 3"):
        parse_file("latin.txt", "caf\u00e9".encode("latin-1"))


def test_nul_bytes_are_refused() -> None:
    with pytest.raises(UnreadableFileError, match=r"blob\.txt contains NUL"):
        parse_file("blob.txt", b"abc\x00def")


@pytest.mark.parametrize("filename", ["empty.txt", "blank.md", "blank.html", "empty.jsonl"])
def test_empty_files_have_no_text(filename: str) -> None:
    data = b"  \n\t\n" if not filename.endswith(".html") else b"<html><script>x()</script><p> </p></html>"
    with pytest.raises(InvalidInputError, match=f"{filename} has no text") as caught:
        parse_file(filename, data)
    assert caught.value.status == 422


def test_markdown_keeps_its_text_and_takes_the_first_h1_outside_code() -> None:
    data = (FIXTURES / "sample.md").read_bytes()
    content, content_type, title = only("sample.md", data)
    assert content == data.decode()
    assert (content_type, title) == ("text/markdown", "Memora guide")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("## Only a subheading\n\ntext", None),
        ("   # Indented title #\n", "Indented title"),
        ("#hashtag is not a heading\n# Real", "Real"),
        ("    # indented code, not a heading\n", None),
        ("~~~\n# in code\n~~~\n# After code", "After code"),
        ("```\n# never closed\n", None),
    ],
)
def test_markdown_title(text: str, title: str | None) -> None:
    assert only("a.md", text.encode())[2] == title


# HTML


def test_html_fixture_keeps_visible_text_only() -> None:
    content, content_type, title = only("sample.html", (FIXTURES / "sample.html").read_bytes())
    assert content_type == "text/html"
    assert title == "Memora & friends"
    assert content.split("\n\n") == [
        "Home | Docs",
        "Welcome to Memora",
        "Documents, chunks and embeddings live in Postgres.",
        "First line\nSecond line",
        'def hello():\n    return "world"',
        "cell one cell two",
        "Alpha",
        "Beta",
    ]
    for hidden in ("script text", "color", "JavaScript", "Template text", "SVG title", "late script", "comment"):
        assert hidden not in content


def test_html_title_falls_back_to_the_first_h1() -> None:
    assert html_to_text("<body><h1>Big <i>title</i></h1><h1>Second</h1><p>x</p>") == (
        "Big title\n\nSecond\n\nx",
        "Big title",
    )
    assert html_to_text("<p>no title</p>") == ("no title", None)


def test_html_body_closes_an_unclosed_head() -> None:
    assert html_to_text("<head><title>T</title><meta charset=utf-8><body><p>Visible</p>") == ("Visible", "T")


def test_html_in_a_declared_charset() -> None:
    data = '<meta charset="windows-1252"><p>caf\u00e9 \u2014 ok</p>'.encode("cp1252")
    assert only("old.html", data)[0] == "caf\u00e9 \u2014 ok"


# PDF


def test_pdf_fixture_joins_pages_with_form_feeds() -> None:
    [document] = parse_file("sample.pdf", (FIXTURES / "sample.pdf").read_bytes())
    assert document.content == "Memora keeps documents in PostgreSQL.\fPage two talks about embeddings."
    assert (document.content_type, document.title, document.metadata) == (
        "application/pdf",
        "Memora sample",
        {"pages": 2},
    )


def test_pdf_fixture_is_what_the_helper_builds() -> None:
    expected = pdf_bytes(["Memora keeps documents in PostgreSQL.", "Page two talks about embeddings."], "Memora sample")
    assert (FIXTURES / "sample.pdf").read_bytes() == expected


def test_pdf_blank_pages_keep_their_place() -> None:
    [document] = parse_file("gaps.pdf", pdf_bytes(["one", "", "three"]))
    assert document.content == "one\f\fthree"
    assert (document.title, document.metadata) == (None, {"pages": 3})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ((FIXTURES / "corrupt.pdf").read_bytes(), "is damaged or not a PDF"),
        (b"", "is damaged or not a PDF"),
        (b"hello, I am text", "is damaged or not a PDF"),
        (encrypted(pdf_bytes(["secret text"]), "pw"), "is an encrypted PDF"),
        (pdf_bytes(["", ""]), "has no extractable text on its 2 pages"),
    ],
    ids=["corrupt", "empty", "text", "encrypted", "no-text"],
)
def test_unreadable_pdfs(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFileError, match=f"^file\\.pdf {reason}"):
        parse_file("file.pdf", data)


def test_pdf_with_only_an_owner_password_is_read() -> None:
    assert only("open.pdf", encrypted(pdf_bytes(["readable"]), ""))[0] == "readable"


# JSON Lines


def test_jsonl_fixture() -> None:
    documents = parse_file("docs.jsonl", (FIXTURES / "docs.jsonl").read_bytes())
    assert [(d.external_id, d.title, d.content_type, d.content, d.metadata) for d in documents] == [
        ("doc1", "Postgres", "text/plain", "PostgreSQL is a relational database.", {}),
        ("doc2", None, "text/plain", "pgvector adds vector similarity search to PostgreSQL.", {}),
        ("guide", "Guide", "text/markdown", "# Guide\n\nRead this first.", {"lang": "en"}),
        ("42", None, "text/plain", "A line whose id is a number.", {}),
        (None, "Page", "text/html", "Hello web", {}),
    ]
    assert {d.content_type for d in documents} <= set(CONTENT_TYPES)


def test_jsonl_by_content_type() -> None:
    [document] = parse_file("export", b'{"text": "x"}\n', "application/x-ndjson")
    assert document.content == "x"


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("{not json", "line", "not valid JSON"),
        ('["a list"]', "line", "must be a JSON object"),
        ('{"title": "t"}', "text", "missing"),
        ('{"content": 5}', "content", "must be a string"),
        ('{"text": "  "}', "text", "has no text"),
        ('{"content": "<script>x</script>", "content_type": "text/html"}', "content", "has no text"),
        ('{"text": "x", "title": 3}', "title", "must be a string"),
        ('{"text": "x", "metadata": [1]}', "metadata", "must be an object"),
        ('{"text": "x", "content_type": "image/png"}', "content_type", "must be one of"),
        ('{"text": "x", "_id": true}', "_id", "must be a non-empty string"),
        ('{"text": "x", "external_id": ""}', "external_id", "must be a non-empty string"),
        ('{"text": "a\\u0000b"}', "text", "NUL"),
        ('{"text": "x", "metadata": {"k": "\\ud800"}}', "metadata", "unpaired surrogate"),
        ('{"_id": "doc1", "text": "again"}', "external_id", "repeats line 1"),
    ],
)
def test_a_bad_jsonl_line_names_its_number_and_field(line: str, field: str, reason: str) -> None:
    data = json.dumps({"_id": "doc1", "text": "fine"}) + "\n\n" + line + "\n"
    with pytest.raises(UnreadableFileError) as caught:
        parse_file("corpus.jsonl", data.encode())
    assert caught.value.message.startswith(f"corpus.jsonl line 3: {field}: ")
    assert reason in caught.value.message
    assert caught.value.details == [
        {"file": "corpus.jsonl", "line": 3, "field": field, "reason": caught.value.details[0]["reason"]}
    ]
    assert reason in caught.value.details[0]["reason"]
