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


#: The longest and shortest evacuation delays validation accepts (minutes).
_SLOWEST = {"poi_to_role1": 10080.0, "role1_to_role2": 10080.0, "role2_to_role3": 10080.0,
            "role3_to_role4": 720.0}  # fmt: skip
_FASTEST = dict.fromkeys(_SLOWEST, 0.01)


@pytest.mark.parametrize("delays", [_SLOWEST, _FASTEST], ids=["slowest", "fastest"])
@pytest.mark.parametrize("capacity", ["unlimited", "sized"])
def test_no_rule_is_broken_at_the_evacuation_delays_validation_accepts(
    delays: dict[str, float], capacity: str
) -> None:
    """Found by probing: with `poi_to_role1` at 7 days the sick reached Role 1 days after onset
    (they walk there at sick call), and with `role3_to_role4` at 7 days the strategic flight took
    up to 14 days, both against the rules; validation accepted both."""
    data = PRESETS["mass-casualty-drill"].scenario.model_dump(mode="json")
    calibration = {**data["calibration"], "evacuation_delays": delays}
    scenario = Scenario.model_validate(
        {**data, "total_patients": 3000, "capacity": capacity, "calibration": calibration}
    )
    broken = {name: n for name, n in count_violations(generate(scenario)).items() if n}
    assert not broken


def test_a_strategic_flight_over_12_hours_at_the_median_is_refused() -> None:
    """role3_to_role4 is the flight itself (bounded to 0.5-2 times its median, and a leg lasts at
    most 24 h); the wait for the flight is spent at Role 3."""
    data = {"calibration": {"evacuation_delays": {"role3_to_role4": 721.0}}}
    with pytest.raises(ValueError, match="role3_to_role4"):
        Scenario.model_validate(data)
    Scenario.model_validate({"calibration": {"evacuation_delays": {"role3_to_role4": 720.0}}})
