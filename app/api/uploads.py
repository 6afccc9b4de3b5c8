"""Files uploaded in a multipart body, read into documents: shared by the API and the console's upload."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.errors import AppError, InvalidInputError, PayloadTooLargeError
from app.ingest.parsing import parse_file
from app.ingest.schemas import UploadResult
from app.ingest.service import DocumentInput


async def from_files(request: Request, limit: int) -> tuple[list[DocumentInput], list[UploadResult]]:
    """The documents in a multipart body's files, and the files that could not be read (each with its error). A
    file over LIMIT is a 413 for the whole request; no file at all is a 422 naming `files`."""
    async with request.form(max_files=10_000, max_part_size=limit) as form:
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise InvalidInputError.for_field("files", "the multipart body holds no file")
        for upload in uploads:
            if upload.size is not None and upload.size > limit:
                raise PayloadTooLargeError(f"{upload.filename}: {upload.size} bytes exceeds the limit of {limit}")
        files = [(upload.filename or "upload", await upload.read(), upload.content_type) for upload in uploads]
    inputs: list[DocumentInput] = []
    failures: list[UploadResult] = []
    for filename, data, content_type in files:
        try:
            if len(data) > limit:
                raise PayloadTooLargeError(f"{filename}: {len(data)} bytes exceeds the limit of {limit}")
            parsed = await run_in_threadpool(parse_file, filename, data, content_type)
        except AppError as exc:
            failures.append(UploadResult(file=filename, error={"status": exc.status, **exc.to_dict()["error"]}))
            continue
        for i, doc in enumerate(parsed):
            external_id = doc.external_id or (filename if len(parsed) == 1 else f"{filename}#{i + 1}")
            inputs.append(
                DocumentInput(
                    content=doc.content,
                    external_id=external_id,
                    title=doc.title,
                    content_type=doc.content_type,
                    metadata=doc.metadata,
                    source=filename,
                )
            )
    return inputs, failures
