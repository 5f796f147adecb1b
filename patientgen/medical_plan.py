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
    treatment_teams: Annotated[int, Field(ge=1, le=5000)]
    operating_tables: Annotated[int, Field(ge=0, le=5000)] = 0
    #: hours a day the surgical teams operate (24: round the clock, two or more teams)
    table_hours: Annotated[float, Field(gt=0.0, le=24.0, allow_inf_nan=False)] = 24.0
    icu_beds: Annotated[int, Field(ge=0, le=50000)] = 0
    holding_beds: Annotated[int, Field(ge=1, le=500000)]


class Lift(_Strict):
    """One kind of evacuation asset on a front (ground ambulances or helicopters)."""

    count: Annotated[int, Field(ge=0, le=50000)]
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
#: Doctrinal minimum of one unit of each role (docs/care-chain.md gives the sources): a sized
#: plan never has less.
DOCTRINE: dict[str, dict[str, int]] = {
    "R1": {"count": 4, "treatment_teams": 2, "holding_beds": 10},
    "R2B": {"count": 1, "treatment_teams": 2, "operating_tables": 1, "icu_beds": 2,
            "holding_beds": 20},
    "R2E": {"count": 1, "treatment_teams": 3, "operating_tables": 2, "icu_beds": 4,
            "holding_beds": 30},
    "R3": {"count": 1, "treatment_teams": 4, "operating_tables": 4, "icu_beds": 12,
           "holding_beds": 100},
}  # fmt: skip
#: Planning factors per casualty of a front, measured on the generator's own paths with unlimited
#: capacity (every preset, 20,000 patients; the largest kept, rounded up; bench/
#: care_chain_figures.py measures them): share reaching the role, hours of stay there, hours of
#: a treatment team, of the casualties who hold a team and a bed there (not the minimal: walking
#: wounded since generator 1.21.0, they hold neither; counted until 1.33.0, which made the plan
#: 2 to 20 times what it carried).
ROLE_LOAD: dict[str, tuple[float, float, float]] = {
    # a concussion rests 24 hours, at Role 1 (1.6.0); what heals within days returns to duty
    # from Role 1 or 2 within 72 hours (1.18.0)
    "R1": (0.35, 1.1, 0.31),
    # Role 2 holds 72 hours at most (generator 1.3.0); a trauma team resuscitates, then the
    # operating table takes over (1.4.0)
    "R2": (0.53, 6.4, 0.20),
    # stays of 3-7 days (moderate) or 5-20 (severe); a team works up the casualty whose second
    # look is planned for the next day (1.40.0)
    "R3": (0.52, 130.0, 0.20),
}
#: Share operated on, and operating-table hours each, by role.
SURGERY_LOAD: dict[str, tuple[float, float]] = {"R2": (0.45, 1.1), "R3": (0.41, 0.9)}
#: Share needing an ICU bed, and hours in it, by role.
ICU_LOAD: dict[str, tuple[float, float]] = {"R2": (0.10, 6.0), "R3": (0.05, 110.0)}
#: Ground and air legs per casualty (measured as ROLE_LOAD, the legs with a lift: 1.10 and 0.16
#: at most, the mass-casualty drill; 1.8 ground legs until 1.33.0, 0.9 until 1.37.0, whose
#: broken legs and open fractures, minimal before, ride an ambulance, 1.0 until 1.39.0, whose
#: wounds debrided at Role 2, minimal before, are delayed there and ride on).
GROUND_LEGS = 1.2
AIR_LEGS = 0.2
#: Peak load over the mean: the busiest days of a tempo (escalating, surge: about 2x the mean)
#: and mass-casualty events (tens of casualties within the hour) bring casualties in bursts.
PEAK = 4.0
#: Treatment teams are sized for twice that: every casualty needs one on arrival, in bursts.
TEAM_PEAK = 2.0
#: Target use of operating tables at the peak (queues grow fast near full use).
TABLE_USE = 0.8
GROUND_LIFT, GROUND_TURNAROUND = 4, 120.0
AIR_LIFT, AIR_TURNAROUND = 4, 90.0
_MIN_GROUND, _MIN_AIR = 8, 3


def _need(
    per_day: float, share: float, hours: float, units: int, floor: int, peak: float = PEAK
) -> int:
    """Servers per unit for `per_day` casualties, `share` of them holding one `hours` each, at
    `peak` over the mean, split over `units`; never below the doctrinal `floor`."""
    total = peak * per_day * share * hours / 24.0
    return max(floor, math.ceil(total / units))


def default_plan(
    fronts: list[tuple[str, float]], total_patients: int, duration_days: int
) -> MedicalPlan:
    """The sized plan of a scenario (`fronts`: (name, share) in scenario order): per front, the
    units of DOCTRINE (4 Role 1, a Role 2 Basic and Enhanced, a Role 3), each with the teams,
    tables, ICU and holding beds its share of the front's casualties needs at PEAK load (stays
    longer than the scenario count for its length only), and the lifts the legs need."""
    hours_max = duration_days * 24.0
    plans = []
    for name, share in fronts:
        per_day = total_patients * share / duration_days
        groups = []
        for role in ROLES:
            d = DOCTRINE[role]
            record = RECORD_ROLE[role]
            units = 2 if record == "R2" else d["count"]
            visits, stay, treat = ROLE_LOAD[record]
            tables = icu = 0
            if record in SURGERY_LOAD:
                s_share, s_hours = SURGERY_LOAD[record]
                tables = _need(per_day, s_share, s_hours / TABLE_USE, units, d["operating_tables"])
                i_share, i_hours = ICU_LOAD[record]
                icu = _need(per_day, i_share, min(i_hours, hours_max), units, d["icu_beds"])
            groups.append(
                FacilityGroup(
                    role=role,
                    count=d["count"],
                    treatment_teams=_need(
                        per_day, visits, treat, units, d["treatment_teams"], PEAK * TEAM_PEAK
                    ),
                    operating_tables=tables,
                    icu_beds=icu,
                    holding_beds=_need(
                        per_day, visits, min(stay, hours_max), units, d["holding_beds"]
                    ),
                )
            )
        ground_per_day = 24 * 60 / GROUND_TURNAROUND
        air_per_day = 24 * 60 / AIR_TURNAROUND
        plans.append(
            FrontCare(
                front=name,
                facilities=tuple(groups),
                ground_ambulances=Lift(
                    count=max(
                        _MIN_GROUND, math.ceil(PEAK * per_day * GROUND_LEGS / ground_per_day)
                    ),
                    patients_per_lift=GROUND_LIFT,
                    turnaround_minutes=GROUND_TURNAROUND,
                ),
                helicopters=Lift(
                    count=max(_MIN_AIR, math.ceil(PEAK * per_day * AIR_LEGS / air_per_day)),
                    patients_per_lift=AIR_LIFT,
                    turnaround_minutes=AIR_TURNAROUND,
                ),
            )
        )
    return MedicalPlan(fronts=tuple(plans))
