"""Calibration on 20,000 patients with the defaults (issue 2, item 4), and the tuning knobs.

Targets (domain.md): injury mix, front and nationality shares within 2 points of the scenario;
battle mechanism about 78% explosive / 18% gunshot (Owens 2008); wound regions near Owens
(extremities 54%, head and neck about 30%, thorax 6%, abdomen 11%); battle case fatality inside the
configured band (default by intensity, inside 10-20%); at least 80% of battle deaths are KIA and
most KIA die within 60 minutes (Webster: 91.4%); DNBI mortality below 0.5%; about 18% of battle
casualties back to duty within 72 hours (Owens); mortality ordered T4 > T1 > T2 > T3.
"""

from __future__ import annotations

from collections import Counter

import pytest

from patientgen.generator import generate
from patientgen.generator.patient import Patient
from patientgen.scenario import Scenario

N = 20_000
HEAD_NECK = {"head", "face", "eye", "ear", "neck"}
ABDOMEN = {"abdomen", "pelvis"}
LIMBS = {"left_upper_limb", "right_upper_limb", "left_lower_limb", "right_lower_limb"}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(total_patients=N)


@pytest.fixture(scope="module")
def patients(scenario: Scenario) -> list[Patient]:
    return list(generate(scenario))


@pytest.fixture(scope="module")
def battle(patients: list[Patient]) -> list[Patient]:
    return [p for p in patients if p.category == "battle_injury"]


def _dead(p: Patient) -> bool:
    return p.outcome in ("KIA", "DOW")


def _share(values: list, key: object) -> float:
    return sum(v == key for v in values) / len(values)


def test_injury_mix(scenario: Scenario, patients: list[Patient]) -> None:
    categories = [p.category for p in patients]
    for key, target in scenario.injury_mix.as_dict().items():
        assert abs(_share(categories, key) - target) < 0.02, key


def test_front_and_nationality_shares(scenario: Scenario, patients: list[Patient]) -> None:
    fronts = [p.front for p in patients]
    for front in scenario.fronts:
        assert abs(_share(fronts, front.name) - front.share) < 0.02, front.name
        nations = [p.nationality for p in patients if p.front == front.name]
        for nation, target in front.nationalities.items():
            assert abs(_share(nations, nation) - target) < 0.02, (front.name, nation)


def test_battle_mechanism(battle: list[Patient]) -> None:
    mechanisms = [p.mechanism for p in battle]
    assert abs(_share(mechanisms, "explosive") - 0.78) < 0.04
    assert abs(_share(mechanisms, "gunshot") - 0.18) < 0.04


def test_wound_regions(battle: list[Patient]) -> None:
    regions = Counter()
    for p in battle:
        for c in p.conditions:
            if c.region is None:
                continue
            if c.region in LIMBS:
                regions["extremities"] += 1
            elif c.region in HEAD_NECK:
                regions["head_neck"] += 1
            elif c.region in ABDOMEN:
                regions["abdomen"] += 1
            else:
                regions[c.region] += 1
    total = sum(regions.values())
    share = {k: v / total for k, v in regions.items()}
    assert abs(share["extremities"] - 0.54) < 0.04
    assert abs(share["head_neck"] - 0.30) < 0.04
    assert abs(share["thorax"] - 0.06) < 0.02
    assert abs(share["abdomen"] - 0.11) < 0.03
    polytrauma = sum(sum(c.region is not None for c in p.conditions) > 1 for p in battle)
    assert polytrauma / len(battle) > 0.25


def test_battle_case_fatality_in_band(battle: list[Patient]) -> None:
    cfr = sum(map(_dead, battle)) / len(battle)
    assert 0.10 <= cfr <= 0.20
    assert abs(cfr - 0.13) < 0.025  # the medium-intensity default


def test_most_battle_deaths_are_kia_and_early(battle: list[Patient]) -> None:
    dead = [p for p in battle if _dead(p)]
    kia = [p for p in dead if p.outcome == "KIA"]
    assert len(kia) / len(dead) >= 0.80
    minutes = [(p.outcome_at - p.injured_at).total_seconds() / 60 for p in kia]
    within_60 = sum(m <= 60 for m in minutes) / len(minutes)
    within_10 = sum(m <= 10 for m in minutes) / len(minutes)
    assert within_60 > 0.85  # Webster: 91.4%
    assert 0.55 < within_10 < 0.80  # Webster: 67.7%


def test_dnbi_mortality_is_low(patients: list[Patient]) -> None:
    dnbi = [p for p in patients if p.category != "battle_injury"]
    assert sum(map(_dead, dnbi)) / len(dnbi) < 0.005
    assert not any(p.outcome == "KIA" for p in dnbi)  # KIA is a battle outcome


def test_return_to_duty_within_72_hours(battle: list[Patient]) -> None:
    quick = sum(
        p.outcome == "RTD" and (p.outcome_at - p.injured_at).total_seconds() <= 72 * 3600
        for p in battle
    )
    assert abs(quick / len(battle) - 0.18) < 0.03
    for p in battle:
        if p.outcome == "RTD" and (p.outcome_at - p.injured_at).total_seconds() <= 72 * 3600:
            assert p.outcome_facility in ("R1", "R2")


def test_mortality_ordered_by_triage(battle: list[Patient]) -> None:
    rate = {}
    for t in ("T1", "T2", "T3", "T4"):
        group = [p for p in battle if p.triage == t]
        assert group, t
        rate[t] = sum(map(_dead, group)) / len(group)
    assert rate["T4"] > rate["T1"] > rate["T2"] > rate["T3"]


def test_battle_cfr_override() -> None:
    mix = {"disease": 0.2, "non_battle_injury": 0.2, "battle_injury": 0.6}
    for target in (0.08, 0.25):
        s = Scenario(total_patients=6000, injury_mix=mix, calibration={"battle_cfr": target})
        battle = [p for p in generate(s) if p.category == "battle_injury"]
        cfr = sum(map(_dead, battle)) / len(battle)
        assert abs(cfr - target) < 0.025, (target, cfr)


def test_intensity_raises_default_cfr() -> None:
    mix = {"disease": 0.2, "non_battle_injury": 0.2, "battle_injury": 0.6}
    cfr = {}
    for intensity in ("low", "extreme"):
        s = Scenario(total_patients=6000, injury_mix=mix, intensity=intensity)
        battle = [p for p in generate(s) if p.category == "battle_injury"]
        cfr[intensity] = sum(map(_dead, battle)) / len(battle)
        assert 0.09 <= cfr[intensity] <= 0.21
    assert cfr["extreme"] > cfr["low"] + 0.04


def test_triage_mix_override() -> None:
    target = {"T1": 0.20, "T2": 0.25, "T3": 0.50, "T4": 0.05}
    mix = {"disease": 0.2, "non_battle_injury": 0.2, "battle_injury": 0.6}
    s = Scenario(total_patients=6000, injury_mix=mix, calibration={"triage_mix": target})
    battle = [p for p in generate(s) if p.category == "battle_injury"]
    # the mix of the triage categories given: a KIA who died before anyone triaged them has none
    battle = [p for p in battle if p.triage is not None]
    triage = [p.triage for p in battle]
    for key, share in target.items():
        assert abs(_share(triage, key) - share) < 0.03, key
    rate = {t: sum(_dead(p) for p in battle if p.triage == t) / triage.count(t) for t in target}
    assert rate["T4"] > rate["T1"] > rate["T2"] > rate["T3"]
