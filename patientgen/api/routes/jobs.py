"""Jobs: submit, list, get, cancel, retry, delete, and the Server-Sent Events progress stream."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

import anyio
import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from patientgen.api.auth import Principal, principal
from patientgen.api.common import (
    TERMINAL,
    get_job,
    job_document,
    json_response,
    problem_responses,
    status_name,
)
from patientgen.api.limits import CappedStreamingResponse
from patientgen.api.problems import Problem, field_problem, translate
from patientgen.api.resolve import derive_seed, resolve_scenario, with_seed
from patientgen.api.schemas import (
    PUSH_EXAMPLES,
    SUBMIT_EXAMPLES,
    JobListOut,
    JobOut,
    JobStatusName,
    SubmitRequest,
)
from patientgen.delivery import Delivery

router = APIRouter(tags=["jobs"])

#: How long one wait of the event stream lasts before a keep-alive comment is sent.
SSE_WAIT_SECONDS = 15.0
IDEMPOTENCY_KEY_MAX = 200
#: 1-200 visible ASCII characters (spaces inside only).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,198}[!-~])?$"

JobId = Annotated[UUID, "the job's id"]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key and body give the same job.",
        pattern=IDEMPOTENCY_KEY_PATTERN,
    ),
]


def _check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > IDEMPOTENCY_KEY_MAX or not value.isprintable():
        raise field_problem(
            ("header", "Idempotency-Key"),
            f"must be 1-{IDEMPOTENCY_KEY_MAX} printable characters",
            f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable characters.",
        )
    return value


def _check_formats(formats: Sequence[str], total_patients: int) -> None:
    """422 listing every problem of the formats asked for: repeats, and formats unfit for the
    scenario (formats.bundle.format_problems: cards for too many patients)."""
    from patientgen.formats.bundle import format_problems

    messages = ["each format at most once"] if len(set(formats)) != len(formats) else []
    messages += format_problems(total_patients, formats)
    if messages:
        raise field_problem(("body", "formats"), messages)


def _too_many_patients(asked: int, limit: int, whom: str) -> Problem:
    return field_problem(
        ("body", "scenario", "total_patients"),
        f"at most {limit} {whom}",
        f"A job may ask for at most {limit} patients {whom}; the scenario asks for {asked}.",
        slug="too-many-patients",
        kind="less_than_equal",
    )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    responses={
        200: {"model": JobOut, "description": "The job an earlier request with this key made"},
        **problem_responses(400, 401, 409, 413, 415, 422, 429, 503),
    },
)
async def submit_job(
    request: Request,
    body: Annotated[SubmitRequest, Body(openapi_examples=SUBMIT_EXAMPLES)],
    who: Principal = Depends(principal),
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Validate the scenario and queue a job. Answers 202 with the job and its `Location`; with an
    `Idempotency-Key` already used for the same body, 200 with that earlier job."""
    state = request.app.state
    key = _check_idempotency_key(idempotency_key)
    formats = list(body.formats)
    scenario, has_seed = resolve_scenario(body.scenario, body.preset, body.overrides)
    _check_formats(formats, scenario.total_patients)
    if not has_seed:
        seed = derive_seed(who.owner, key, body.model_dump(mode="json", exclude_unset=True))
        scenario = with_seed(scenario, seed)
    if who.max_patients is not None and scenario.total_patients > who.max_patients:
        raise _too_many_patients(scenario.total_patients, who.max_patients, "for this API key")
    anonymous_limit = state.settings.anonymous_max_patients
    if who.anonymous and scenario.total_patients > anonymous_limit:
        raise _too_many_patients(scenario.total_patients, anonymous_limit, "without an API key")
    # the active-job limit is checked in the insert's transaction; an idempotent repeat
    # returns its job before any limit
    job, created = await state.call(
        state.service.submit,
        scenario,
        formats,
        who.owner,
        idempotency_key=key,
        max_active_jobs=who.max_active_jobs,
    )
    doc = job_document(job, state.api_prefix)
    return json_response(doc, 202 if created else 200, {"Location": doc["links"]["self"]})


def _may_push_to(request: Request, who: Principal, host: str) -> None:
    """Admins and the anonymous local caller push anywhere; other keys only to the hosts of
    PATIENTGEN_PUSH_HOSTS (a push makes this server connect where the caller says)."""
    if who.admin or who.anonymous:
        return
    patterns = [p.strip().lower() for p in request.app.state.settings.push_hosts.split(",")]
    if any(p and fnmatch.fnmatchcase(host.lower(), p) for p in patterns):
        return
    raise Problem(
        403,
        "forbidden",
        f"This API key may not push to {host!r}: an admin can allow it in PATIENTGEN_PUSH_HOSTS.",
    )


@router.post(
    "/jobs/{job_id}/push",
    status_code=202,
    response_model=JobOut,
    summary="Push a completed job's casualties to a FHIR server or an MLLP listener",
    responses={
        200: {"model": JobOut, "description": "The delivery an earlier request with this key made"},
        **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
    },
)
async def push_job(
    request: Request,
    job_id: UUID,
    body: Annotated[Delivery, Body(openapi_examples=PUSH_EXAMPLES)],
    who: Principal = Depends(principal),
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Queue a delivery job: the job's casualties (made again from its scenario and seed, byte
    for byte its files) as FHIR resources in bundles of PUTs to a FHIR server, or as HL7 v2 ADT
    messages over MLLP; with `pace`, a replay: each item when it happens in exercise time (at
    `speed` exercise seconds per second). It runs on a worker like any job: progress and events,
    cancel, retry, and resumed where it got to after a crash, with no duplicate resource on the
    server.
    Its summary reports what was delivered, the rate, and every rejection with what the
    target said. 409 unless the job is a completed generation job."""
    state = request.app.state
    key = _check_idempotency_key(idempotency_key)
    _may_push_to(request, who, body.host)
    try:
        job, created = await state.call(
            state.service.push,
            job_id,
            body,
            who.scope,
            new_owner=who.owner,
            idempotency_key=key,
            max_active_jobs=who.max_active_jobs,
        )
    except ValueError as exc:  # a replay of a job too large to replay
        raise field_problem(("body", body.target, "pace"), str(exc), str(exc)) from None
    doc = job_document(job, state.api_prefix)
    return json_response(doc, 202 if created else 200, {"Location": doc["links"]["self"]})


@router.get(
    "/jobs",
    response_model=JobListOut,
    summary="List jobs, newest first",
    responses=problem_responses(401, 422, 503),
)
async def list_jobs(
    request: Request,
    who: Principal = Depends(principal),
    status: Annotated[
        list[JobStatusName] | None, Query(description="Only jobs in these states.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
    ] = None,
) -> Response:
    """The caller's jobs (every job for an admin key), newest first, in pages."""
    state = request.app.state
    page = await state.call(
        state.service.list,
        owner=who.scope,
        statuses=list(status) if status else None,
        limit=limit,
        cursor=cursor,
    )
    return json_response(
        {
            "items": [job_document(j, state.api_prefix) for j in page.items],
            "next_cursor": page.next_cursor,
        }
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Get a job",
    responses=problem_responses(401, 404, 422, 503),
)
async def read_job(request: Request, job_id: UUID, who: Principal = Depends(principal)) -> Response:
    job = await get_job(request, job_id, who.scope)
    return json_response(job_document(job, request.app.state.api_prefix))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a job",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def cancel_job(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> Response:
    """A pending job is cancelled at once; a running one stops at its next chunk."""
    state = request.app.state
    job = await state.call(state.service.cancel, job_id, owner=who.scope)
    return json_response(job_document(job, state.api_prefix))


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobOut,
    summary="Retry a failed or cancelled job",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def retry_job(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> Response:
    state = request.app.state
    job = await state.call(state.service.retry, job_id, owner=who.scope)
    return json_response(job_document(job, state.api_prefix))


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    summary="Delete a job and its files",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def delete_job(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> Response:
    """409 while the job is running: cancel it first."""
    state = request.app.state
    await state.call(state.service.delete, job_id, owner=who.scope)
    return Response(status_code=204)


def _sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}".encode()]
    if event_id:
        lines.append(f"id: {event_id}".encode())
    lines.append(b"data: " + orjson.dumps(data))
    return b"\n".join(lines) + b"\n\n"


def _progress_key(job: Any) -> tuple[Any, ...]:
    return (
        status_name(job.status),
        job.progress,
        orjson.dumps(job.progress_details or {}, option=orjson.OPT_SORT_KEYS),
        len(job.output_files or []),
    )


#: One event of the stream (OpenAPI 3.1 tools read an event stream's schema as one event's).
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["progress", "end", "error"]},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The job (a problem document for `event: error`), as JSON.",
        },
    },
    "required": ["data"],
}


@router.get(
    "/jobs/{job_id}/events",
    summary="Follow a job's progress (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: progress` with the job for every change of status or "
            "progress, then one `event: end` with the final job, then the stream closes. "
            "Lines starting with `:` are keep-alives.",
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        },
        **problem_responses(401, 404, 422, 429, 503),
    },
)
async def job_events(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> StreamingResponse:
    state = request.app.state
    job = await get_job(request, job_id, who.scope)
    prefix = state.api_prefix

    async def stream() -> Any:
        nonlocal job
        last = None
        yield b"retry: 2000\n\n"
        while True:
            key = _progress_key(job)
            terminal = key[0] in TERMINAL
            if key != last:
                stamp = job.updated_at.isoformat() if job.updated_at else None
                yield _sse("end" if terminal else "progress", job_document(job, prefix), stamp)
                last = key
            if terminal:
                return
            update = None
            try:
                with (
                    state.stream_ends.waiting() as wait,
                    anyio.fail_after(SSE_WAIT_SECONDS + 10),
                ):
                    update = await anyio.to_thread.run_sync(
                        state.service.wait_for_update,
                        job.job_id,
                        job.version,
                        SSE_WAIT_SECONDS,
                        abandon_on_cancel=True,
                        limiter=state.sse_limiter,
                    )
            except TimeoutError:
                pass
            except Exception as exc:
                problem = translate(exc) or Problem(
                    500, "internal-error", "The event stream failed."
                )
                yield _sse("error", problem.body())
                return
            if wait.cancel_called:  # the service shuts down: the client connects again
                return
            if update is None:
                yield b": keep-alive\n\n"
            else:
                job = update

    return CappedStreamingResponse(
        stream(),
        slots=state.stream_slots,  # 429 over PATIENTGEN_MAX_STREAMS_PER_KEY open streams
        owner=who.owner,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
