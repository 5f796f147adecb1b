"""The care-chain simulation's work grows with the casualties and the days, never with their
product or square: a plan starved for beds keeps thousands waiting at once, and a step that
walks every queue at each event or each hour makes a large job of such a plan take hours. Each
care call once walked its whole queue to mark who now waited for a bed, and each hour every
queue was counted: the phase of 5,000 casualties of the plan below over 2 days took 1.9 s of
CPU, 20,000 took 47 s (now 1.5 s; 200,000 over 30 days take 15 s).

The measure is the number of lines of generator/chain.py run (sys.settrace, that module's frames
only): exact and the same on every machine, unlike a time. Four times the casualties over four
times the days must cost about four times the lines (3.9 here); before, it cost 12.7 times,
and the hourly count of every queue alone (the care calls' walk mended) 8.4 times."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

from patientgen.generator.chain import simulate
from patientgen.generator.plan import plan_for
from patientgen.generator.skeleton_path import skeletons
from patientgen.scenario import Scenario

CHAIN = str(Path(simulate.__code__.co_filename))

#: One unit of each role with one team and one bed each, and ambulances enough: the casualties
#: reach the units, whose queues then hold most of them for most of the run.
STARVED_FRONT = {
    "front": "Drill site",
    "facilities": [
        {"role": "R1", "treatment_teams": 1, "holding_beds": 1},
        {"role": "R2B", "treatment_teams": 1, "operating_tables": 1, "table_hours": 4.0,
         "icu_beds": 1, "holding_beds": 1},
        {"role": "R3", "treatment_teams": 1, "operating_tables": 1, "icu_beds": 1,
         "holding_beds": 1},
    ],
    "ground_ambulances": {"count": 50, "patients_per_lift": 4, "turnaround_minutes": 60},
    "helicopters": {"count": 0, "patients_per_lift": 1, "turnaround_minutes": 60},
}  # fmt: skip


def _scenario(patients: int, days: int) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "starved",
            "seed": 17,
            "total_patients": patients,
            "duration_days": days,
            "fronts": [{"name": "Drill site", "share": 1.0, "nationalities": {"CZE": 1.0}}],
            "capacity": {"fronts": [STARVED_FRONT]},
        }
    )


def _lines_run(scenario: Scenario) -> tuple[int, int]:
    """(lines of chain.py run by the simulation, casualties who died waiting)."""
    plan = plan_for(scenario)
    store = skeletons(plan)
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == CHAIN else None

    sys.settrace(calls)
    try:
        sim = simulate(plan, store)
    finally:
        sys.settrace(None)
    died = sum(1 for r in sim.records().values() if r.death is not None)
    return count, died


def test_a_starved_plan_costs_work_in_proportion_to_its_casualties_and_days():
    small, small_died = _lines_run(_scenario(300, 30))
    large, large_died = _lines_run(_scenario(1200, 120))
    # the plan is starved indeed: casualties die waiting in both
    assert small_died > 0 and large_died > 0
    assert large / small < 6.0, (small, large, large / small)
