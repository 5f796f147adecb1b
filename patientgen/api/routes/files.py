"""Outputs of a job: the file list, single-file downloads (ETag, Range), the ZIP.

A file is served only if its name is in the job's `output_files` (so no name from the request ever
becomes a path by itself), and its resolved path must lie inside the job's folder.

With object storage (jobs/files.py) a file this host has no whole copy of is streamed from the
bucket (a Range passed on as a ranged GET), or redirected to a presigned URL where the settings
ask for it; the archive and the patient pages read the host's copy, fetched once. A copy is
held (jobs/files.py, `reading`) from before it is read until the response is sent, or the
archive's members are open, so no sweep removes it under the reader.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from patientgen.api.archive import MissingMember, open_members, zip_stream
from patientgen.api.auth import Principal, principal
from patientgen.api.common import (
    file_entry,
    get_job,
    json_response,
    output_entries,
    problem_responses,
    status_name,
)
from patientgen.api.limits import CappedStreamingResponse
from patientgen.api.problems import Problem
from patientgen.api.schemas import FileListOut
from patientgen.formats.bundle.layout import SUMMARY_FILE
from patientgen.jobs.model import OutputReplaced

router = APIRouter(tags=["outputs"])
_JSON_LIKE = {".json": "application/json", ".ndjson": "application/x-ndjson"}


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILE_CONTENT: dict[str, Any] = {
    "application/json": {"schema": {}},
    "application/fhir+json": {"schema": {}},
} | {
    media: _BINARY
    for media in (
        "application/x-ndjson",
        "text/csv",
        "application/pdf",
        "application/fhir+ndjson",
        "application/octet-stream",
        "multipart/byteranges",
    )
}


def content_type(name: str, fmt: str) -> str:
    suffix = Path(name).suffix.lower()
    if fmt in ("fhir", "fhir-bundle"):
        if suffix == ".ndjson":
            return "application/fhir+ndjson"
        if suffix == ".json":
            return "application/fhir+json"
    if suffix == ".csv":
        return "text/csv; charset=utf-8"
    if fmt == "hl7":
        return "application/hl7-v2; charset=utf-8"
    if suffix == ".pdf":
        return "application/pdf"
    if suffix in _JSON_LIKE:
        return _JSON_LIKE[suffix]
    return "application/octet-stream"


def completed(job: Any) -> None:
    if status_name(job.status) != "completed":
        raise Problem(
            409,
            "not-ready",
            f"The job is {status_name(job.status)}; its outputs exist once it is completed.",
        )


def entries(job: Any) -> list[dict[str, Any]]:
    return [item if isinstance(item, dict) else dict(vars(item)) for item in output_entries(job)]


@contextlib.asynccontextmanager
async def reading_dir(
    service: Any, job: Any, names: Sequence[str] | None = None
) -> AsyncIterator[Path]:
    """The folder the completed job's files (`names`, default all) are read from on this host
    (its own folder unless `generate --out` chose one; with object storage, a copy fetched from
    the bucket the first time), kept there until the block ends."""
    with contextlib.ExitStack() as held:
        try:
            folder = await _enter(held, service.files, service.files.reading(job, names))
        except OutputReplaced:
            raise  # its own answer (api/problems.py)
        except FileNotFoundError:
            raise Problem(404, "not-found", "The job's files are no longer stored.") from None
        yield Path(folder)


async def _enter(held: contextlib.ExitStack, files: Any, manager: Any) -> Any:
    """`manager` (one of `files`' reading contexts) entered into `held`: in a thread where it may
    fetch a copy or wait for a sweep's move (object storage), else here (nothing to wait for)."""
    if not files.cached:
        return held.enter_context(manager)
    return await anyio.to_thread.run_sync(held.enter_context, manager)


def _safe_path(job_dir: Path, name: str) -> Path:
    root = job_dir.resolve()
    path = (root / name).resolve()
    if root != path and root not in path.parents:
        raise Problem(404, "not-found", "No such file.")
    return path


class _File(FileResponse):
    """FileResponse that can be told to ignore the Range header (`_honoured_ranges` decides),
    keeping the job's folder held (`held`, from `JobFiles.reading_here`) until it is sent."""

    ignore_range = False
    held: contextlib.ExitStack | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            if self.ignore_range:
                scope = dict(scope)
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"range"]
            await super().__call__(scope, receive, send)
        finally:
            if self.held is not None:
                self.held.close()


@router.get(
    "/jobs/{job_id}/files",
    response_model=FileListOut,
    summary="List a job's output files",
    responses=problem_responses(401, 404, 422, 503),
)
async def list_files(request: Request, job_id: UUID, who: Principal = Depends(principal)):
    """Names, formats, sizes, sha256 and download URLs (empty until the job is completed)."""
    job = await get_job(request, job_id, who.scope)
    prefix = request.app.state.api_prefix
    return json_response(
        {"items": [file_entry(prefix, str(job.job_id), f) for f in output_entries(job)]}
    )


@router.head("/jobs/{job_id}/files/{name:path}", include_in_schema=False)
@router.get(
    "/jobs/{job_id}/files/{name:path}",
    summary="Download one output file",
    response_class=FileResponse,
    responses={
        200: {"description": "The file; `ETag` is its sha256.", "content": _FILE_CONTENT},
        206: {"description": "The requested byte range.", "content": _FILE_CONTENT},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses(401, 404, 416, 422, 503),
    },
)
async def download_file(
    request: Request, job_id: UUID, name: str, who: Principal = Depends(principal)
) -> Response:
    """Streams the file with its content type; supports `Range` (206/416), `If-Range` and
    `If-None-Match`."""
    job = await get_job(request, job_id, who.scope)
    return await _serve(request, job, name, download=True)


@router.head("/jobs/{job_id}/summary", include_in_schema=False)
@router.get(
    "/jobs/{job_id}/summary",
    summary="Get a job's whole summary (summary.json)",
    responses={
        200: {
            "description": "summary.json; `ETag` is its sha256.",
            "content": {"application/json": {"schema": {}}},
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses(401, 404, 409, 422, 503),
    },
)
async def read_summary(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> Response:
    """summary.json of a completed job: its summary with the care chain's per-hour series
    (`care_chain.simulation.hourly`, every unit's occupancy and queue for every hour), which
    the job document leaves out. Served by the API itself, never redirected to object storage
    (the web page reads it), with `ETag` and `If-None-Match`."""
    job = await get_job(request, job_id, who.scope)
    completed(job)
    return await _serve(request, job, SUMMARY_FILE, download=False)


async def _serve(request: Request, job: Any, name: str, *, download: bool) -> Response:
    """The job's output file `name`, from this host's copy, else from object storage. As a
    `download`: an attachment, redirected to a presigned URL where the settings ask for it."""
    state = request.app.state
    entry = next((e for e in entries(job) if e.get("name") == name), None)
    if entry is None:
        raise Problem(404, "not-found", f"The job has no output file {name!r}.")
    etag = f'"{entry.get("sha256")}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=0, must-revalidate"}
    inm = request.headers.get("if-none-match")
    files = state.service.files
    media_type = content_type(name, str(entry.get("format")))
    held = contextlib.ExitStack()  # the folder kept until the response is sent
    try:
        # the folder first: a job whose --out files another run replaced answers 404, never a
        # 304 that tells the client its copy of bytes the job no longer has is current
        folder = await _enter(held, files, files.reading_here(job))
        if inm and (
            inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]
        ):
            held.close()
            return Response(status_code=304, headers=headers)
        if folder is None:  # in object storage only
            held.close()
            url = None
            if download:
                url = await anyio.to_thread.run_sync(files.presigned, job, name, media_type)
            if url is not None:
                return RedirectResponse(url, status_code=307, headers=headers)
            size = int(entry["bytes"])
            return _streamed(request, files, job, name, size, media_type, headers, download)
        path = _safe_path(folder, name)
        try:
            stat = await anyio.to_thread.run_sync(os.stat, path)
        except OSError:
            raise Problem(404, "not-found", f"The file {name!r} is no longer on disk.") from None
        response = _File(
            path,
            media_type=media_type,
            headers=headers,
            filename=Path(name).name if download else None,
            stat_result=stat,
        )
        # Starlette serves the ranges (one: 206, several: multipart/byteranges) and HEAD
        validators = (etag, response.headers["last-modified"])
        response.ignore_range = _honoured_ranges(request, stat.st_size, validators) is None
    except BaseException:
        held.close()
        raise
    response.held = held
    return response


def _honoured_ranges(
    request: Request, size: int, validators: Sequence[str]
) -> list[tuple[int, int]] | None:
    """The byte ranges [start, stop) of a file of `size` bytes that the download serves, or
    None for the whole file, for a local file and one in object storage alike.

    The whole file: no Range; an If-Range naming none of the file's `validators` (its ETag, and
    its Last-Modified where the response has one), so the copy the client holds is stale; a
    malformed Range (ignored, as RFC 9110 allows). A range that lies outside the file is a 416
    problem with `Content-Range: bytes */size`.
    """
    from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

    http_range = request.headers.get("range")
    if http_range is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() not in validators:
        return None
    try:
        return FileResponse._parse_range_header(http_range, size)
    except MalformedRangeHeader:
        return None
    except RangeNotSatisfiable:
        raise Problem(
            416,
            "range-not-satisfiable",
            f"The file has {size} bytes; the range {http_range!r} lies outside it.",
            headers={"Content-Range": f"bytes */{size}"},
        ) from None


def _streamed(
    request: Request,
    files: Any,
    job: Any,
    name: str,
    size: int,
    media_type: str,
    headers: dict[str, str],
    attachment: bool,
) -> Response:
    """A file read from object storage: whole, or the one range asked for (several ranges get
    the whole file, as RFC 9110 allows; which ranges are served: `_honoured_ranges`)."""
    start, end, status = 0, size - 1, 200
    ranges = _honoured_ranges(request, size, (headers["ETag"],))
    if ranges is not None and len(ranges) == 1:
        start, end, status = ranges[0][0], ranges[0][1] - 1, 206
        headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
    headers = {
        **headers,
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
    }
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{Path(name).name}"'
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = files.stream(job, name, start, end)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


@router.get(
    "/jobs/{job_id}/archive",
    summary="Download all outputs as one ZIP",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "A ZIP of every output file, streamed as it is written.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(401, 404, 409, 422, 429, 503),
    },
)
async def download_archive(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> StreamingResponse:
    state = request.app.state
    job = await get_job(request, job_id, who.scope)
    completed(job)
    async with reading_dir(state.service, job) as job_dir:
        files = [(str(e["name"]), _safe_path(job_dir, str(e["name"]))) for e in entries(job)]
        try:
            members = open_members(files)  # all now: the download is whole whatever happens next
        except MissingMember as gone:
            raise Problem(
                404, "not-found", f"The file {gone.name!r} is no longer on disk."
            ) from None
    return CappedStreamingResponse(
        zip_stream(members),
        slots=state.archive_slots,  # 429 over PATIENTGEN_MAX_ARCHIVES_PER_KEY open downloads
        owner=who.owner,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="patientgen-{job.job_id}.zip"',
            "Cache-Control": "no-store",
        },
    )
