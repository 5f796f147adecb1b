"""Front and scenario names: what a name may hold, and every front's facilities its own.

Facility ids are made from front names (`R1-<front>-1`, `POI-<front>`), written in Latin
letters, keeping only ASCII letters and digits. Found by probing the API: fronts named "A B" and
"A-B" (or "!!!" and "???", or two names in Cyrillic) shared their facility ids, so the care-chain
simulation kept one front's units under both (a dict by id) and the summary counted both fronts'
casualties at one facility.
A front named `=HYPERLINK(...)` became a formula cell of patients.csv, and a carriage return in
a name was accepted.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from pydantic import ValidationError

from patientgen.generator import generate
from patientgen.generator.chain import Simulation
from patientgen.generator.plan import plan_for
from patientgen.scenario import Scenario


def _scenario(*names: str, capacity: str = "sized", patients: int = 400) -> Scenario:
    share = 1.0 / len(names)
    fronts = [{"name": n, "share": share, "nationalities": {"DEU": 1.0}} for n in names]
    return Scenario.model_validate(
        {
            "name": "names",
            "seed": 7,
            "total_patients": patients,
            "duration_days": 2,
            "fronts": fronts,
            "capacity": capacity,
        }
    )


def _errors(data: dict) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(data)
    return info.value.errors()


@pytest.mark.parametrize(
    "names",
    [("A B", "A-B"), ("!!!", "???"), ("Восток", "Север"), ("A B", "A-B", "A-B-2"), ("x", "X ")],
)
def test_every_front_has_facilities_of_its_own(names: tuple[str, ...]) -> None:
    scenario = _scenario(*names)
    plan = plan_for(scenario)
    ids = [f.poi_id for f in plan.fronts]
    for front in plan.fronts:
        for role_ids in front.units.values():
            ids.extend(role_ids)
    assert len(ids) == len(set(ids)), sorted(ids)
    simulation = Simulation(plan)
    assert len(simulation.units) == sum(len(u) for f in plan.fronts for u in f.units.values())
    # each casualty is cared for on its own front only
    own = {f.name: {f.poi_id, *(i for u in f.units.values() for i in u)} for f in plan.fronts}
    seen: dict[str, set[str]] = defaultdict(set)
    for p in generate(scenario):
        for visit in p.visits:
            if visit.facility != "R4":
                assert visit.facility_id in own[p.front], (p.front, visit.facility_id)
                seen[p.front].add(visit.facility_id)
    assert all(seen[name] for name in names)


def test_ids_of_fronts_whose_names_differ_in_letters_are_unchanged() -> None:
    plan = plan_for(_scenario("East", "North West", capacity="unlimited"))
    assert [f.poi_id for f in plan.fronts] == ["POI-East", "POI-North-West"]
    assert plan.fronts[1].r1_ids[0] == "R1-North-West-1"


@pytest.mark.parametrize(
    ("names", "r1"),
    [
        (("A B", "A-B"), ["R1-A-B-1", "R1-A-B-2-1"]),
        (("!!!", "???"), ["R1-front-1", "R1-front-2-1"]),
        (("Восток", "Север", "Süd"), ["R1-Vostok-1", "R1-Sever-1", "R1-Sud-1"]),
        (("Βορράς", "Łódź", "东线"), ["R1-Vorras-1", "R1-Lodz-1", "R1-DongXian-1"]),
    ],
)
def test_the_readme_s_facility_ids(names: tuple[str, ...], r1: list[str]) -> None:
    """README (scenario fields): a later front whose ids would be another's gets -2, -3, ...;
    a name in another script is written in Latin letters (until generator 1.7.0 two fronts
    named in Cyrillic had the ids `front` and `front-2`, which said nothing of either); a name
    without letters or digits is `front`."""
    plan = plan_for(_scenario(*names, capacity="unlimited"))
    assert [f.r1_ids[0] for f in plan.fronts] == r1


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "at least 1 character"),
        ("   ", "blank"),
        ("East\r\nMSH|x", "control character"),
        ("Tab\there", "control character"),
        ("Line\u2028break", "control character"),
        ('=HYPERLINK("http://x.example/")', "spreadsheet"),
        ("+1 Division", "spreadsheet"),
        ("-North", "spreadsheet"),
        ("@home", "spreadsheet"),
    ],
)
def test_a_front_name_is_one_line_of_text_no_spreadsheet_reads_as_a_formula(
    name: str, why: str
) -> None:
    errors = _errors({"fronts": [{"name": name, "share": 1.0, "nationalities": {"DEU": 1.0}}]})
    assert any(why in e["msg"] for e in errors), errors


@pytest.mark.parametrize("name", ["", "  ", "Drill\nday 2", "bell\x07"])
def test_a_scenario_name_is_one_line_of_text(name: str) -> None:
    errors = _errors({"name": name})
    assert [e["loc"] for e in errors] == [("name",)], errors


def test_every_bad_name_is_reported_at_once() -> None:
    fronts = [
        {"name": "=1+1", "share": 0.5, "nationalities": {"DEU": 1.0}},
        {"name": "a\nb", "share": 0.5, "nationalities": {"DEU": 1.0}},
    ]
    errors = _errors({"name": "\t", "fronts": fronts})
    assert {e["loc"] for e in errors} == {("name",), ("fronts", 0, "name"), ("fronts", 1, "name")}


def test_names_people_use_are_accepted() -> None:
    names = ("Nord-Ost (2. Div)", "Île-de-France", "Восток", "1st Armoured", "Δ", "O'Brien's")
    assert [f.name for f in _scenario(*names).fronts] == list(names)
    Scenario(name="Exercise Steadfast Noon — day 2 (draft #3)")
