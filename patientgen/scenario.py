"""The Scenario: the one validated input of the generator, and the built-in presets.

Every knob a user can turn lives here. Fractions that describe a mix must sum to 1 (within 1e-6);
the error names the field and the sum it got. Pydantic collects every problem of one input, so a
caller sees all of them at once.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from patientgen.medical_plan import MedicalPlan, default_plan, front_problems

SUM_TOLERANCE = 1e-6
MAX_SEED = 2**63 - 1
MAX_PATIENTS = 10_000_000
MAX_FRONTS = 20

#: The 32 NATO members (Sweden since March 2024), ISO 3166-1 alpha-3.
NATO_MEMBERS: dict[str, str] = {
    "ALB": "Albania",
    "BEL": "Belgium",
    "BGR": "Bulgaria",
    "CAN": "Canada",
    "HRV": "Croatia",
    "CZE": "Czechia",
    "DNK": "Denmark",
    "EST": "Estonia",
    "FIN": "Finland",
    "FRA": "France",
    "DEU": "Germany",
    "GRC": "Greece",
    "HUN": "Hungary",
    "ISL": "Iceland",
    "ITA": "Italy",
    "LVA": "Latvia",
    "LTU": "Lithuania",
    "LUX": "Luxembourg",
    "MNE": "Montenegro",
    "NLD": "Netherlands",
    "MKD": "North Macedonia",
    "NOR": "Norway",
    "POL": "Poland",
    "PRT": "Portugal",
    "ROU": "Romania",
    "SVK": "Slovakia",
    "SVN": "Slovenia",
    "ESP": "Spain",
    "SWE": "Sweden",
    "TUR": "Türkiye",
    "GBR": "United Kingdom",
    "USA": "United States",
}

#: Members without armed forces: they supply no casualties (Iceland has a coast guard, no army).
NO_ARMED_FORCES: dict[str, str] = {"ISL": "Iceland has no armed forces"}

#: The nations a front may hold: the NATO members with armed forces.
Nation = Literal[
    "ALB", "BEL", "BGR", "CAN", "HRV", "CZE", "DNK", "EST", "FIN", "FRA", "DEU",
    "GRC", "HUN", "ITA", "LVA", "LTU", "LUX", "MNE", "NLD", "MKD", "NOR",
    "POL", "PRT", "ROU", "SVK", "SVN", "ESP", "SWE", "TUR", "GBR", "USA",
]  # fmt: skip

#: Share of women among the active-duty personnel of each nation (fractions, rounded): NATO,
#: Summary of the National Reports of NATO Member and Partner Nations to the NATO Committee on
#: Gender Perspectives (2019 data; NATO average about 12%, from 0.3% in Turkey to about 20% in
#: Hungary). Finland and Sweden joined after that report: Finnish figure from the Finnish Defence
#: Forces (few women among conscripts and staff), Swedish from the Swedish Armed Forces annual
#: report. Approximate defaults, see docs/clinical-coherence.md; `calibration.female_share`
#: overrides them with one figure for every nation.
FEMALE_SHARE: dict[str, float] = {
    "ALB": 0.15, "BEL": 0.09, "BGR": 0.15, "CAN": 0.16, "HRV": 0.12, "CZE": 0.13,
    "DNK": 0.07, "EST": 0.11, "FIN": 0.03, "FRA": 0.16, "DEU": 0.12, "GRC": 0.15,
    "HUN": 0.20, "ITA": 0.06, "LVA": 0.16, "LTU": 0.12, "LUX": 0.07, "MNE": 0.10,
    "NLD": 0.10, "MKD": 0.10, "NOR": 0.14, "POL": 0.07, "PRT": 0.12, "ROU": 0.07,
    "SVK": 0.12, "SVN": 0.16, "ESP": 0.13, "SWE": 0.12, "TUR": 0.003, "GBR": 0.11,
    "USA": 0.17,
}  # fmt: skip

Intensity = Literal["low", "medium", "high", "extreme"]
Tempo = Literal["sustained", "escalating", "surge", "declining", "intermittent"]
Category = Literal["disease", "non_battle_injury", "battle_injury"]
TriageCategory = Literal["T1", "T2", "T3", "T4"]

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

#: The fixed default start of a scenario. Never "now": the same scenario must give the same output.
DEFAULT_START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
EARLIEST_START = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_START = datetime(2200, 1, 1, tzinfo=UTC)


def check_sum(values: list[float], what: str) -> None:
    """Raise a ValueError that names `what` and the sum when `values` do not sum to 1."""
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"{what} must sum to 1, got {total:.6g}")


class _Strict(BaseModel):
    # strict: a JSON type is never coerced into another ("5" or true is not a number, 1 is not a
    # boolean), so what is accepted is exactly what the OpenAPI schema documents.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


#: What a spreadsheet reads, at the start of a cell, as the start of a formula (OWASP's list for
#: CSV injection; its tab and carriage return are refused as control characters anyway).
FORMULA_START = ("=", "+", "-", "@")
#: Unicode categories refused in a name: control characters and the line and paragraph separators.
_NOT_IN_A_LINE = frozenset({"Cc", "Zl", "Zp"})


def line_problem(value: str) -> str | None:
    """What keeps a name from being one line of text (None: nothing): blank, or a control
    character (which would break a line of HL7, CSV, a table or the page, or hide what follows)."""
    if not value.strip():
        return "must not be blank"
    for char in value:
        if unicodedata.category(char) in _NOT_IN_A_LINE:
            return f"must be one line of text without control characters: {char!r}"
    return None


def validation_line(error: ValidationError) -> str:
    """A pydantic ValidationError as one line: `field: message; field: message` (the CLI's
    errors, and a job's whose stored scenario a later rule refuses)."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item.get("loc", ())) or "scenario"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def _one_line(value: str) -> str:
    problem = line_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _no_formula(value: str) -> str:
    """A front name is a cell of patients.csv (its `front` column), unquoted by any spreadsheet."""
    if value.startswith(FORMULA_START):
        starts = ", ".join(repr(c) for c in FORMULA_START[:-1]) + f" or {FORMULA_START[-1]!r}"
        raise ValueError(
            f"must not begin with {starts}: a spreadsheet opening patients.csv "
            "would read the cell as a formula"
        )
    return value


class InjuryMix(_Strict):
    """Fractions of casualties by category. Default fits an evacuation population (domain.md)."""

    disease: Fraction = 0.52
    non_battle_injury: Fraction = 0.33
    battle_injury: Fraction = 0.15

    @model_validator(mode="after")
    def _sums_to_one(self) -> InjuryMix:
        check_sum([self.disease, self.non_battle_injury, self.battle_injury], "injury_mix")
        return self

    def as_dict(self) -> dict[str, float]:
        return {
            "disease": self.disease,
            "non_battle_injury": self.non_battle_injury,
            "battle_injury": self.battle_injury,
        }


class WarfareMix(_Strict):
    """Share of casualties by kind of fighting; drives mechanisms and the hour-of-day pattern."""

    conventional: Fraction = 0.0
    artillery: Fraction = 0.0
    urban: Fraction = 0.0
    guerrilla: Fraction = 0.0
    drone: Fraction = 0.0
    naval: Fraction = 0.0
    cbrn: Fraction = 0.0
    peacekeeping: Fraction = 0.0

    @model_validator(mode="after")
    def _sums_to_one(self) -> WarfareMix:
        check_sum(list(self.as_dict().values()), "warfare")
        return self

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in type(self).model_fields}


DEFAULT_WARFARE = WarfareMix(conventional=0.45, artillery=0.30, drone=0.15, urban=0.10)


class Front(_Strict):
    """A front: its share of all casualties and the nations fighting there."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=80),
        AfterValidator(_one_line),
        AfterValidator(_no_formula),
    ]
    share: Fraction
    nationalities: Annotated[dict[Nation, Fraction], Field(min_length=1)]

    @field_validator("nationalities", mode="before")
    @classmethod
    def _armed_forces_only(cls, value: object) -> object:
        if isinstance(value, dict):
            for code, why in NO_ARMED_FORCES.items():
                if code in value:
                    raise ValueError(f"{code}: {why}; it supplies no casualties")
        return value

    @field_validator("nationalities")
    @classmethod
    def _nations_sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        check_sum(list(value.values()), "nationalities")
        return value


DEFAULT_FRONTS = (
    Front(name="East", share=0.6, nationalities={"POL": 0.4, "USA": 0.35, "DEU": 0.25}),
    Front(name="North", share=0.4, nationalities={"EST": 0.3, "GBR": 0.4, "FIN": 0.3}),
)


class MassCasualty(_Strict):
    """Mass-casualty events: how often they happen and how many casualties each brings."""

    rate_per_day: Annotated[float, Field(ge=0.0, le=20.0, allow_inf_nan=False)] = 0.1
    min_size: Annotated[int, Field(ge=2, le=10_000)] = 8
    max_size: Annotated[int, Field(ge=2, le=10_000)] = 40

    @model_validator(mode="after")
    def _size_range(self) -> MassCasualty:
        if self.min_size > self.max_size:
            raise ValueError(
                f"mass_casualty.min_size ({self.min_size}) exceeds max_size ({self.max_size})"
            )
        return self


class TriageMix(_Strict):
    """Target shares of triage categories among battle injuries (a tuning knob, not data)."""

    T1: Fraction
    T2: Fraction
    T3: Fraction
    T4: Fraction

    @model_validator(mode="after")
    def _sums_to_one(self) -> TriageMix:
        check_sum([self.T1, self.T2, self.T3, self.T4], "triage_mix")
        return self


Minutes = Annotated[float, Field(gt=0.0, le=7 * 24 * 60, allow_inf_nan=False)]


class EvacuationDelays(_Strict):
    """Median transit times in minutes between echelons (10-1-2 and 9-line planning figures)."""

    poi_to_role1: Minutes = 45.0
    role1_to_role2: Minutes = 90.0
    role2_to_role3: Minutes = 240.0
    # the strategic aeromedical leg itself (flight and transfers); the wait for the flight is
    # spent at Role 3. Bounded to 0.5-2 times this median in generation, so at most 12 hours:
    # a leg lasts at most 24 hours (the coherence rule r4_leg_implausible).
    role3_to_role4: Annotated[float, Field(gt=0.0, le=12 * 60, allow_inf_nan=False)] = 600.0


class Calibration(_Strict):
    """Optional overrides of calibrated defaults; absent values keep the defaults of domain.md."""

    triage_mix: TriageMix | None = None
    battle_cfr: Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)] | None = None
    # None: each nation's published share (FEMALE_SHARE); a number: that share for every nation
    female_share: Fraction | None = None
    evacuation_delays: EvacuationDelays = EvacuationDelays()


def _front_list_problems(raw: object) -> list[ValueError]:
    """Problems across a list of fronts (unique names, shares summing to 1), read from raw input."""
    if not isinstance(raw, list | tuple):
        return []
    problems: list[ValueError] = []
    if not 1 <= len(raw) <= MAX_FRONTS:
        problems.append(ValueError(f"fronts must have 1 to {MAX_FRONTS} items, got {len(raw)}"))
    items = [item for item in raw if isinstance(item, dict)]
    names = [name for item in items if isinstance(name := item.get("name"), str)]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(
            ValueError(f"front names must be unique, repeated: {', '.join(duplicates)}")
        )
    shares = [item.get("share") for item in items]
    if (
        items
        and len(items) == len(raw)
        and all(isinstance(share, int | float) and not isinstance(share, bool) for share in shares)
    ):
        try:
            check_sum([float(share) for share in shares], "fronts[].share")  # type: ignore[arg-type]
        except ValueError as problem:
            problems.append(problem)
    return problems


class Scenario(_Strict):
    """Everything that determines a generated population; with the seed, it fixes every byte."""

    name: Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_one_line)] = (
        "scenario"
    )
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    total_patients: Annotated[int, Field(ge=1, le=MAX_PATIENTS)] = 1000
    start: Annotated[AwareDatetime, Field(strict=False)] = DEFAULT_START  # from ISO 8601 text
    duration_days: Annotated[int, Field(ge=1, le=365)] = 30
    intensity: Intensity = "medium"
    tempo: Tempo = "sustained"
    warfare: WarfareMix = DEFAULT_WARFARE
    injury_mix: InjuryMix = InjuryMix()
    # Length is checked with the other cross-front rules: pydantic's own min_length would add a
    # spurious "too short" error whenever one front is invalid.
    fronts: Annotated[
        tuple[Front, ...],
        Field(strict=False, json_schema_extra={"minItems": 1, "maxItems": MAX_FRONTS}),
    ] = DEFAULT_FRONTS
    mass_casualty: MassCasualty = MassCasualty()
    calibration: Calibration = Calibration()
    transliterate_names: bool = False  # Latin script for Greek, Bulgarian and Macedonian names
    # The medical plan (medical_plan.py): "unlimited" (default) keeps infinite capacity and is
    # left out of every dump, so scenarios without a plan serialise exactly as before; "sized"
    # is replaced by the default plan of this scenario at validation.
    capacity: Annotated[
        Literal["unlimited", "sized"] | MedicalPlan, Field(union_mode="left_to_right")
    ] = "unlimited"

    @field_validator("start", mode="before")
    @classmethod
    def _start_is_iso_text(cls, value: object) -> object:
        """ISO 8601 text only: pydantic alone would also read numbers (and "5") as Unix time."""
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        elif isinstance(value, datetime):
            return value
        raise ValueError("start must be an ISO 8601 date and time with a UTC offset")

    @field_validator("start")
    @classmethod
    def _normalise_start(cls, value: datetime) -> datetime:
        start = value.astimezone(UTC)
        # Bounded so that every timestamp of the scenario (start + duration + the longest stay in
        # the chain of care) stays a valid datetime; dates outside this range make no sense here.
        if not EARLIEST_START <= start < LATEST_START:
            raise ValueError(
                f"start must be between {EARLIEST_START:%Y-%m-%d} and {LATEST_START:%Y-%m-%d}"
            )
        return start

    @field_validator("fronts", mode="wrap")
    @classmethod
    def _fronts_consistent(
        cls, value: object, handler: ValidatorFunctionWrapHandler
    ) -> tuple[Front, ...]:
        """Check names and shares across fronts, even when one front is itself invalid.

        A plain "after" validator would not run while any front has an error, so a user would see
        the share sum only after fixing everything else; every problem is reported at once instead.
        """
        errors: list[InitErrorDetails] = []
        fronts: tuple[Front, ...] = ()
        try:
            fronts = handler(value)
        except ValidationError as exc:
            errors = [
                {"type": e["type"], "loc": e["loc"], "input": e["input"], "ctx": e.get("ctx", {})}
                for e in exc.errors()
            ]
        raw = value if errors else [front.model_dump() for front in fronts]
        errors += [
            {"type": "value_error", "loc": (), "input": value, "ctx": {"error": problem}}
            for problem in _front_list_problems(raw)
        ]
        if errors:
            raise ValidationError.from_exception_data("fronts", errors)
        return fronts

    @field_validator("capacity", mode="wrap")
    @classmethod
    def _capacity_fits_fronts(
        cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Literal["unlimited"] | MedicalPlan:
        """Every problem of the plan at once: its own, and fronts that differ from the
        scenario's; "sized" becomes the default plan of the scenario."""
        if isinstance(value, dict):  # a plan: its own errors only, not the union's
            try:
                value = MedicalPlan.model_validate(value)
            except ValidationError as exc:
                raise ValidationError.from_exception_data(
                    "capacity",
                    [_detail(e) for e in exc.errors()],
                ) from None
        plan = handler(value)
        fronts = info.data.get("fronts")
        if plan == "unlimited" or fronts is None:
            return "unlimited" if plan == "unlimited" else plan
        if plan == "sized":
            return default_plan(
                [(f.name, f.share) for f in fronts],
                int(info.data.get("total_patients", 1000)),
                int(info.data.get("duration_days", 30)),
            )
        errors: list[InitErrorDetails] = []
        names = [f.name for f in fronts]
        planned = [f.front for f in plan.fronts]
        for i, front in enumerate(plan.fronts):
            for problem in front_problems(front):
                errors.append(_problem(("fronts", i), problem))
        for name in sorted({n for n in planned if planned.count(n) > 1}):
            errors.append(_problem(("fronts",), f"front {name!r} is planned more than once"))
        for name in [n for n in planned if n not in names]:
            errors.append(_problem(("fronts",), f"front {name!r} is not a front of the scenario"))
        for name in [n for n in names if n not in planned]:
            errors.append(_problem(("fronts",), f"front {name!r} has no medical plan"))
        if errors:
            raise ValidationError.from_exception_data("capacity", errors)
        return plan

    @property
    def medical_plan(self) -> MedicalPlan | None:
        """The plan, or None for unlimited capacity."""
        return self.capacity if isinstance(self.capacity, MedicalPlan) else None

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        data = super().model_dump(**kwargs)
        if self.capacity == "unlimited":  # not a field of the scenarios made before plans
            data.pop("capacity", None)
        return data

    def canonical_json(self) -> bytes:
        """The scenario as canonical JSON bytes: stable keys, so equal scenarios hash equal."""
        import orjson

        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def _detail(e: Any) -> InitErrorDetails:
    return {"type": e["type"], "loc": e["loc"], "input": e["input"], "ctx": e.get("ctx", {})}


def _problem(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": None, "ctx": {"error": ValueError(message)}}


class Preset(BaseModel):
    """A named, documented, valid scenario."""

    name: str
    description: str
    scenario: Scenario


def _preset(key: str, description: str, **fields: object) -> Preset:
    return Preset(name=key, description=description, scenario=Scenario.model_validate(fields))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset(
            "training-exercise",
            "A small two-week training exercise: mostly disease and non-battle injuries.",
            name="Training exercise",
            seed=1001,
            total_patients=500,
            duration_days=14,
            intensity="low",
            tempo="sustained",
            warfare={"conventional": 0.7, "peacekeeping": 0.3},
            injury_mix={"disease": 0.60, "non_battle_injury": 0.35, "battle_injury": 0.05},
            fronts=[
                {"name": "Training area", "share": 1.0,
                 "nationalities": {"DEU": 0.4, "NLD": 0.3, "NOR": 0.3}},
            ],
            mass_casualty={"rate_per_day": 0.05, "min_size": 4, "max_size": 12},
        ),
        _preset(
            "high-intensity-defence",
            "A 30-day high-intensity defence on three fronts with artillery and drones.",
            name="High-intensity multi-front defence",
            seed=2002,
            total_patients=20_000,
            duration_days=30,
            intensity="high",
            tempo="escalating",
            warfare={"conventional": 0.35, "artillery": 0.35, "drone": 0.2, "urban": 0.1},
            injury_mix={"disease": 0.35, "non_battle_injury": 0.25, "battle_injury": 0.40},
            fronts=[
                {"name": "Baltic", "share": 0.4,
                 "nationalities": {"EST": 0.2, "LVA": 0.2, "LTU": 0.2, "GBR": 0.2, "DEU": 0.2}},
                {"name": "Suwalki", "share": 0.35,
                 "nationalities": {"POL": 0.5, "USA": 0.3, "CAN": 0.2}},
                {"name": "Black Sea", "share": 0.25,
                 "nationalities": {"ROU": 0.5, "BGR": 0.25, "FRA": 0.25}},
            ],
            mass_casualty={"rate_per_day": 0.5, "min_size": 10, "max_size": 60},
        ),
        _preset(
            "urban-assault",
            "A one-week urban assault: gunshot wounds, fragments and building collapse.",
            name="Urban assault",
            seed=3003,
            total_patients=3_000,
            duration_days=7,
            intensity="extreme",
            tempo="surge",
            warfare={"urban": 0.7, "conventional": 0.2, "drone": 0.1},
            injury_mix={"disease": 0.25, "non_battle_injury": 0.20, "battle_injury": 0.55},
            fronts=[
                {"name": "City", "share": 1.0,
                 "nationalities": {"USA": 0.5, "GBR": 0.3, "ITA": 0.2}},
            ],
            mass_casualty={"rate_per_day": 0.8, "min_size": 5, "max_size": 30},
        ),
        _preset(
            "peacekeeping",
            "A six-month peacekeeping mission: disease dominates, rare attacks.",
            name="Peacekeeping mission",
            seed=4004,
            total_patients=2_000,
            duration_days=180,
            intensity="low",
            tempo="intermittent",
            warfare={"peacekeeping": 0.8, "guerrilla": 0.2},
            injury_mix={"disease": 0.62, "non_battle_injury": 0.33, "battle_injury": 0.05},
            fronts=[
                {"name": "Sector North", "share": 0.5,
                 "nationalities": {"ITA": 0.5, "ESP": 0.5}},
                {"name": "Sector South", "share": 0.5,
                 "nationalities": {"PRT": 0.3, "SVN": 0.3, "HUN": 0.4}},
            ],
            mass_casualty={"rate_per_day": 0.01, "min_size": 3, "max_size": 10},
        ),
        _preset(
            "mass-casualty-drill",
            "A two-day drill built around frequent mass-casualty events.",
            name="Mass-casualty drill",
            seed=5005,
            total_patients=1_000,
            duration_days=2,
            intensity="high",
            tempo="surge",
            warfare={"artillery": 0.5, "drone": 0.3, "cbrn": 0.2},
            injury_mix={"disease": 0.10, "non_battle_injury": 0.15, "battle_injury": 0.75},
            fronts=[
                {"name": "Drill site", "share": 1.0,
                 "nationalities": {"CZE": 0.4, "SVK": 0.3, "HUN": 0.3}},
            ],
            mass_casualty={"rate_per_day": 6.0, "min_size": 20, "max_size": 80},
        ),
        _preset(
            "sustained-operation",
            "A year-long sustained operation with a steady flow of casualties of every kind.",
            name="Long sustained operation",
            seed=6006,
            total_patients=100_000,
            duration_days=365,
            intensity="medium",
            tempo="sustained",
            warfare={"conventional": 0.4, "artillery": 0.25, "guerrilla": 0.15,
                     "drone": 0.15, "naval": 0.05},
            fronts=[
                {"name": "East", "share": 0.6,
                 "nationalities": {"POL": 0.3, "USA": 0.3, "DEU": 0.2, "NLD": 0.2}},
                {"name": "North", "share": 0.25,
                 "nationalities": {"NOR": 0.3, "SWE": 0.3, "DNK": 0.2, "FIN": 0.2}},
                {"name": "South", "share": 0.15,
                 "nationalities": {"GRC": 0.4, "TUR": 0.4, "MKD": 0.2}},
            ],
        ),
    )
}  # fmt: skip

DEFAULT_PRESET = "training-exercise"
