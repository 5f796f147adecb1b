"""The cost of the clinical coherence checker: CPU seconds of `coherence.count_violations` over
20,000 finished patients of each preset (the median of three runs), the figure
docs/clinical-coherence.md quotes. The patients are made first, outside the timing.

    .venv/bin/python bench/coherence_checker.py
    .venv/bin/python bench/coherence_checker.py --patients 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from patientgen.generator import coherence, generate
from patientgen.scenario import PRESETS, Scenario


def checker_seconds(preset: str, patients: int, repeats: int) -> float:
    """Median CPU seconds of one count of every rule over the preset's patients."""
    data = PRESETS[preset].scenario.model_dump(mode="json")
    made = list(generate(Scenario.model_validate({**data, "total_patients": patients})))
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        coherence.count_violations(made)
        runs.append(time.process_time() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000, help="patients a preset")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{len(coherence.RULES)} rules, {args.patients:,} patients a preset, CPU seconds:")
    for preset in sorted(PRESETS):
        print(f"  {preset}: {checker_seconds(preset, args.patients, args.repeats):.2f}")


if __name__ == "__main__":
    main()
