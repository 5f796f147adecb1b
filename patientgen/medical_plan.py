"""The medical plan of a scenario: facilities with capacities and evacuation assets, per front.

`Scenario.capacity` is either `"unlimited"` (the default: every facility and lift has infinite
capacity, today's model, byte for byte), `"sized"` (the default plan of the scenario, built by
`default_plan` from the planning figures of docs/care-chain.md), or a `MedicalPlan` given in full.

Invariants checked here (every problem is reported at once):
- each front of the plan has exactly one group of facilities per role it lists, with Role 1,
  Role 3 and at least one of Role 2 Basic / Enhanced (every path of the generator uses them);
- Role 1 has no operating table and no ICU bed; every Role 2 and Role 3 has an operating table;
- ground ambulances exist on every front (helicopters may be 0: air legs then go by road).
The plan's fronts must be exactly the scenario's fronts (checked in scenario.py, where both are).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

FacilityRole = Literal["R1", "R2B", "R2E", "R3"]
ROLES: tuple[FacilityRole, ...] = ("R1", "R2B", "R2E", "R3")
#: The role of a facility in the patient records (Role 2 Basic and Enhanced are both "R2").
RECORD_ROLE: dict[str, str] = {"R1": "R1", "R2B": "R2", "R2E": "R2", "R3": "R3"}
#: Hours of darkness on the scenario clock (UTC): [NIGHT_START, 24) and [0, NIGHT_END).
NIGHT_START = 20
NIGHT_END = 6
#: Operating tables with fewer than 24 working hours a day open at this hour.
TABLES_OPEN_AT = 6


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FacilityGroup(_Strict):
    """`count` identical units of one role on a front, and the capacity of each unit."""

    role: FacilityRole
    count: Annotated[int, Field(ge=1, le=20)] = 1
    treatment_teams: Annotated[int, Field(ge=1, le=100)]
    operating_tables: Annotated[int, Field(ge=0, le=100)] = 0
    #: hours a day the surgical teams operate (24: round the clock, two or more teams)
    table_hours: Annotated[float, Field(gt=0.0, le=24.0, allow_inf_nan=False)] = 24.0
    icu_beds: Annotated[int, Field(ge=0, le=2000)] = 0
    holding_beds: Annotated[int, Field(ge=1, le=10000)]


class Lift(_Strict):
    """One kind of evacuation asset on a front (ground ambulances or helicopters)."""

    count: Annotated[int, Field(ge=0, le=1000)]
    patients_per_lift: Annotated[int, Field(ge=1, le=50)]
    #: from dispatch back to ready for the next lift (out, load, transit, unload, back)
    turnaround_minutes: Annotated[float, Field(gt=0.0, le=24 * 60, allow_inf_nan=False)]
    #: available during the hours of darkness (NIGHT_START to NIGHT_END)
    night: bool = True


class FrontCare(_Strict):
    """The medical plan of one front."""

    front: Annotated[str, Field(min_length=1, max_length=80)]
    facilities: Annotated[tuple[FacilityGroup, ...], Field(strict=False, max_length=8)]
    ground_ambulances: Lift
    helicopters: Lift

    def group(self, role: str) -> FacilityGroup | None:
        return next((g for g in self.facilities if g.role == role), None)


def front_problems(front: FrontCare) -> list[str]:
    """Every problem of one front's plan (empty when it is valid)."""
    problems: list[str] = []
    roles = [g.role for g in front.facilities]
    repeated = sorted({r for r in roles if roles.count(r) > 1})
    if repeated:
        problems.append(f"front {front.front!r}: one group per role, repeated: {repeated}")
    for needed in ("R1", "R3"):
        if needed not in roles:
            problems.append(f"front {front.front!r}: needs a {needed} facility")
    if "R2B" not in roles and "R2E" not in roles:
        problems.append(f"front {front.front!r}: needs an R2B or R2E facility")
    for g in front.facilities:
        if g.role == "R1" and (g.operating_tables or g.icu_beds):
            problems.append(f"front {front.front!r}: R1 has no operating table nor ICU bed")
        if g.role != "R1" and g.operating_tables < 1:
            problems.append(f"front {front.front!r}: {g.role} needs an operating table")
    if front.ground_ambulances.count < 1:
        problems.append(f"front {front.front!r}: needs at least one ground ambulance")
    return problems


class MedicalPlan(_Strict):
    """Facilities and evacuation assets of every front (see docs/care-chain.md)."""

    fronts: Annotated[tuple[FrontCare, ...], Field(strict=False, max_length=20)]


# --- the default ("sized") plan --------------------------------------------------------------
#: Doctrinal capacity of one unit of each role (docs/care-chain.md gives the sources), for one
#: "set" of about SET_CASUALTIES_PER_DAY casualties a day on a front.
DOCTRINE: dict[str, dict[str, float]] = {
    "R1": {"count": 4, "treatment_teams": 2, "holding_beds": 10},
    "R2B": {"count": 1, "treatment_teams": 2, "operating_tables": 1, "icu_beds": 2,
            "holding_beds": 20},
    "R2E": {"count": 1, "treatment_teams": 3, "operating_tables": 2, "icu_beds": 4,
            "holding_beds": 30},
    "R3": {"count": 1, "treatment_teams": 4, "operating_tables": 4, "icu_beds": 12,
           "holding_beds": 100},
}  # fmt: skip
GROUND = {"count": 8, "patients_per_lift": 4, "turnaround_minutes": 120.0}
AIR = {"count": 3, "patients_per_lift": 4, "turnaround_minutes": 90.0}
SET_CASUALTIES_PER_DAY = 100.0


def default_plan(
    fronts: list[tuple[str, float]], total_patients: int, duration_days: int
) -> MedicalPlan:
    """The sized plan of a scenario: per front, the doctrinal units of DOCTRINE, their teams,
    tables, beds and lifts multiplied by the number of sets of SET_CASUALTIES_PER_DAY casualties
    a day the front receives (at least one). `fronts`: (name, share) in scenario order."""
    plans = []
    for name, share in fronts:
        per_day = total_patients * share / duration_days
        k = max(1, math.ceil(per_day / SET_CASUALTIES_PER_DAY))
        groups = []
        for role in ROLES:
            d = DOCTRINE[role]
            groups.append(
                FacilityGroup(
                    role=role,
                    count=int(d["count"]),
                    treatment_teams=int(d["treatment_teams"]) * k,
                    operating_tables=int(d.get("operating_tables", 0)) * k,
                    icu_beds=int(d.get("icu_beds", 0)) * k,
                    holding_beds=int(d["holding_beds"]) * k,
                )
            )
        plans.append(
            FrontCare(
                front=name,
                facilities=tuple(groups),
                ground_ambulances=Lift(
                    count=int(GROUND["count"]) * k,
                    patients_per_lift=int(GROUND["patients_per_lift"]),
                    turnaround_minutes=GROUND["turnaround_minutes"],
                ),
                helicopters=Lift(
                    count=int(AIR["count"]) * k,
                    patients_per_lift=int(AIR["patients_per_lift"]),
                    turnaround_minutes=AIR["turnaround_minutes"],
                ),
            )
        )
    return MedicalPlan(fronts=tuple(plans))
