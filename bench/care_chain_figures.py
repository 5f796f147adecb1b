"""The care-chain figures docs/care-chain.md quotes, measured again.

1. Died of wounds among the battle casualties who were not killed in action, with unlimited
   capacity and under the preset's sized plan, for the two busiest presets (docs/care-chain.md,
   "The sized plan": "high-intensity defence 2.7 % → 3.0 %, sustained operation 1.6 % → 2.2 %").
2. The 2-day mass-casualty drill under unlimited, ample and starved plans (the tests' plans,
   tests/care_chain_support.py), as summary.json reports it: the DOW rate (`pct_dow`), the p90
   wait to surgery and for a lift, the share of deaths with a delay cause (the table of
   docs/care-chain.md).

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

from patientgen.formats import bundle
from patientgen.generator import GENERATOR_VERSION, generate
from patientgen.scenario import PRESETS, Scenario
from tests.care_chain_support import drill

BUSIEST = ("high-intensity-defence", "sustained-operation")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000, help="patients a preset")
    args = parser.parse_args()
    print(f"generator {GENERATOR_VERSION}, {args.patients:,} patients a preset")
    print("DOW among the battle casualties not killed in action (unlimited → sized):")
    for preset in BUSIEST:
        before = dow_of_the_wounded(preset, args.patients, "unlimited")
        after = dow_of_the_wounded(preset, args.patients, "sized")
        print(f"  {preset}: {before:.2%} → {after:.2%}")
    print("\nThe 2-day mass-casualty drill (1,000 patients):\n")
    print(
        "| Plan | DOW rate | p90 wait to surgery | p90 wait for a lift "
        "| deaths with a delay cause |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ("unlimited", "ample", "starved"):
            print(drill_row(size, Path(tmp) / size))


if __name__ == "__main__":
    main()
