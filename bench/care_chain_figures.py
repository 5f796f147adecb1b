"""The care-chain figures docs/care-chain.md quotes, measured again.

1. Died of wounds among the battle casualties who were not killed in action, with unlimited
   capacity and under the preset's sized plan, for every preset, and the sized plan of the
   busiest (docs/care-chain.md, "The sized plan").
2. The 2-day mass-casualty drill under unlimited, ample and starved plans (the tests' plans,
   tests/care_chain_support.py), as summary.json reports it: the DOW rate (`pct_dow`), the p90
   wait to surgery and for a lift, the share of deaths with a delay cause (the table of
   docs/care-chain.md), and its starved plan over seeds 1-6 (how much its p90 moves).
3. 10-1-2 on the records: of the immediate (T1) battle casualties operated on at Role 2 or 3,
   the share on the table within 2 hours of wounding, by route (flown from the point of injury
   to Role 2, or taken through Role 1), the median hours from wounding, and the minutes from the
   triage there to the first operation (docs/care-chain.md, "10-1-2 in the records"; the rule
   t1_operated_late).
4. The planning factors of medical_plan.ROLE_LOAD as measured on the generator's own paths with
   unlimited capacity (every preset; the largest kept): share reaching each role, hours of stay
   there, hours of a treatment team; of the stages that hold a team and a bed (not the
   minimal's: walking wounded, they hold neither since generator 1.21.0), and their product
   per casualty (the bed-hours the plan sizes its holding beds for); the operating-table hours
   and ICU bed-hours a casualty at Role 2 and 3 (SURGERY_LOAD, ICU_LOAD); and the ground and air
   legs per casualty (GROUND_LEGS, AIR_LEGS).
5. The return to duty within 72 hours of the injury, by category (high-intensity defence,
   unlimited capacity): the battle casualties' is calibrated to Owens' 18 %
   (tests/test_calibration.py), the others' follow (docs/clinical-coherence.md, 1.18.0); and
   each category's mix of first triages (docs/clinical-coherence.md, 1.37.0: a broken leg or an
   open fracture is never minimal).
6. Who the simulation moves under each preset's sized plan: the share of the casualties with
   a record (a wait, a diversion, a death while waiting) and how many chunks of 1,000 hold one
   (README "Measured figures": what a job that makes its patients once would have to redo).

Counts, not times: the figures depend only on the generator, so one run is enough.

    .venv/bin/python bench/care_chain_figures.py                 # 20,000 patients a preset
    .venv/bin/python bench/care_chain_figures.py --patients 5000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson

# the repository first, for the tests' plans (tests/care_chain_support.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import statistics
from collections import Counter, defaultdict

from patientgen.formats import bundle
from patientgen.generator import GENERATOR_VERSION, generate
from patientgen.generator.care import SURGERY_MINUTES
from patientgen.generator.chainphase import run_phase
from patientgen.medical_plan import AIR_LEGS, GROUND_LEGS, ICU_LOAD, ROLE_LOAD, SURGERY_LOAD
from patientgen.scenario import PRESETS, Scenario
from tests.care_chain_support import drill, measured_load


def dow_of_the_wounded(preset: str, patients: int, capacity: str) -> float:
    """DOW / battle casualties not killed in action."""
    data = PRESETS[preset].scenario.model_dump(mode="json")
    scenario = Scenario.model_validate({**data, "total_patients": patients, "capacity": capacity})
    wounded = dow = 0
    for p in generate(scenario):
        if p.category == "battle_injury" and p.outcome != "KIA":
            wounded += 1
            dow += p.outcome == "DOW"
    return dow / wounded if wounded else 0.0


def sized_plan(preset: str) -> str:
    scenario = Scenario.model_validate(
        {**PRESETS[preset].scenario.model_dump(mode="json"), "capacity": "sized"}
    )
    assert scenario.medical_plan is not None
    front = scenario.medical_plan.fronts[0]
    units = "; ".join(
        f"{g.role} {g.treatment_teams}, {g.operating_tables}, {g.icu_beds}, {g.holding_beds}"
        for g in front.facilities
    )
    lifts = f"{front.ground_ambulances.count} ambulances, {front.helicopters.count} helicopters"
    return f"{units}; {lifts}"


def drill_row(size: str, out: Path) -> str:
    bundle.write_all(drill(size), ["ndjson"], out, chunk_size=400)
    summary = orjson.loads((out / "summary.json").read_bytes())
    chain = summary.get("care_chain") or {}
    waits = chain.get("wait_percentiles_minutes") or {}

    def p90(kind: str) -> str:
        value = (waits.get(kind) or {}).get("p90")
        return "—" if value is None else f"{value:,.0f} min"

    share = chain.get("share_of_deaths_with_delay")
    delayed = "—" if share is None else f"{share:.0%}"
    dow = summary["battle_injury"]["pct_dow"]
    return f"| {size} | {dow:.2%} | {p90('surgery')} | {p90('evacuation')} | {delayed} |"


def starved_over_seeds(out: Path) -> str:
    """The starved drill's p90 wait to surgery and DOW rate over seeds 1-6: their ranges."""
    waits, dows = [], []
    for seed in range(1, 7):
        folder = out / f"seed-{seed}"
        bundle.write_all(drill("starved").model_copy(update={"seed": seed}), ["ndjson"], folder,
                         chunk_size=400)  # fmt: skip
        summary = orjson.loads((folder / "summary.json").read_bytes())
        waits.append(summary["care_chain"]["wait_percentiles_minutes"]["surgery"]["p90"])
        dows.append(summary["battle_injury"]["pct_dow"])
    return (
        f"starved, seeds 1-6: p90 wait to surgery {min(waits):,.0f}-{max(waits):,.0f} min, "
        f"DOW {min(dows):.1%}-{max(dows):.1%}"
    )


def ten_one_two(preset: str, patients: int) -> str:
    """Immediate battle casualties operated on at Role 2 or 3 (unlimited capacity): within 2 h
    of wounding, overall and by route; median hours from wounding; minutes triage -> table."""
    data = PRESETS[preset].scenario.model_dump(mode="json")
    scenario = Scenario.model_validate({**data, "total_patients": patients})
    hours: dict[str, list[float]] = {"flown to Role 2": [], "through Role 1": []}
    to_table: list[float] = []
    for p in generate(scenario):
        if p.category != "battle_injury" or p.triage != "T1" or p.outcome == "KIA":
            continue
        for v in p.visits:
            operated = [x.performed_at for x in v.procedures if x.code in SURGERY_MINUTES]
            if v.facility in ("R2", "R3") and operated and v.vitals is not None:
                route = "through Role 1" if p.visits[1].facility == "R1" else "flown to Role 2"
                hours[route].append((operated[0] - p.injured_at).total_seconds() / 3600)
                to_table.append((operated[0] - v.vitals.taken_at).total_seconds() / 60)
                break
    every = [h for route in hours.values() for h in route]
    if not every:
        return f"  {preset}: no immediate casualty operated on"

    def within(xs: list[float]) -> str:
        return f"{sum(x <= 2 for x in xs) / len(xs):.0%}" if xs else "—"

    routes = ", ".join(f"{route} {within(xs)} (of {len(xs):,})" for route, xs in hours.items())
    deciles = statistics.quantiles(to_table, n=10)
    return (
        f"  {preset}: {within(every)} within 2 h, median {statistics.median(every):.1f} h; "
        f"{routes}; triage to table p50 {statistics.median(to_table):.0f} min, "
        f"p90 {deciles[-1]:.0f}"
    )


def by_category(preset: str, patients: int) -> tuple[str, list[str]]:
    """Share of each category back to duty within 72 hours of the injury, and each category's
    mix of first triages (T1/T2/T3/T4, of those triaged), with unlimited capacity."""
    data = PRESETS[preset].scenario.model_dump(mode="json")
    scenario = Scenario.model_validate({**data, "total_patients": patients})
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # category -> [back, all]
    triages: dict[str, Counter[str]] = defaultdict(Counter)
    for p in generate(scenario):
        counts[p.category][1] += 1
        if p.outcome == "RTD" and (p.outcome_at - p.injured_at).total_seconds() <= 72 * 3600:
            counts[p.category][0] += 1
        if p.triage is not None:
            triages[p.category][p.triage] += 1
    back = ", ".join(f"{c} {b / n:.1%}" for c, (b, n) in sorted(counts.items()))
    mix = [
        f"{c}: " + " / ".join(f"{seen[t] / seen.total():.1%}" for t in ("T1", "T2", "T3", "T4"))
        for c, seen in sorted(triages.items())
    ]
    return back, mix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000, help="patients a preset")
    args = parser.parse_args()
    print(f"generator {GENERATOR_VERSION}, {args.patients:,} patients a preset")
    print("DOW among the battle casualties not killed in action (unlimited → sized):")
    for preset in sorted(PRESETS):
        before = dow_of_the_wounded(preset, args.patients, "unlimited")
        after = dow_of_the_wounded(preset, args.patients, "sized")
        print(f"  {preset}: {before:.2%} → {after:.2%}")
    print("The sized plan of high-intensity-defence, first front (per unit: teams, tables,")
    print("ICU beds, holding beds; then the front's ground ambulances and helicopters):")
    print("  " + sized_plan("high-intensity-defence"))
    print("\nThe 2-day mass-casualty drill (1,000 patients):\n")
    print(
        "| Plan | DOW rate | p90 wait to surgery | p90 wait for a lift "
        "| deaths with a delay cause |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ("unlimited", "ample", "starved"):
            print(drill_row(size, Path(tmp) / size))
        print("\n" + starved_over_seeds(Path(tmp)))
    print("\n10-1-2: immediate battle casualties operated on at Role 2 or 3 (unlimited capacity):")
    for preset in ("high-intensity-defence", "mass-casualty-drill", "urban-assault"):
        print(ten_one_two(preset, args.patients))
    print(
        "\nROLE_LOAD measured without the minimal (share reaching the role, hours there, hours"
        " of a team; bed-hours and team-hours a casualty), against medical_plan.ROLE_LOAD's:"
    )
    load = measured_load(args.patients)
    for role, (share, stay, team, beds, teams) in load.roles.items():
        f_share, f_stay, f_team = ROLE_LOAD[role]
        print(
            f"  {role}: ({share:.3f}, {stay:.2f}, {team:.3f}); {beds:.2f} bed-hours,"
            f" {teams:.3f} team-hours (the plan's {f_share * f_stay:.2f} and"
            f" {f_share * f_team:.3f})"
        )
    for role, (table, icu) in load.care.items():
        (s_share, s_hours), (i_share, i_hours) = SURGERY_LOAD[role], ICU_LOAD[role]
        print(
            f"  {role}: {table:.3f} operating-table hours, {icu:.2f} ICU bed-hours a casualty"
            f" (the plan's {s_share * s_hours:.3f} and {i_share * i_hours:.2f})"
        )
    ground, air = load.legs
    print(
        f"  legs a casualty: ground {ground:.3f}, air {air:.3f} (the plan's {GROUND_LEGS},"
        f" {AIR_LEGS})"
    )
    back, mix = by_category("high-intensity-defence", args.patients)
    print("\nBack to duty within 72 hours of the injury (high-intensity-defence, unlimited):")
    print("  " + back)
    print("First triages, T1 / T2 / T3 / T4 (high-intensity-defence, unlimited):")
    for line in mix:
        print("  " + line)
    print("\nCasualties the simulation moves under the sized plan (chunks of 1,000 holding one):")
    for preset in PRESETS:
        print("  " + moved(preset, args.patients))


def moved(preset: str, patients: int, chunk: int = 1000) -> str:
    """The share of the casualties the simulation gives a record, and the chunks they are in."""
    data = PRESETS[preset].scenario.model_dump(mode="json")
    scenario = Scenario.model_validate({**data, "total_patients": patients, "capacity": "sized"})
    records = run_phase(scenario).records
    chunks = {index // chunk for index in records}
    total = -(-patients // chunk)
    return (
        f"{preset}: {len(records):,} ({len(records) / patients:.1%}), "
        f"in {len(chunks)} of {total} chunks"
    )


if __name__ == "__main__":
    main()
