"""The casualties of a completed job: pages (filtered, sorted), facets, one casualty by id.

Every answer is served from the job's attribute index (formats.attributes, queried through
formats.casualties) and the offsets index of patients.ndjson: the NDJSON is read only at the
records of the page, never parsed to filter, count or find. Unknown filter values and sort keys
are a 422 listing every one of them. A plain page (no filter, file order) works without the
attribute index, so jobs written before it still page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from patientgen.api.auth import Principal, principal
from patientgen.api.common import get_job, json_response, problem_responses
from patientgen.api.problems import Problem, invalid_fields_problem
from patientgen.api.routes.files import completed, entries, out_dir
from patientgen.api.schemas import FacetsOut, PatientsPage
from patientgen.formats import casualties
from patientgen.formats.bundle import read_patients, read_records
from patientgen.formats.ndjson import FILE as NDJSON_FILE

router = APIRouter(tags=["casualties"])

MAX_PAGE = 1000

#: `?triage=T1&triage=T2` or `?triage=T1,T2`.
FilterValues = Annotated[
    list[str] | None,
    Query(description="Repeat the parameter or give a comma list; any of the values matches."),
]


async def _job_dir(request: Request, job_id: UUID, who: Principal) -> tuple[Any, Path]:
    """The completed job with NDJSON output and the folder of its files."""
    job = await get_job(request, job_id, who.scope)
    completed(job)
    formats = (job.config or {}).get("formats") or []
    if "ndjson" not in formats or not any(e.get("name") == NDJSON_FILE for e in entries(job)):
        raise Problem(
            409, "no-ndjson-output", "The job did not produce NDJSON; patients cannot be paged."
        )
    return job, out_dir(request.app.state.service, job)


async def _index(job_dir: Path) -> casualties.CasualtyIndex:
    try:
        return await anyio.to_thread.run_sync(casualties.open_index, job_dir)
    except casualties.IndexMissing:
        raise Problem(
            409,
            "no-casualty-index",
            "The job has no casualty index (it was written by an earlier version); submit its "
            "scenario again to filter, sort or look up its casualties.",
        ) from None


def _page(offset: int, limit: int, total: int, sort: str, lines: list[bytes]) -> Response:
    next_offset = offset + len(lines) if offset + len(lines) < total else None
    head = b'{"offset":%d,"limit":%d,"total":%d,"sort":"%s","next_offset":%s,"items":[' % (
        offset,
        limit,
        total,
        sort.encode(),  # one of casualties.SORT_KEYS, possibly with "-": nothing to escape
        b"null" if next_offset is None else str(next_offset).encode(),
    )
    return Response(head + b",".join(lines) + b"]}", media_type="application/json")


@router.get(
    "/jobs/{job_id}/patients",
    response_model=PatientsPage,
    summary="Page through the generated patients, filtered and sorted",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def list_patients(
    request: Request,
    job_id: UUID,
    who: Principal = Depends(principal),
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    front: FilterValues = None,
    nation: FilterValues = None,
    category: FilterValues = None,
    triage: FilterValues = None,
    outcome: FilterValues = None,
    facility: Annotated[
        list[str] | None,
        Query(description="The last facility reached (POI for the killed in action)."),
    ] = None,
    sort: Annotated[
        str,
        Query(
            description=f"One of {', '.join(casualties.SORT_KEYS)}; a leading '-' sorts "
            "descending. Ties keep the file order."
        ),
    ] = "index",
) -> Response:
    """`total` is the number of patients that match every filter; several values of one filter
    match any of them. Records are exactly those of patients.ndjson."""
    job, job_dir = await _job_dir(request, job_id, who)
    raw = {
        "front": front,
        "nation": nation,
        "category": category,
        "triage": triage,
        "outcome": outcome,
        "facility": facility,
    }
    if sort == "index" and not any(raw.values()):  # the file's order: no attribute index needed
        records = next(e for e in entries(job) if e.get("name") == NDJSON_FILE).get("records")
        total = int(records if records is not None else job.config["scenario"]["total_patients"])
        lines: list[bytes] = []
        if offset < total:
            lines = await anyio.to_thread.run_sync(
                read_patients, job_dir, offset, min(limit, total - offset)
            )
        return _page(offset, limit, total, sort, lines)
    index = await _index(job_dir)
    filters = {
        name: casualties.split_values(values, index.codes[name])
        for name, values in raw.items()
        if values
    }
    found = casualties.problems(index, filters, sort)
    if found:
        raise invalid_fields_problem(found)

    def read() -> tuple[int, list[bytes]]:
        total, positions = casualties.select(index, filters, sort, offset, limit)
        return total, read_records(job_dir, positions)

    total, lines = await anyio.to_thread.run_sync(read)
    return _page(offset, limit, total, sort, lines)


@router.get(
    "/jobs/{job_id}/patients/facets",
    response_model=FacetsOut,
    summary="The filter values present in a job's patients, with their counts",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def patient_facets(
    request: Request, job_id: UUID, who: Principal = Depends(principal)
) -> Response:
    """What a casualty browser needs to build its filter menus."""
    _, job_dir = await _job_dir(request, job_id, who)
    index = await _index(job_dir)
    facets = await anyio.to_thread.run_sync(casualties.facets, index)
    return json_response(
        {"total": index.count, "facets": facets, "sort_keys": list(casualties.SORT_KEYS)}
    )


@router.get(
    "/jobs/{job_id}/patients/{patient_id}",
    summary="One patient by id",
    responses={
        200: {
            "description": "The patient, as in the NDJSON output.",
            "content": {"application/json": {}},
        },
        **problem_responses(401, 404, 409, 422, 503),
    },
)
async def get_patient(
    request: Request, job_id: UUID, patient_id: UUID, who: Principal = Depends(principal)
) -> Response:
    """Found through the attribute index's ids (no scan of the NDJSON)."""
    _, job_dir = await _job_dir(request, job_id, who)
    index = await _index(job_dir)

    def read() -> list[bytes]:
        position = casualties.find(index, patient_id)
        return [] if position is None else read_records(job_dir, [position])

    lines = await anyio.to_thread.run_sync(read)
    if not lines:
        raise Problem(404, "not-found", f"The job has no patient {patient_id}.")
    return Response(lines[0], media_type="application/json")
