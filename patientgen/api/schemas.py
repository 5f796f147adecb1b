"""Request and response bodies of the HTTP API as pydantic models (they document the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from patientgen.scenario import PRESETS, Scenario

Format = Literal["json", "ndjson", "csv", "fhir", "fhir-bundle", "hl7", "mel", "cards"]
JobStatusName = Literal["pending", "running", "completed", "failed", "cancelled"]

EXAMPLE_SCENARIO: dict[str, Any] = {
    "name": "Brigade exercise",
    "seed": 42,
    "total_patients": 2000,
    "duration_days": 10,
    "intensity": "high",
    "tempo": "surge",
    "warfare": {"conventional": 0.5, "artillery": 0.3, "drone": 0.2},
    "injury_mix": {"disease": 0.4, "non_battle_injury": 0.3, "battle_injury": 0.3},
    "fronts": [
        {"name": "East", "share": 0.7, "nationalities": {"POL": 0.6, "USA": 0.4}},
        {"name": "North", "share": 0.3, "nationalities": {"EST": 0.5, "FIN": 0.5}},
    ],
}

SUBMIT_EXAMPLES: dict[str, dict[str, Any]] = {
    "preset": {
        "summary": "A preset, unchanged",
        "value": {"preset": "training-exercise", "formats": ["ndjson", "csv"]},
    },
    "preset-overrides": {
        "summary": "A preset with overrides (deep-merged into the preset's scenario)",
        "value": {
            "preset": "urban-assault",
            "overrides": {"total_patients": 500, "seed": 7},
            "formats": ["json", "fhir"],
        },
    },
    "scenario": {
        "summary": "A full scenario",
        "value": {"scenario": EXAMPLE_SCENARIO, "formats": ["json", "ndjson", "csv", "fhir"]},
    },
}


#: Exactly one of `scenario` and `preset`; `overrides` only with `preset`.
_ONE_SOURCE: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["scenario"],
            "not": {"anyOf": [{"required": ["overrides"]}, {"required": ["preset"]}]},
        },
        {"required": ["preset"], "not": {"required": ["scenario"]}},
    ]
}

if TYPE_CHECKING:
    PresetName = str
else:
    PresetName = Literal[tuple(PRESETS)]

#: Default of the optional request fields (not part of their type: null is refused).
_ABSENT: Any = None


def _all_formats() -> list[Format]:
    return ["json", "ndjson", "csv", "fhir"]


# The fields below default to None but are not nullable: an explicit null is refused, so the
# documented schema (no nulls, one of scenario/preset) is exactly what is accepted.


class SubmitRequest(BaseModel):
    """Either `scenario`, or `preset` with optional `overrides`. Without a seed one is chosen
    (a preset's own seed counts as given) and recorded in the job's config."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SOURCE)

    scenario: Scenario = Field(_ABSENT, description="A complete scenario.")
    preset: PresetName = Field(_ABSENT, description="A preset (see GET /presets).")
    overrides: dict[str, Any] = Field(
        _ABSENT, description="Fields deep-merged into the preset's scenario before validation."
    )
    formats: list[Format] = Field(
        default_factory=_all_formats,
        min_length=1,
        max_length=8,
        description=(
            "Output formats; each at most once (default: json, ndjson, csv, fhir). `mel`: the "
            "exercise's inject list (CSV); `cards`: casualty cards (PDF, at most 20,000 patients)."
        ),
        json_schema_extra={"uniqueItems": True},
    )


class ValidateRequest(BaseModel):
    """Same shape as a submit, without formats: validates and returns the resolved scenario."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SOURCE)

    scenario: Scenario = Field(_ABSENT, description="A complete scenario.")
    preset: PresetName = Field(_ABSENT, description="A preset (see GET /presets).")
    overrides: dict[str, Any] = Field(
        _ABSENT, description="Fields deep-merged into the preset's scenario before validation."
    )


class SaveScenarioRequest(ValidateRequest):
    """A scenario to keep under a name: a complete `scenario`, or a `preset` with `overrides`."""


class SavedScenarioOut(BaseModel):
    name: str = Field(examples=["Exercise Northern Shield"])
    version: int = Field(description="1 when first saved; each replacement adds 1.")
    created_at: datetime
    updated_at: datetime
    scenario: dict[str, Any] | None = Field(
        None, description="The scenario (left out of listings)."
    )


class SavedScenarioListOut(BaseModel):
    items: list[SavedScenarioOut]


class OutputFileOut(BaseModel):
    name: str = Field(examples=["patients.ndjson"])
    format: str = Field(examples=["ndjson"])
    bytes: int
    sha256: str
    records: int | None = None
    url: str | None = Field(None, description="Download URL of the file.")


class ProgressDetails(BaseModel):
    model_config = ConfigDict(extra="allow")

    phase: str | None = None
    patients_done: int | None = None
    patients_total: int | None = None
    chunks_done: int | None = None
    chunks_total: int | None = None
    rate: float | None = None
    eta_seconds: float | None = None


class JobLinks(BaseModel):
    self: str
    events: str
    files: str
    archive: str
    patients: str


class JobOut(BaseModel):
    job_id: UUID
    owner: str
    status: JobStatusName
    progress: int = Field(ge=0, le=100)
    progress_details: dict[str, Any]
    config: dict[str, Any] = Field(
        description='{"scenario": {...}, "formats": [...]}: the exact input, seed included.'
    )
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    cancel_requested_at: datetime | None
    attempts: int
    max_attempts: int
    error: str | None
    allowed_actions: list[Literal["cancel", "retry", "delete"]] = Field(
        description="What the caller may do to the job now (the job layer's rules)."
    )
    output_files: list[OutputFileOut]
    summary: dict[str, Any] | None
    links: JobLinks


class JobListOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page.")


class FileListOut(BaseModel):
    items: list[OutputFileOut]


class PatientsPage(BaseModel):
    offset: int
    limit: int
    total: int = Field(description="How many patients match the filters (all: the job's count).")
    sort: str
    items: list[dict[str, Any]] = Field(description="Patients as in the NDJSON output.")
    next_offset: int | None


class FacetValue(BaseModel):
    value: str
    count: int


class FacetsOut(BaseModel):
    total: int = Field(description="The job's number of patients.")
    facets: dict[str, list[FacetValue]] = Field(
        description="Per filter (front, nation, category, triage, outcome, facility), the values "
        "present in the job with their numbers of patients."
    )
    sort_keys: list[str] = Field(description="Accepted `sort` values (a leading '-': descending).")


class Span(BaseModel):
    start: int = Field(description="The first injury of the job, in milliseconds since the epoch.")
    end: int = Field(description="The last outcome of the job, in milliseconds since the epoch.")


class Track(BaseModel):
    index: int
    front: str
    nation: str
    triage: str = Field(description="First triage; `none` for a casualty killed before any.")
    outcome: str
    facility: str = Field(description="Where the story ended (POI for the killed in action).")
    times: list[int | None] = Field(
        description="Milliseconds since the epoch: injury, arrival at R1, R2, R3, R4 (null "
        "where never reached), outcome."
    )


class TracksPage(BaseModel):
    offset: int
    limit: int
    total: int = Field(description="How many casualties match the filters.")
    next_offset: int | None
    span: Span | None = Field(description="The job's whole time span (null: no patient).")
    columns: list[str] = Field(description="The places of `times` after the injury: POI … R4.")
    items: list[Track]


class RoleCounters(BaseModel):
    arrivals: int
    deaths: int
    rtd: int


class CountersOut(BaseModel):
    at: int = Field(description="The moment, in milliseconds since the epoch.")
    total: int = Field(description="How many casualties match the filters (at any time).")
    span: Span | None
    counters: dict[str, RoleCounters] = Field(
        description="Per column (POI, R1 … R4): arrivals (at POI: the injured), deaths there "
        "and returns to duty from there, before `at`."
    )


class PresetOut(BaseModel):
    name: str
    description: str
    scenario: dict[str, Any]


class PresetListOut(BaseModel):
    items: list[PresetOut]


class ValidateOut(BaseModel):
    valid: bool
    scenario: dict[str, Any]


class FieldError(BaseModel):
    field: str
    loc: list[str | int]
    message: str
    type: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/api/v1/problems/not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class HealthOut(BaseModel):
    status: str
    checks: dict[str, Any] | None = None


PUSH_EXAMPLES: dict[str, Any] = {
    "fhir": {
        "summary": "Load into a FHIR server, 100 resources per transaction",
        "value": {"target": "fhir", "url": "http://127.0.0.1:8103/fhir/R4", "bundle_size": 100},
    },
    "fhir-batch": {
        "summary": "A server that refuses transactions, with a token",
        "value": {
            "target": "fhir",
            "url": "https://fhir.example.org/R4",
            "mode": "batch",
            "authorization": "Bearer <token>",
        },
    },
    "replay": {
        "summary": "A replay: ADT messages as they happen, an exercise hour a minute",
        "value": {"target": "mllp", "host": "127.0.0.1", "port": 2575, "pace": {"speed": 60}},
    },
    "mllp": {
        "summary": "HL7 v2 ADT messages to a listener",
        "value": {"target": "mllp", "host": "127.0.0.1", "port": 2575},
    },
}
