"""Medical plans for the care-chain tests: ample (nothing ever waits) and starved, for the
fronts of a scenario, with the unit counts of unlimited capacity (4 R1, R2B + R2E, 1 R3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patientgen.scenario import PRESETS, Scenario


def front_plan(name: str, size: str) -> dict[str, Any]:
    if size == "ample":
        unit = {"treatment_teams": 100, "holding_beds": 5000}
        surgical = {**unit, "operating_tables": 100, "icu_beds": 1000}
        facilities = [
            {"role": "R1", "count": 4, **unit},
            {"role": "R2B", **surgical},
            {"role": "R2E", **surgical},
            {"role": "R3", **surgical},
        ]
        lift = {"count": 1000, "patients_per_lift": 4, "turnaround_minutes": 60}
        return {"front": name, "facilities": facilities, "ground_ambulances": lift,
                "helicopters": lift}  # fmt: skip
    facilities = [
        {"role": "R1", "count": 4, "treatment_teams": 1, "holding_beds": 3},
        {"role": "R2B", "treatment_teams": 1, "operating_tables": 1, "table_hours": 12,
         "holding_beds": 4},
        {"role": "R2E", "treatment_teams": 1, "operating_tables": 1, "icu_beds": 1,
         "holding_beds": 6},
        {"role": "R3", "treatment_teams": 1, "operating_tables": 1, "icu_beds": 2,
         "holding_beds": 10},
    ]  # fmt: skip
    return {
        "front": name,
        "facilities": facilities,
        "ground_ambulances": {"count": 2, "patients_per_lift": 2, "turnaround_minutes": 180},
        "helicopters": {"count": 1, "patients_per_lift": 2, "turnaround_minutes": 120,
                        "night": False},
    }  # fmt: skip


def with_capacity(scenario: Scenario, size: str, **changes: Any) -> Scenario:
    """`scenario` (with `changes`) under an "ample" or "starved" plan, or "sized" / "unlimited"."""
    data = {**scenario.model_dump(mode="json"), **changes}
    if size in ("ample", "starved"):
        data["capacity"] = {"fronts": [front_plan(f["name"], size) for f in data["fronts"]]}
    else:
        data["capacity"] = size
    return Scenario.model_validate(data)


def drill(size: str, **changes: Any) -> Scenario:
    """The 2-day mass-casualty drill preset under a plan of `size`."""
    return with_capacity(PRESETS["mass-casualty-drill"].scenario, size, **changes)


@dataclass(frozen=True)
class Load:
    """What the sized plan's factors should cover (`measured_load`)."""

    #: per role the largest over the presets of (share of casualties reaching it, mean hours of
    #: stay, mean hours of a treatment team, bed-hours a casualty, team-hours a casualty)
    roles: dict[str, tuple[float, ...]]
    #: the largest ground and air legs a casualty
    legs: tuple[float, float]
    #: per role with tables the largest over the presets of (operating-table hours a casualty,
    #: ICU bed-hours a casualty)
    care: dict[str, tuple[float, float]]


def measured_load(patients: int) -> Load:
    """What the sized plan's factors (medical_plan.ROLE_LOAD, GROUND_LEGS, AIR_LEGS,
    SURGERY_LOAD, ICU_LOAD) should cover, measured on the generator's own paths with unlimited
    capacity, every preset at `patients`: the stages that hold a team and a bed (not the
    minimal's: walking wounded since generator 1.21.0), the legs with a lift, the operations (the
    first surgical procedure's table time) and the ICU stays (from the end of the operation, or
    of the team's care without one, to the departure: as the simulation holds an ICU bed)."""
    from collections import defaultdict

    from patientgen.generator import generate
    from patientgen.generator.flow import AIR, MINIMAL, skeleton
    from patientgen.generator.plan import plan_for

    largest: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    care: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    legs = [0.0, 0.0]
    for preset in sorted(PRESETS):
        data = PRESETS[preset].scenario.model_dump(mode="json")
        scenario = Scenario.model_validate({**data, "total_patients": patients})
        plan = plan_for(scenario)
        visits: dict[str, int] = defaultdict(int)
        stay: dict[str, float] = defaultdict(float)
        team: dict[str, float] = defaultdict(float)
        table: dict[str, float] = defaultdict(float)
        icu: dict[str, float] = defaultdict(float)
        lifts = [0, 0]
        for p in generate(scenario):
            sk = skeleton(plan, p)
            for stage in sk.stages if sk is not None else ():
                if stage.lift is not None:
                    lifts[stage.lift == AIR] += 1
                role = stage.role
                if stage.surgery_at is not None:
                    table[role] += stage.surgery_s / 3600
                if stage.icu:
                    cared = (
                        stage.surgery_at + stage.surgery_s
                        if stage.surgery_at is not None
                        else stage.triaged + stage.treat_s
                    )
                    icu[role] += max(0, stage.leave - cared) / 3600
                if stage.rank == MINIMAL:
                    continue
                visits[role] += 1
                stay[role] += (stage.leave - stage.arrive) / 3600
                team[role] += stage.treat_s / 3600
        for role, n in visits.items():
            measured = (n / patients, stay[role] / n, team[role] / n, stay[role] / patients,
                        team[role] / patients)  # fmt: skip
            largest[role] = [max(a, b) for a, b in zip(largest[role], measured, strict=True)]
        for role in table.keys() | icu.keys():
            here = (table[role] / patients, icu[role] / patients)
            care[role] = [max(a, b) for a, b in zip(care[role], here, strict=True)]
        legs = [max(legs[0], lifts[0] / patients), max(legs[1], lifts[1] / patients)]
    return Load(
        {role: tuple(v) for role, v in sorted(largest.items())},
        (legs[0], legs[1]),
        {role: (v[0], v[1]) for role, v in sorted(care.items())},
    )
