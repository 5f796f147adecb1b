"""HL7 v2.5.1 ADT output: every message parsed and validated by an independent library (hl7apy,
at its strict level, message structure included), and the path of each casualty told in order."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from care_chain_support import drill
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from patientgen.formats import hl7
from patientgen.generator import generate
from patientgen.generator.patient import Patient
from patientgen.scenario import PRESETS, Scenario

#: Enough casualties of a busy scenario for every kind of path (RTD, DOW, evacuation home, KIA).
SCENARIO = PRESETS["urban-assault"].scenario.model_copy(update={"total_patients": 80, "seed": 20})


@pytest.fixture(scope="module")
def patients() -> list[Patient]:
    return list(generate(SCENARIO, 0, SCENARIO.total_patients))


@pytest.fixture(scope="module")
def parsed(patients: list[Patient]) -> list[tuple[Patient, list]]:
    """Each patient with its messages, each parsed and validated once."""
    return [(p, [_parse(t) for t in _messages(p)]) for p in patients]


def _messages(p: Patient) -> list[str]:
    data = hl7.encode(p)
    assert data == b"" or data.endswith(b"\r\n")
    return [m.decode() for m in data.split(b"\n") if m]


def _parse(text: str):
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    message.validate()
    return message


def test_every_message_is_valid_hl7_v251(parsed: list[tuple[Patient, list]]) -> None:
    kinds: Counter[str] = Counter()
    controls: set[str] = set()
    for _, messages in parsed:
        for message in messages:
            assert message.msh.msh_12.value == "2.5.1"
            kinds[message.msh.msh_9.msh_9_2.value] += 1
            controls.add(message.msh.msh_10.value)
    assert sum(kinds.values()) == len(controls)  # control ids are unique
    assert set(kinds) >= {"A02", "A03", "A04", "A08"}


def test_each_path_in_order(parsed: list[tuple[Patient, list]]) -> None:
    outcomes: Counter[str] = Counter()
    for p, messages in parsed:
        outcomes[p.outcome] += 1
        if p.outcome == "KIA":
            assert messages == []  # never reached a facility
            continue
        events = [m.msh.msh_9.msh_9_2.value for m in messages]
        assert events[0] in ("A04", "A01") and events[-1] == "A03"
        assert events.count("A03") == 1 and set(events[1:-1]) <= {"A02", "A08"}
        theatre = [v for v in p.visits if v.facility in hl7.THEATRE]
        assert events.count("A02") == len(theatre) - 1
        times = [m.evn.evn_2.value for m in messages]
        assert times == sorted(times)
        assert times[-1] <= p.outcome_at.strftime("%Y%m%d%H%M%S+0000")
        discharge = messages[-1]
        disposition = discharge.pv1.pv1_36.value
        if p.outcome == "RTD":
            assert disposition == hl7.RETURNED
        elif p.outcome_facility not in hl7.THEATRE:
            assert disposition == hl7.EVACUATED
        else:
            assert disposition == hl7.EXPIRED
            assert discharge.pid.pid_30.value == "Y"
            assert discharge.pid.pid_29.value == p.outcome_at.strftime("%Y%m%d%H%M%S+0000")
        for message in messages:
            ids = [field.to_er7() for field in message.pid.pid_3]
            assert ids == [f"{p.id}^^^PATIENTGEN^MR", f"{p.service_number}^^^{p.nationality}"]
            assert message.pid.pid_8.value == ("M" if p.gender == "male" else "F")
    assert outcomes["KIA"] and outcomes["RTD"] and outcomes["DOW"] and outcomes["EVACUATED_R4"]


def test_vitals_and_triage_reach_the_update(patients: list[Patient]) -> None:
    p = next(p for p in patients if any(v.vitals for v in p.visits if v.facility == "R2"))
    visit = next(v for v in p.visits if v.facility == "R2" and v.vitals)
    assert visit.vitals is not None
    update = next(
        _parse(t) for t in _messages(p) if "|ADT^A08^" in t and f"|R2^^^{visit.facility_id}|" in t
    )
    observations = {obx.obx_3.obx_3_1.value: obx.obx_5.to_er7() for obx in update.obx}
    assert observations["8867-4"] == str(visit.vitals.heart_rate)
    assert observations["8480-6"] == str(visit.vitals.systolic_bp)
    assert observations["TRIAGE"].startswith(f"{visit.triage}^")
    codes = {dg1.dg1_3.dg1_3_1.value for dg1 in update.dg1}
    assert codes == {c.code for c in p.conditions}


def test_text_is_escaped(patients: list[Patient]) -> None:
    p = next(p for p in patients if p.outcome != "KIA")
    odd = dataclasses.replace(p, family_name="O|Brien^&~\\x", given_name="Ann\rMarie")
    first = _parse(_messages(odd)[0])
    assert first.pid.pid_5.pid_5_1.to_er7() == "O\\F\\Brien\\S\\\\T\\\\R\\\\E\\x"
    assert first.pid.pid_5.pid_5_2.to_er7() == "Ann Marie"


def test_same_patient_same_bytes(patients: list[Patient]) -> None:
    again = list(generate(SCENARIO, 50, 80))
    assert [hl7.encode(p) for p in again] == [hl7.encode(p) for p in patients[50:]]


def test_a_job_may_ask_for_hl7_and_gets_it_served_as_hl7(tmp_path) -> None:
    from patientgen.api.routes.files import content_type
    from patientgen.api.schemas import SubmitRequest
    from patientgen.formats import DEFAULT_FORMATS, bundle

    assert "hl7" not in DEFAULT_FORMATS  # on request only
    assert SubmitRequest.model_validate({"preset": "peacekeeping", "formats": ["hl7"]}).formats
    files = bundle.write_all(SCENARIO, ["hl7"], tmp_path)
    (adt,) = [f for f in files if f.format == "hl7"]
    data = (tmp_path / adt.name).read_bytes()
    assert adt.records == data.count(b"\n") == data.count(b"MSH|")
    assert content_type(adt.name, adt.format) == "application/hl7-v2; charset=utf-8"


def test_long_front_names_give_valid_facility_namespaces() -> None:
    """Found by probing: a facility's id (`R1-<front>-<k>`) is the namespace of MSH-4 and PV1-3/6,
    at most 20 characters in HL7 v2.5.1; a front named "Eastern Front Sector 3" made every
    message of its casualties invalid at hl7apy's strict level. Ids that fit stay as they are;
    longer ones are shortened, still one per unit."""
    data = PRESETS["urban-assault"].scenario.model_dump(mode="json")
    fronts = [
        {"name": "Eastern Front Sector 3", "share": 0.5, "nationalities": {"POL": 1.0}},
        {"name": "Eastern Front Sector 4", "share": 0.5, "nationalities": {"POL": 1.0}},
    ]
    scenario = Scenario.model_validate(
        {**data, "fronts": fronts, "total_patients": 60, "capacity": "sized"}
    )
    units: dict[str, set[str]] = {}
    for p in generate(scenario):
        for text in _messages(p):
            message = _parse(text)
            facility = message.msh.msh_4.value
            assert len(facility) <= 20, facility
            place = message.pv1.pv1_3.value.split("^")[3]
            assert place == facility
            named = {
                v.facility_id for v in p.visits if hl7.facility_namespace(v.facility_id) == facility
            }
            assert named, (facility, [v.facility_id for v in p.visits])
            units.setdefault(facility, set()).update(named)
    assert units and all(len(ids) == 1 for ids in units.values()), units  # one name per unit
    assert len(units) >= 4
    assert hl7.facility_namespace("R1-East-1") == "R1-East-1"


def test_a_casualty_found_failing_before_dying_waiting_gets_a_valid_update() -> None:
    """Generator 1.35.0: a casualty of a medical plan who dies while waiting is first found
    failing; its signs then go out in an A08 of their own (no triage), valid at hl7apy's strict
    level, between the arrival's update and the discharge."""
    dead = [
        p
        for p in generate(drill("starved", total_patients=400))
        if p.died_waiting and p.outcome_facility in hl7.THEATRE
    ]
    assert len(dead) >= 10
    for p in dead:
        messages = [_parse(t) for t in _messages(p)]
        times = [m.evn.evn_2.value for m in messages]
        assert times == sorted(times)
        failing = p.visits[-1].deterioration
        update = messages[-2]
        assert update.msh.msh_9.msh_9_2.value == "A08"
        assert update.evn.evn_2.value == failing.taken_at.strftime("%Y%m%d%H%M%S+0000")
        observations = {obx.obx_3.obx_3_1.value: obx.obx_5.to_er7() for obx in update.obx}
        assert "TRIAGE" not in observations
        assert observations["8480-6"] == str(failing.systolic_bp)
        assert observations["8867-4"] == str(failing.heart_rate)
