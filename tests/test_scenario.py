"""The Scenario model: validation collects every problem at once, with clear messages; presets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from patientgen.scenario import (
    DEFAULT_PRESET,
    DEFAULT_START,
    MAX_PATIENTS,
    MAX_SEED,
    NATO_MEMBERS,
    NO_ARMED_FORCES,
    PRESETS,
    Scenario,
)


def _errors(data: dict) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(data)
    return info.value.errors()


def test_defaults_are_valid_and_fixed() -> None:
    a, b = Scenario(), Scenario()
    assert a == b
    assert a.start == DEFAULT_START  # never "now"
    assert a.canonical_json() == b.canonical_json()


def test_every_error_is_reported_at_once() -> None:
    errors = _errors(
        {
            "seed": -1,
            "total_patients": 0,
            "duration_days": 400,
            "intensity": "apocalyptic",
            "injury_mix": {"disease": 0.5, "non_battle_injury": 0.3, "battle_injury": 0.1},
            "unknown_field": 1,
        }
    )
    where = {e["loc"][0] for e in errors}
    assert {"seed", "total_patients", "duration_days", "intensity", "injury_mix"} <= where
    assert "unknown_field" in where
    assert len(errors) >= 6


def test_sum_error_names_the_field_and_the_sum() -> None:
    errors = _errors(
        {"injury_mix": {"disease": 0.5, "non_battle_injury": 0.3, "battle_injury": 0.1}}
    )
    messages = " ".join(e["msg"] for e in errors)
    assert "injury_mix" in messages
    assert "0.9" in messages


def test_front_shares_must_sum_to_one() -> None:
    errors = _errors(
        {
            "fronts": [
                {"name": "A", "share": 0.5, "nationalities": {"DEU": 1.0}},
                {"name": "B", "share": 0.3, "nationalities": {"POL": 1.0}},
            ]
        }
    )
    assert any("fronts[].share must sum to 1, got 0.8" in e["msg"] for e in errors)


def test_nationalities_must_sum_to_one_per_front() -> None:
    errors = _errors(
        {"fronts": [{"name": "A", "share": 1.0, "nationalities": {"DEU": 0.5, "FRA": 0.4}}]}
    )
    assert any("nationalities must sum to 1, got 0.9" in e["msg"] for e in errors)
    assert any(e["loc"][:2] == ("fronts", 0) for e in errors)


def test_front_share_and_nationality_errors_together() -> None:
    errors = _errors(
        {
            "fronts": [
                {"name": "A", "share": 0.5, "nationalities": {"DEU": 0.5, "FRA": 0.4}},
                {"name": "B", "share": 0.3, "nationalities": {"POL": 1.0}},
            ]
        }
    )
    messages = " ".join(e["msg"] for e in errors)
    assert "nationalities must sum to 1, got 0.9" in messages
    assert "fronts[].share must sum to 1, got 0.8" in messages


def test_unknown_nation_is_rejected() -> None:
    errors = _errors({"fronts": [{"name": "A", "share": 1.0, "nationalities": {"XXX": 1.0}}]})
    assert any("XXX" in str(e["loc"]) or "XXX" in str(e.get("input")) for e in errors)


def test_the_31_nato_members_with_armed_forces_are_accepted() -> None:
    assert len(NATO_MEMBERS) == 32
    armed = [n for n in NATO_MEMBERS if n not in NO_ARMED_FORCES]
    assert len(armed) == 31
    nations = dict.fromkeys(armed, 1.0 / 31)
    s = Scenario.model_validate(
        {"fronts": [{"name": "All", "share": 1.0, "nationalities": nations}]}
    )
    assert set(s.fronts[0].nationalities) == set(armed)


def test_iceland_supplies_no_casualties() -> None:
    errors = _errors({"fronts": [{"name": "N", "share": 1.0, "nationalities": {"ISL": 1.0}}]})
    assert any("no armed forces" in e["msg"] for e in errors)


def test_bounds() -> None:
    Scenario(seed=MAX_SEED, total_patients=MAX_PATIENTS)
    assert _errors({"seed": MAX_SEED + 1})
    assert _errors({"total_patients": MAX_PATIENTS + 1})
    assert _errors({"mass_casualty": {"min_size": 50, "max_size": 10}})
    assert _errors({"start": "2026-03-02T06:00:00"})  # naive datetimes are refused


def test_start_is_normalised_to_utc() -> None:
    s = Scenario(start=datetime(2026, 3, 2, 8, 0, tzinfo=timezone(timedelta(hours=2))))
    assert s.start == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert s.start.utcoffset() == timedelta(0)


def test_duplicate_front_names_are_rejected() -> None:
    front = {"name": "A", "share": 0.5, "nationalities": {"DEU": 1.0}}
    errors = _errors({"fronts": [front, front]})
    assert any("repeated: A" in e["msg"] for e in errors)


def test_presets_are_valid_documented_and_round_trip() -> None:
    assert len(PRESETS) >= 6
    assert DEFAULT_PRESET in PRESETS
    for key, preset in PRESETS.items():
        assert preset.name == key
        assert preset.description and "\n" not in preset.description
        again = Scenario.model_validate(json.loads(preset.scenario.canonical_json()))
        assert again == preset.scenario


@pytest.mark.parametrize("start", ["9999-12-01T00:00:00Z", "0001-01-02T00:00:00Z"])
def test_start_far_from_the_present_is_rejected(start: str) -> None:
    errors = _errors({"start": start})
    assert any(e["loc"] == ("start",) and "start must be between" in e["msg"] for e in errors)
