"""The casualties of a completed job: pages (filtered, sorted), facets, one casualty by id, and
what the replay of the chain of care draws (tracks: each casualty's path in times; counters of
arrivals, deaths and returns to duty per role before a moment).

Every answer is served from the job's attribute index (formats.attributes, queried through
formats.casualties) and the offsets index of patients.ndjson: the NDJSON is read only at the
records of the page, never parsed to filter, count or find. Unknown filter values and sort keys
and malformed times are a 422 listing every one of them. Tracks and counters come from the
attribute index alone (the NDJSON is not read at all). A plain page (no filter, file order)
works without the attribute index, so jobs written before it still page.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from patientgen.api.auth import Principal, principal
from patientgen.api.common import get_job, json_response, problem_responses
from patientgen.api.problems import Problem, invalid_fields_problem
from patientgen.api.routes.files import completed, entries, reading_dir
from patientgen.api.schemas import CountersOut, FacetsOut, PatientsPage, TracksPage
from patientgen.formats import casualties
from patientgen.formats.bundle import Records, read_patients, read_records
from patientgen.formats.ndjson import FILE as NDJSON_FILE

router = APIRouter(tags=["casualties"])

MAX_PAGE = 1000
MAX_TRACKS = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: `?triage=T1&triage=T2` or `?triage=T1,T2`.
FilterValues = Annotated[
    list[str] | None,
    Query(description="Repeat the parameter or give a comma list; any of the values matches."),
]


_TIME_HELP = {
    "injured_before": "Only casualties injured before this time (injured_at < T).",
    "injured_after": "Only casualties injured at or after this time (injured_at >= T).",
    "outcome_before": "Only casualties whose outcome came before this time (outcome_at < T).",
    "outcome_after": "Only casualties whose outcome came at or after this time (outcome_at >= T).",
}
RawFilters = dict[str, list[str] | None]
RawTimes = dict[str, str | None]


@dataclass(frozen=True, slots=True)
class CasualtyFilters:
    """The attribute filters of every casualty query, as given (query parameters: FastAPI makes
    them from these fields; checked against the index by `codes`)."""

    front: FilterValues = None
    nation: FilterValues = None
    category: FilterValues = None
    triage: FilterValues = None
    outcome: FilterValues = None
    facility: Annotated[
        list[str] | None,
        Query(
            description="The last facility reached (POI for the killed in action). Repeat the "
            "parameter or give a comma list; any of the values matches."
        ),
    ] = None

    def given(self) -> RawFilters:
        return {"front": self.front, "nation": self.nation, "category": self.category,
                "triage": self.triage, "outcome": self.outcome,
                "facility": self.facility}  # fmt: skip

    def codes(
        self,
        index: casualties.CasualtyIndex,
        sort: str | None,
        more_problems: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The given filters as codes of the index; a 422 listing every unknown value, a bad
        `sort` and `more_problems` (the caller's own parameters) if there is any."""
        filters = {
            name: casualties.split_values(values, index.codes[name])
            for name, values in self.given().items()
            if values
        }
        found = casualties.problems(index, filters, sort) + (more_problems or [])
        if found:
            raise invalid_fields_problem(found)
        return filters


@dataclass(frozen=True, slots=True)
class CasualtyQuery(CasualtyFilters):
    """The attribute filters and the time filters of the pages and the tracks, as given."""

    injured_before: Annotated[str | None, Query(description=_TIME_HELP["injured_before"])] = None
    injured_after: Annotated[str | None, Query(description=_TIME_HELP["injured_after"])] = None
    outcome_before: Annotated[str | None, Query(description=_TIME_HELP["outcome_before"])] = None
    outcome_after: Annotated[str | None, Query(description=_TIME_HELP["outcome_after"])] = None

    def times(self) -> RawTimes:
        return {"injured_before": self.injured_before, "injured_after": self.injured_after,
                "outcome_before": self.outcome_before,
                "outcome_after": self.outcome_after}  # fmt: skip

    def is_plain(self) -> bool:
        """No filter and no time bound given (a blank value is not given)."""
        return not any(self.given().values()) and not any(
            v and v.strip() for v in self.times().values()
        )

    def resolve(
        self, index: casualties.CasualtyIndex, sort: str | None
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """The filters as codes of the index and the time bounds in microseconds; a 422 listing
        every problem with either (see `codes`)."""
        bounds, time_problems = _bounds(self.times())
        return self.codes(index, sort, time_problems), bounds


#: The query parameters of the counters (filters only) and of the pages and tracks (filters and
#: times), one dependency each.
Filters = Annotated[CasualtyFilters, Depends()]
FiltersAndTimes = Annotated[CasualtyQuery, Depends()]


def _micros(name: str, raw: str) -> tuple[int | None, dict[str, Any] | None]:
    """(microseconds since the epoch, None) or (None, the problem with `raw`)."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        why = "not a time" if moment is None else "a time without its zone"
        return None, {
            "field": name,
            "loc": ["query", name],
            "message": f"{raw!r} is {why}: give an RFC 3339 time with its zone, e.g. "
            "2026-03-02T06:00:00Z",
            "type": "datetime_parsing",
        }
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds, None


def _bounds(raw: dict[str, str | None]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The given time filters in microseconds, and a problem for each malformed one (a blank
    one is not given, as a blank filter value is)."""
    bounds: dict[str, int] = {}
    found: list[dict[str, Any]] = []
    for name, value in raw.items():
        if value is None or not value.strip():
            continue
        micros, problem = _micros(name, value)
        if problem is not None:
            found.append(problem)
        elif micros is not None:
            bounds[name] = micros
    return bounds, found


def _span(index: casualties.CasualtyIndex) -> dict[str, int] | None:
    found = casualties.span(index)
    return None if found is None else {"start": found[0] // 1000, "end": found[1] // 1000}


@contextlib.asynccontextmanager
async def _casualty_files(
    request: Request, job_id: UUID, who: Principal
) -> AsyncIterator[tuple[Any, Path, Records | None]]:
    """The completed job with NDJSON output, the folder of its casualty index (kept there until
    the block ends), and where its records are read (None: patients.ndjson in that folder)."""
    job = await get_job(request, job_id, who.scope)
    completed(job)
    formats = (job.config or {}).get("formats") or []
    if "ndjson" not in formats or not any(e.get("name") == NDJSON_FILE for e in entries(job)):
        raise Problem(
            409, "no-ndjson-output", "The job did not produce NDJSON; patients cannot be paged."
        )
    files = request.app.state.service.files
    records = files.records(job)  # a few stat calls at most: no thread
    wanted = casualties.INDEX_FILES if records is not None else casualties.FILES
    async with reading_dir(request.app.state.service, job, wanted) as job_dir:
        yield job, job_dir, records


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


def _replayable(index: casualties.CasualtyIndex) -> None:
    try:
        casualties.require_arrivals(index)
    except casualties.NoArrivals:
        raise Problem(
            409,
            "no-casualty-index",
            "The job's casualty index predates the replay (it has no arrival times); submit its "
            "scenario again to replay it. Its casualties can still be browsed.",
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
    query: FiltersAndTimes,
    who: Principal = Depends(principal),
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    sort: Annotated[
        str,
        Query(
            description=f"One of {', '.join(casualties.SORT_KEYS)}; a leading '-' sorts "
            "descending. Ties keep the file order."
        ),
    ] = "index",
) -> Response:
    """`total` is the number of patients that match every filter; several values of one filter
    match any of them. Time filters are RFC 3339 times with a zone; `X_before=T` and
    `X_after=T` split the casualties in two (X < T, X >= T). Records are exactly those of
    patients.ndjson."""
    async with _casualty_files(request, job_id, who) as (job, job_dir, source):
        if sort == "index" and query.is_plain():  # the file's order: no attribute index needed
            records = next(e for e in entries(job) if e.get("name") == NDJSON_FILE).get("records")
            total = int(
                records if records is not None else job.config["scenario"]["total_patients"]
            )
            lines: list[bytes] = []
            if offset < total:
                lines = await anyio.to_thread.run_sync(
                    read_patients, job_dir, offset, min(limit, total - offset), source
                )
            return _page(offset, limit, total, sort, lines)
        index = await _index(job_dir)
        filters, bounds = query.resolve(index, sort)

        def read() -> tuple[int, list[bytes]]:
            total, positions = casualties.select(index, filters, sort, offset, limit, bounds)
            return total, read_records(job_dir, positions, source)

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
    async with _casualty_files(request, job_id, who) as (_, job_dir, _):
        index = await _index(job_dir)
        facets = await anyio.to_thread.run_sync(casualties.facets, index)
        return json_response(
            {"total": index.count, "facets": facets, "sort_keys": list(casualties.SORT_KEYS)}
        )


@router.get(
    "/jobs/{job_id}/patients/tracks",
    response_model=TracksPage,
    summary="The casualties' paths through the chain of care, by time of injury (for a replay)",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def patient_tracks(
    request: Request,
    job_id: UUID,
    query: FiltersAndTimes,
    who: Principal = Depends(principal),
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_TRACKS)] = 1000,
) -> Response:
    """Ordered by time of injury (ties: file order). The casualties active at T are
    `injured_before=T&outcome_after=T`; those still to come, `injured_after=T`. Read from the
    casualty index alone."""
    async with _casualty_files(request, job_id, who) as (_, job_dir, _):
        index = await _index(job_dir)
        _replayable(index)
        filters, bounds = query.resolve(index, None)

        def read() -> dict[str, Any]:
            total, positions = casualties.select(
                index, filters, "injured_at", offset, limit, bounds
            )
            items = casualties.tracks(index, positions)
            end = offset + len(items)
            return {
                "offset": offset,
                "limit": limit,
                "total": total,
                "next_offset": end if end < total else None,
                "span": _span(index),
                "columns": list(casualties.ROLES),
                "items": items,
            }

        return json_response(await anyio.to_thread.run_sync(read))


@router.get(
    "/jobs/{job_id}/patients/counters",
    response_model=CountersOut,
    summary="Arrivals, deaths and returns to duty per role before a moment (for a replay)",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def patient_counters(
    request: Request,
    job_id: UUID,
    query: Filters,
    at: Annotated[str, Query(description="Count what happened before this RFC 3339 time.")],
    who: Principal = Depends(principal),
) -> Response:
    """Per column (POI, R1 … R4) among the casualties matching the filters: `arrivals` (at POI:
    the injured), `deaths` (KIA, DOW, DIED there) and `rtd` (returned to duty from there),
    each counting what happened strictly before `at`. From the casualty index alone."""
    async with _casualty_files(request, job_id, who) as (_, job_dir, _):
        index = await _index(job_dir)
        _replayable(index)
        micros, time_problem = _micros("at", at)
        filters = query.codes(index, None, [time_problem] if time_problem else [])
        assert micros is not None  # else time_problem: a 422 above

        def count() -> dict[str, Any]:
            matches = casualties.mask(index, filters)
            return {
                "at": micros // 1000,
                "total": index.count if matches is None else matches.count(1),
                "span": _span(index),
                "counters": casualties.counters(index, filters, micros),
            }

        return json_response(await anyio.to_thread.run_sync(count))


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
    async with _casualty_files(request, job_id, who) as (_, job_dir, source):
        index = await _index(job_dir)

        def read() -> list[bytes]:
            position = casualties.find(index, patient_id)
            return [] if position is None else read_records(job_dir, [position], source)

        lines = await anyio.to_thread.run_sync(read)
        if not lines:
            raise Problem(404, "not-found", f"The job has no patient {patient_id}.")
        return Response(lines[0], media_type="application/json")
