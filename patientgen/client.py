"""A Python client for the patientgen HTTP API (httpx, synchronous).

    from patientgen.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as client:
        job = client.submit(preset="training-exercise", formats=["ndjson", "csv"])
        job = client.wait(job.job_id, progress=lambda j: print(j.status, j.progress))
        client.download(job.job_id, "out/")            # every file into a folder
        client.download(job.job_id, "out/p.csv", name="patients.csv")

Errors raise `ApiError` (subclasses by status), carrying the RFC 9457 problem details; a service
that cannot be reached at all raises its subclass `ConnectionFailed` (status 0).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from patientgen.jobs.model import TERMINAL_STATUSES

API_PREFIX = "/api/v1"
TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)
#: Formats of the internal indexes an older service still listed among a job's files.
_INTERNAL_FORMATS = frozenset({"index", "attributes"})


class OutputFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    format: str
    bytes: int
    sha256: str
    records: int | None = None
    url: str | None = None


class Job(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: UUID
    owner: str
    status: str
    progress: int
    progress_details: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    attempts: int = 0
    max_attempts: int = 0
    error: str | None = None
    #: What the caller may do to the job now ("cancel", "retry", "delete").
    allowed_actions: list[str] = Field(default_factory=list)
    output_files: list[OutputFile] = Field(default_factory=list)
    summary: dict[str, Any] | None = None
    links: dict[str, str] = Field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def seed(self) -> int | None:
        return (self.config.get("scenario") or {}).get("seed")


class JobPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[Job]
    next_cursor: str | None = None


class Preset(BaseModel):
    """A built-in preset: its name (as `submit(preset=...)` takes it), what it is, its scenario."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    description: str
    scenario: dict[str, Any]


class PatientPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    offset: int
    limit: int
    total: int
    items: list[dict[str, Any]]
    next_offset: int | None = None
    sort: str = "index"


class FacetValue(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    value: str
    count: int


class PatientFacets(BaseModel):
    """Per filter, the values present in a job's patients and their counts."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    total: int
    facets: dict[str, list[FacetValue]]
    sort_keys: list[str]


class TimeSpan(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    start: int  # the first injury, milliseconds since the epoch
    end: int  # the last outcome


class Track(BaseModel):
    """One casualty's path: `times` are epoch milliseconds of the injury, the arrivals at R1 …
    R4 (None where never reached) and the outcome."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    front: str
    nation: str
    triage: str
    outcome: str
    facility: str
    times: list[int | None]


class TracksPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    offset: int
    limit: int
    total: int
    next_offset: int | None = None
    span: TimeSpan | None = None
    columns: list[str]
    items: list[Track]


class RoleCounters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    arrivals: int
    deaths: int
    rtd: int


class PatientCounters(BaseModel):
    """Arrivals, deaths and returns to duty per column (POI, R1 … R4) before `at`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    at: int
    total: int
    span: TimeSpan | None = None
    counters: dict[str, RoleCounters]


TimeBound = datetime | str | None


def _time_params(**bounds: TimeBound) -> dict[str, str]:
    """The given time filters as RFC 3339 text (an aware datetime, or text passed as is)."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in bounds.items()
        if value is not None
    }


def _filter_params(filters: dict[str, str | Iterable[str]]) -> dict[str, list[str]]:
    return {
        name: [values] if isinstance(values, str) else list(values)
        for name, values in filters.items()
    }


class SavedScenario(BaseModel):
    """A scenario kept on the server under a name (`scenario` is None in listings)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    version: int
    created_at: datetime
    updated_at: datetime
    scenario: dict[str, Any] | None = None


def _scenario_body(
    scenario: dict[str, Any] | BaseModel | None,
    preset: str | None,
    overrides: dict[str, Any] | None,
) -> dict[str, Any]:
    """The request fields naming a scenario: a complete one, or a preset with overrides."""
    body: dict[str, Any] = {}
    if scenario is not None:
        body["scenario"] = (
            scenario.model_dump(mode="json", exclude_unset=True)
            if isinstance(scenario, BaseModel)
            else scenario
        )
    if preset is not None:
        body["preset"] = preset
    if overrides is not None:
        body["overrides"] = overrides
    return body


class ApiError(Exception):
    """An error answer of the API; `problem` is its problem+json document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", "about:blank"))
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        super().__init__(f"{status} {self.title}: {self.detail}".strip())


class Unauthorized(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class PreconditionFailed(Conflict):
    """A conditional save did not hold (the name is taken, or was replaced since it was read);
    `problem["current_version"]` is the version there now, if any."""


class ValidationFailed(ApiError):
    pass


class RateLimited(ApiError):
    pass


class Unavailable(ApiError):
    pass


class ConnectionFailed(ApiError):
    """The service did not answer at all (connection refused, name unknown, timed out, cut off):
    `status` is 0 and `detail` says what happened and where."""

    def __init__(self, base_url: str, exc: httpx.TransportError) -> None:
        reason = str(exc) or type(exc).__name__
        super().__init__(
            0,
            {
                "title": "Cannot reach the service",
                "detail": f"no answer from {base_url} ({reason}); is `patientgen serve` running "
                "there?",
            },
        )
        self.reason = reason


_ERRORS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json() if response.content else {}
        if not isinstance(problem, dict):
            problem = {"detail": str(problem)}
    except ValueError:
        problem = {"detail": response.text[:500]}
    problem.setdefault("status", response.status_code)
    raise _ERRORS.get(response.status_code, ApiError)(response.status_code, problem)


class Client:
    """Talks to one patientgen service. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "patientgen-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """httpx's transport errors (refused, timed out, cut off) become ConnectionFailed."""
        try:
            yield
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, exc) from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._reaching():
            response = self._http.request(method, path, **kwargs)
        _raise_for(response)
        return response

    # -- jobs ------------------------------------------------------------------------------------
    def submit(
        self,
        scenario: dict[str, Any] | BaseModel | None = None,
        *,
        preset: str | None = None,
        overrides: dict[str, Any] | None = None,
        formats: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a scenario (dict or `Scenario`), or a preset with overrides."""
        body = _scenario_body(scenario, preset, overrides)
        if formats is not None:
            body["formats"] = list(formats)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request("POST", "/jobs", json=body, headers=headers)
        return Job.model_validate_json(response.content)

    def get(self, job_id: UUID | str) -> Job:
        """The job; its summary leaves out the care chain's per-hour series (`summary` has
        it)."""
        return Job.model_validate_json(self._request("GET", f"/jobs/{job_id}").content)

    def summary(self, job_id: UUID | str) -> dict[str, Any]:
        """The completed job's whole summary (summary.json), with the care chain's per-hour
        series (`care_chain.simulation.hourly`). ApiError 409 before the job is completed."""
        return orjson.loads(self._request("GET", f"/jobs/{job_id}/summary").content)

    def list(
        self,
        status: str | Sequence[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = [status] if isinstance(status, str) else list(status)
        if cursor:
            params["cursor"] = cursor
        return JobPage.model_validate_json(self._request("GET", "/jobs", params=params).content)

    def iter_jobs(self, status: str | Sequence[str] | None = None) -> Iterator[Job]:
        """Every job, newest first, following the cursors."""
        cursor = None
        while True:
            page = self.list(status=status, limit=200, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: UUID | str) -> Job:
        return Job.model_validate_json(self._request("POST", f"/jobs/{job_id}/cancel").content)

    def retry(self, job_id: UUID | str) -> Job:
        return Job.model_validate_json(self._request("POST", f"/jobs/{job_id}/retry").content)

    def delete(self, job_id: UUID | str) -> None:
        self._request("DELETE", f"/jobs/{job_id}")

    def events(self, job_id: UUID | str) -> Iterator[tuple[str, Job]]:
        """(event, job) from the job's event stream until it ends (one connection)."""
        with (
            self._reaching(),
            self._http.stream(
                "GET",
                f"/jobs/{job_id}/events",
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(self._http.timeout.connect, read=60.0),
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            event, data = "message", builtins.list[str]()
            for line in response.iter_lines():
                if line == "":
                    if data:
                        payload = orjson.loads("\n".join(data))
                        if event == "error":
                            raise ApiError(int(payload.get("status", 500)), payload)
                        yield event, Job.model_validate(payload)
                        if event == "end":
                            return
                    event, data = "message", builtins.list[str]()
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)

    def wait(
        self,
        job_id: UUID | str,
        progress: Callable[[Job], None] | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Follow the event stream until the job ends; reconnects when the stream breaks.
        `progress(job)` is called for every event. Raises TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = 0.2
        while True:
            try:
                for event, job in self.events(job_id):
                    if progress is not None:
                        progress(job)
                    if event == "end" or job.is_terminal:
                        return job
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            except (ConnectionFailed, Unavailable):
                pass
            except ApiError as exc:
                if exc.status < 500:
                    raise
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            try:
                job = self.get(job_id)
            except (ConnectionFailed, Unavailable):
                continue  # the service or its database is restarting: keep waiting
            if job.is_terminal:
                return job

    # -- outputs ---------------------------------------------------------------------------------
    def files(self, job_id: UUID | str) -> builtins.list[OutputFile]:
        data = self._request("GET", f"/jobs/{job_id}/files").json()
        return [OutputFile.model_validate(item) for item in data["items"]]

    def patients(
        self,
        job_id: UUID | str,
        offset: int = 0,
        limit: int = 100,
        *,
        sort: str | None = None,
        injured_before: TimeBound = None,
        injured_after: TimeBound = None,
        outcome_before: TimeBound = None,
        outcome_after: TimeBound = None,
        **filters: str | Iterable[str],
    ) -> PatientPage:
        """A page of the job's patients. `filters`: front, nation, category, triage, outcome,
        facility, each one value or several (any matches); `sort`: a key of
        `patient_facets(...).sort_keys`, with a leading "-" for descending; time filters
        (aware datetimes or RFC 3339 text): `X_before=T` keeps X < T, `X_after=T` X >= T.
        `total` counts the patients that match. Unknown values and malformed times raise
        ValidationFailed listing each."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if sort is not None:
            params["sort"] = sort
        params.update(_filter_params(filters))
        params.update(
            _time_params(
                injured_before=injured_before,
                injured_after=injured_after,
                outcome_before=outcome_before,
                outcome_after=outcome_after,
            )
        )
        response = self._request("GET", f"/jobs/{job_id}/patients", params=params)
        return PatientPage.model_validate_json(response.content)

    def patient(self, job_id: UUID | str, patient_id: UUID | str) -> dict[str, Any]:
        """One patient of the job by its id (NotFound when the job has none such)."""
        response = self._request("GET", f"/jobs/{job_id}/patients/{patient_id}")
        return orjson.loads(response.content)

    def patient_tracks(
        self,
        job_id: UUID | str,
        offset: int = 0,
        limit: int = 1000,
        *,
        injured_before: TimeBound = None,
        injured_after: TimeBound = None,
        outcome_before: TimeBound = None,
        outcome_after: TimeBound = None,
        **filters: str | Iterable[str],
    ) -> TracksPage:
        """A page (at most 5,000) of the casualties' paths by time of injury, with the same
        filters as `patients`. Active at T: injured_before=T, outcome_after=T."""
        params: dict[str, Any] = {"offset": offset, "limit": limit, **_filter_params(filters)}
        params.update(
            _time_params(
                injured_before=injured_before,
                injured_after=injured_after,
                outcome_before=outcome_before,
                outcome_after=outcome_after,
            )
        )
        response = self._request("GET", f"/jobs/{job_id}/patients/tracks", params=params)
        return TracksPage.model_validate_json(response.content)

    def patient_counters(
        self, job_id: UUID | str, at: datetime | str, **filters: str | Iterable[str]
    ) -> PatientCounters:
        """Arrivals, deaths and returns to duty per column (POI, R1 … R4) before `at`, among
        the patients matching `filters` (as in `patients`)."""
        params: dict[str, Any] = {**_time_params(at=at), **_filter_params(filters)}
        response = self._request("GET", f"/jobs/{job_id}/patients/counters", params=params)
        return PatientCounters.model_validate_json(response.content)

    def patient_facets(self, job_id: UUID | str) -> PatientFacets:
        """The filter values present in the job's patients, with their counts."""
        response = self._request("GET", f"/jobs/{job_id}/patients/facets")
        return PatientFacets.model_validate_json(response.content)

    def download(
        self,
        job_id: UUID | str,
        dest: str | Path,
        name: str | None = None,
        *,
        verify: bool = True,
    ) -> builtins.list[Path]:
        """Download one file (`name`) to `dest` (a file path, or a folder to put it in), or every
        output file into the folder `dest` (keeping sub-folders such as fhir/). Checks each file's
        sha256 against its ETag unless `verify=False`. Returns the paths written. All files means
        the job's outputs; a service older than this client also listed its internal indexes
        (formats "index" and "attributes", which only serve the API's reads): those are
        skipped."""
        dest = Path(dest)
        if name is not None:
            target = dest / Path(name).name if dest.is_dir() else dest
            return [self._download_one(job_id, name, target, verify)]
        written = []
        for item in self.files(job_id):
            if item.format in _INTERNAL_FORMATS:
                continue
            target = dest.joinpath(*item.name.split("/"))
            if dest.resolve() not in target.resolve().parents:
                raise ValueError(f"refusing to write outside {dest}: {item.name!r}")
            written.append(self._download_one(job_id, item.name, target, verify))
        return written

    def _download_one(self, job_id: UUID | str, name: str, target: Path, verify: bool) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        with self._reaching(), self._http.stream("GET", f"/jobs/{job_id}/files/{name}") as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            etag = response.headers.get("etag", "").strip('"')
            with tmp.open("wb") as out:
                for block in response.iter_bytes(1 << 20):
                    digest.update(block)
                    out.write(block)
        if verify and etag and digest.hexdigest() != etag:
            tmp.unlink(missing_ok=True)
            raise ValueError(f"{name}: sha256 {digest.hexdigest()} does not match ETag {etag}")
        tmp.replace(target)
        return target

    def archive(self, job_id: UUID | str, dest: str | Path) -> Path:
        """Download the ZIP of all outputs to `dest`."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._reaching(), self._http.stream("GET", f"/jobs/{job_id}/archive") as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            with dest.open("wb") as out:
                for block in response.iter_bytes(1 << 20):
                    out.write(block)
        return dest

    # -- the rest --------------------------------------------------------------------------------
    def presets(self) -> builtins.list[Preset]:
        """The built-in presets, as `Preset` models."""
        data = self._request("GET", "/presets").json()
        return [Preset.model_validate(item) for item in data["items"]]

    def validate(
        self,
        scenario: dict[str, Any] | None = None,
        *,
        preset: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The resolved scenario, or ValidationFailed listing every problem."""
        body = _scenario_body(scenario, preset, overrides)
        return self._request("POST", "/scenarios/validate", json=body).json()["scenario"]

    # -- saved scenarios -------------------------------------------------------------------------
    def save_scenario(
        self,
        name: str,
        scenario: dict[str, Any] | BaseModel | None = None,
        *,
        preset: str | None = None,
        overrides: dict[str, Any] | None = None,
        only_new: bool = False,
        if_version: int | None = None,
    ) -> SavedScenario:
        """Keep a scenario (or a preset with overrides) on the server under `name`, replacing
        one of that name (its version grows); ValidationFailed lists every problem.
        `only_new` refuses to replace, `if_version` replaces only that version: both raise
        PreconditionFailed otherwise, and nothing is saved."""
        if only_new and if_version is not None:
            raise ValueError("only_new and if_version exclude each other")
        body = _scenario_body(scenario, preset, overrides)
        headers = {"If-None-Match": "*"} if only_new else {}
        if if_version is not None:
            headers["If-Match"] = f'"{if_version}"'
        response = self._request(
            "PUT", f"/saved-scenarios/{quote(name, safe='')}", json=body, headers=headers
        )
        return SavedScenario.model_validate_json(response.content)

    def saved_scenario(self, name: str) -> SavedScenario:
        response = self._request("GET", f"/saved-scenarios/{quote(name, safe='')}")
        return SavedScenario.model_validate_json(response.content)

    def saved_scenarios(self) -> builtins.list[SavedScenario]:
        """Your saved scenarios by name (without their content)."""
        items = self._request("GET", "/saved-scenarios").json()["items"]
        return [SavedScenario.model_validate(item) for item in items]

    def delete_scenario(self, name: str) -> None:
        self._request("DELETE", f"/saved-scenarios/{quote(name, safe='')}")

    # -- deliveries ------------------------------------------------------------------------------
    def push(
        self,
        job_id: UUID | str,
        *,
        fhir: str | None = None,
        mllp: tuple[str, int] | None = None,
        batch: bool = False,
        bundle_size: int | None = None,
        authorization: str | None = None,
        tls: bool = False,
        speed: float | None = None,
        start: str = "now",
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a delivery of a completed job's casualties to a FHIR server (`fhir`: its base
        URL) or an MLLP listener (`mllp`: host, port; `tls`: MLLP over TLS, the listener's
        certificate checked by the service); with `speed`, a replay in exercise time
        (`speed` exercise seconds a second, the scenario's start at `start`: "now" or an ISO
        date-time). Returns the delivery job, which runs on the service's workers (follow it with
        `wait`; its summary is the report)."""
        if (fhir is None) == (mllp is None):
            raise ValueError("give one target: fhir=URL or mllp=(host, port)")
        if tls and fhir is not None:
            raise ValueError("tls goes with mllp (a FHIR server's URL says https)")
        body: dict[str, Any]
        if fhir is not None:
            body = {"target": "fhir", "url": fhir, "mode": "batch" if batch else "transaction"}
            if bundle_size is not None:
                body["bundle_size"] = bundle_size
            if authorization is not None:
                body["authorization"] = authorization
        else:
            assert mllp is not None  # one of the two, checked above
            body = {"target": "mllp", "host": mllp[0], "port": mllp[1], "tls": tls}
        if speed is not None:
            body["pace"] = {"speed": speed, "start": start}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request("POST", f"/jobs/{job_id}/push", json=body, headers=headers)
        return Job.model_validate_json(response.content)
