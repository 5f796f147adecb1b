"""FHIR R4 bulk output: every resource validates (fhir.resources R4B), every reference resolves,
and every code comes from the project's one code table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from formats_support import run

from patientgen.formats import fhir
from patientgen.generator import codes
from patientgen.scenario import PRESETS, Scenario

N = 500

#: FHIR's own terminologies the writer uses for structure (not clinical codes).
FHIR_SYSTEMS = {
    "http://terminology.hl7.org/CodeSystem/observation-category",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "http://terminology.hl7.org/CodeSystem/discharge-disposition",
    "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    "http://terminology.hl7.org/CodeSystem/condition-category",
    "http://terminology.hl7.org/CodeSystem/organization-type",
    "http://unitsofmeasure.org",
}
PROJECT_CODES = {
    codes.SNOMED_SYSTEM: codes.SNOMED,
    codes.LOINC_SYSTEM: codes.LOINC,
    codes.TRIAGE_SYSTEM: codes.TRIAGE,
    codes.AVPU_SYSTEM: codes.AVPU,
}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """Bulk FHIR and transaction bundles of N patients, written in two chunks."""
    base = PRESETS["high-intensity-defence"].scenario.model_dump()
    scenario = Scenario.model_validate({**base, "total_patients": N})
    out = tmp_path_factory.mktemp("fhir") / "out"
    run(scenario, ["fhir", "fhir-bundle"], out, [(0, 200), (200, N)])
    return out


@pytest.fixture(scope="module")
def resources(out) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource_type in fhir.RESOURCE_TYPES:
        path = out / fhir.FILES[resource_type]
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"", f"{path} must end with a newline"
        found[resource_type] = [orjson.loads(line) for line in lines[:-1]]
    assert sorted(p.name for p in (out / "fhir").iterdir()) == sorted(
        Path(name).name for name in fhir.FILES.values()
    )
    return found


def dicts_in(resources: dict[str, list[dict[str, Any]]], skip: str = "") -> Iterator[dict]:
    """Every object (dict) in the resources, nested ones included, parents first; the value of a
    key named `skip` is not searched."""

    def walk(value: Any) -> Iterator[dict]:
        if isinstance(value, dict):
            yield value
            for key, item in value.items():
                if key != skip:
                    yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    for items in resources.values():
        for item in items:
            yield from walk(item)


def test_every_resource_validates_with_r4b(resources) -> None:
    total = 0
    for resource_type, items in resources.items():
        model = get_fhir_model_class(resource_type)
        for item in items:
            assert item["resourceType"] == resource_type
            model.model_validate(item)
            total += 1
    assert len(resources["Patient"]) == N
    assert total > N * 5


def test_ids_are_unique_and_every_reference_resolves(resources) -> None:
    ids = Counter(f"{t}/{r['id']}" for t, items in resources.items() for r in items)
    assert all(count == 1 for count in ids.values())
    references: list[str] = []

    for value in dicts_in(resources, skip="reference"):
        if "reference" in value:
            references.append(value["reference"])
    assert references
    unresolved = sorted({ref for ref in references if ref not in ids})
    assert unresolved == []


def test_only_codes_from_the_code_table(resources) -> None:
    seen: Counter[str] = Counter()

    for value in dicts_in(resources):
        if "system" in value and "code" in value:
            system, code = value["system"], value["code"]
            seen[system] += 1
            if system in PROJECT_CODES:
                table = PROJECT_CODES[system]
                assert code in table, f"{system}|{code} is not in generator.codes"
                if "display" in value:
                    assert value["display"] == table[code], f"{system}|{code} display"
            else:
                assert system in FHIR_SYSTEMS, f"unexpected code system {system}"
    assert seen[codes.SNOMED_SYSTEM] and seen[codes.LOINC_SYSTEM] and seen[codes.TRIAGE_SYSTEM]
    for forbidden in codes.FORBIDDEN_CODES:
        assert forbidden not in PROJECT_CODES[codes.SNOMED_SYSTEM]


def test_casualty_shape(resources) -> None:
    patients = {p["id"]: p for p in resources["Patient"]}
    for p in patients.values():
        identifier, own = p["identifier"]
        assert identifier["system"].startswith(codes.SERVICE_NUMBER_SYSTEM_PREFIX)
        assert own == {"use": "secondary", "system": fhir.PATIENT_ID_SYSTEM, "value": p["id"]}
        assert p["name"][0]["family"] and p["gender"] in ("male", "female") and p["birthDate"]
    assert any("deceasedDateTime" in p for p in patients.values())
    encounters = resources["Encounter"]
    assert any("partOf" in e for e in encounters)
    assert any("dischargeDisposition" in e.get("hospitalization", {}) for e in encounters)
    assert all(e["subject"]["reference"].removeprefix("Patient/") in patients for e in encounters)
    assert all(
        c["code"]["coding"][0]["system"] == codes.SNOMED_SYSTEM for c in resources["Condition"]
    )
    assert any("bodySite" in c for c in resources["Condition"])
    obs_codes = {o["code"]["coding"][0]["code"] for o in resources["Observation"]}
    assert {"8867-4", "9279-1", "85354-9", "9269-2", "67775-7"} <= obs_codes
    vital = [
        o
        for o in resources["Observation"]
        if o["category"][0]["coding"][0]["code"] == "vital-signs"
    ]
    assert vital
    assert resources["Procedure"] and resources["Organization"] and resources["Location"]


def test_edge_cases_from_the_factory_validate() -> None:
    """Hand-made patients: quotes and commas in names, KIA at the POI, still admitted."""
    from factories import make_patients

    scenario = Scenario(total_patients=40)
    job = fhir.scope(scenario)
    statuses = set()
    for patient in make_patients(scenario, 0, 40):
        for resource_type, data in zip(fhir.PATIENT_TYPES, fhir.encode(patient, job), strict=True):
            model = get_fhir_model_class(resource_type)
            for line in data.split(b"\n")[:-1]:
                item = orjson.loads(line)
                model.model_validate(item)
                statuses.add(item.get("status"))
    assert {"in-progress", "finished"} <= statuses


# -- issue 11: FHIR that validates against the specification's own profiles ---------------------

VS = "http://hl7.org/fhir/StructureDefinition/"


def _observations(resources, code: str) -> list[dict]:
    return [
        o for o in resources["Observation"] if any(c["code"] == code for c in o["code"]["coding"])
    ]


def test_spo2_carries_2708_6_beside_59408_5_and_claims_the_profile(resources) -> None:
    """R4's oxygen-saturation profile requires LOINC 2708-6; 59408-5 alone fails it."""
    spo2 = _observations(resources, "59408-5")
    assert spo2
    for o in spo2:
        found = {(c["system"], c["code"]) for c in o["code"]["coding"]}
        assert {(codes.LOINC_SYSTEM, "2708-6"), (codes.LOINC_SYSTEM, "59408-5")} <= found
        assert o["meta"]["profile"] == [VS + "oxygensat"]
        assert o["valueQuantity"]["code"] == "%"


def test_vital_signs_claim_their_r4_profiles(resources) -> None:
    expected = {
        "8867-4": "heartrate",
        "9279-1": "resprate",
        "8310-5": "bodytemp",
        "85354-9": "bp",
        "59408-5": "oxygensat",
    }
    for code, profile in expected.items():
        observations = _observations(resources, code)
        assert observations, code
        assert all(o["meta"]["profile"] == [VS + profile] for o in observations), code


def test_pain_uses_the_us_core_code(resources) -> None:
    assert _observations(resources, "72514-3")
    assert not _observations(resources, "38208-5")


def test_triage_is_an_assessment_not_a_procedure(resources) -> None:
    """The triage Observation is coded with LOINC's acuity assessment, never with SNOMED
    225390008 "Triage" (a procedure: it stays on the Procedure resources only)."""
    triage = [
        o
        for o in resources["Observation"]
        if o.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("system")
        == codes.TRIAGE_SYSTEM
    ]
    assert triage
    for o in triage:
        assert o["code"]["coding"] == [
            {"system": codes.LOINC_SYSTEM, "code": "11283-9", "display": codes.LOINC["11283-9"]}
        ]
    assert not any(
        c["code"] == "225390008" for o in resources["Observation"] for c in o["code"]["coding"]
    )


def test_conditions_carry_coded_severity_and_mechanism(resources) -> None:
    severity_codes = {code for code, _ in codes.SEVERITIES.values()}
    due_to = "http://hl7.org/fhir/StructureDefinition/condition-dueTo"
    mechanisms: Counter[str] = Counter()
    for c in resources["Condition"]:
        (coding,) = c["severity"]["coding"]
        assert coding["system"] == codes.SNOMED_SYSTEM and coding["code"] in severity_codes
        assert c["severity"]["text"] in codes.SEVERITIES
        for ext in c.get("extension", []):
            assert ext["url"] == due_to
            concept = ext["valueCodeableConcept"]
            for cc in concept.get("coding", []):
                assert cc["code"] in codes.MECHANISMS
                mechanisms[cc["code"]] += 1
            mechanisms[concept["text"]] += 1
    # explosive and gunshot injuries name their SNOMED event; others their mechanism as text
    assert mechanisms["242777003"] and mechanisms["218081007"]
    assert mechanisms["explosive"] and mechanisms["gunshot"]


def test_killed_at_the_point_of_injury_have_an_encounter(resources) -> None:
    kia = [p for p in resources["Patient"] if "deceasedDateTime" in p]
    with_encounter = {e["subject"]["reference"] for e in resources["Encounter"]}
    assert kia
    missing = [p["id"] for p in kia if f"Patient/{p['id']}" not in with_encounter]
    assert missing == []
    field = [e for e in resources["Encounter"] if e["class"]["code"] == "FLD"]
    assert field
    for e in field:
        assert e["status"] == "finished" and "location" not in e
        assert e["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "exp"


def _patient_ids(tmp: Path, scenario: Scenario) -> list[str]:
    out = tmp / f"out-{len(list(tmp.iterdir()))}"
    run(scenario, ["fhir"], out, [(0, scenario.total_patients)])
    lines = (out / fhir.FILES["Patient"]).read_bytes().splitlines()
    return [orjson.loads(line)["id"] for line in lines]


def test_resource_ids_are_unique_per_scenario_and_stable(tmp_path) -> None:
    """Two jobs with the same seed but another scenario never share a Patient (or any derived)
    id, so loading both into one server overwrites nothing; the same scenario and seed give the
    same ids."""
    base = PRESETS["urban-assault"].scenario.model_dump()
    first = Scenario.model_validate({**base, "total_patients": 20, "seed": 7})
    other = Scenario.model_validate({**base, "total_patients": 20, "seed": 7, "duration_days": 8})
    other_preset = PRESETS["peacekeeping"].scenario.model_copy(
        update={"total_patients": 20, "seed": 7}
    )
    ids = _patient_ids(tmp_path, first)
    assert ids == _patient_ids(tmp_path, first)
    assert not set(ids) & set(_patient_ids(tmp_path, other))
    assert not set(ids) & set(_patient_ids(tmp_path, other_preset))
    assert len(set(ids)) == 20


# -- transaction bundles (format "fhir-bundle") --------------------------------------------------


@pytest.fixture(scope="module")
def bundles(out) -> list[dict[str, Any]]:
    lines = (out / fhir.BUNDLE_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b""
    return [orjson.loads(line) for line in lines[:-1]]


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference":
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def test_one_transaction_bundle_per_casualty(bundles, resources) -> None:
    assert len(bundles) == N
    assert len({b["id"] for b in bundles}) == N
    facility_kinds = ("Organization", "Location")
    for b in bundles:
        assert b["resourceType"] == "Bundle" and b["type"] == "transaction"
        entries = b["entry"]
        kinds = [e["resource"]["resourceType"] for e in entries]
        first = kinds.index("Patient")
        assert set(kinds[:first]) <= set(facility_kinds) and kinds.count("Patient") == 1
        full_urls = [e["fullUrl"] for e in entries]
        assert len(set(full_urls)) == len(full_urls)
        assert all(url.startswith("urn:uuid:") for url in full_urls)
        for e in entries:
            resource, request = e["resource"], e["request"]
            assert "id" not in resource
            assert request["method"] == "POST" and request["url"] == resource["resourceType"]
            if resource["resourceType"] in facility_kinds:
                (identifier,) = resource["identifier"]
                assert identifier["system"] == fhir.FACILITY_SYSTEM
                assert (
                    request["ifNoneExist"]
                    == f"identifier={fhir.FACILITY_SYSTEM}|" + (identifier["value"])
                )
            else:
                assert "ifNoneExist" not in request
        references = list(_references(entries))
        assert references and set(references) <= set(full_urls)
        assert len(entries) < fhir.MAX_BUNDLE_ENTRIES
    assert max(len(b["entry"]) for b in bundles) > 20


def test_bundles_hold_exactly_the_bulk_resources(bundles, resources) -> None:
    """Each bundle's resources are the bulk ones, in the bulk order, without their id and with
    every reference naming the entry of the resource it names in the bulk output."""
    by_patient: dict[str, list[dict]] = {}
    for resource_type in fhir.PATIENT_TYPES:
        for r in resources[resource_type]:
            pid = r["id"] if resource_type == "Patient" else r["subject"]["reference"][8:]
            by_patient.setdefault(pid, []).append(r)
    facilities = {
        (r["resourceType"], r["identifier"][0]["value"]): r
        for t in ("Organization", "Location")
        for r in resources[t]
    }
    for b in bundles:
        entries = b["entry"]
        first = next(i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Patient")
        pid = entries[first]["fullUrl"].removeprefix("urn:uuid:")
        bulk = [
            facilities[e["resource"]["resourceType"], e["resource"]["identifier"][0]["value"]]
            for e in entries[:first]
        ] + by_patient[pid]
        assert len(bulk) == len(entries)
        urns = {
            f"{r['resourceType']}/{r['id']}": e["fullUrl"]
            for r, e in zip(bulk, entries, strict=True)
        }
        for r, e in zip(bulk, entries, strict=True):
            assert e["resource"] == _map_refs({k: v for k, v in r.items() if k != "id"}, urns)


def _map_refs(value: Any, urns: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (urns[v] if k == "reference" else _map_refs(v, urns)) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_refs(v, urns) for v in value]
    return value


def test_a_bundle_over_the_entry_limit_fails_its_chunk(tmp_path) -> None:
    """More than MAX_BUNDLE_ENTRIES entries: BundleTooLarge names the casualty, and the chunk
    writes no part (never a bundle a server with that limit refuses)."""
    from factories import make_patients

    from patientgen.formats import bundle
    from patientgen.generator.patient import Procedure

    scenario = Scenario(total_patients=3)
    job = fhir.scope(scenario)
    patients = list(make_patients(scenario, 0, 3))
    big = patients[1]
    visit = next(v for v in big.visits if v.facility != "POI")
    at = visit.arrived_at
    visit.procedures = [
        Procedure("36777000", codes.PROCEDURES["36777000"], at)
        for _ in range(fhir.MAX_BUNDLE_ENTRIES)
    ]
    fhir.bundle(patients[0], job)  # the others are fine
    with pytest.raises(fhir.BundleTooLarge, match=f"casualty {big.id} .* more than 500"):
        fhir.bundle(big, job)
    parts = tmp_path / "parts"
    with pytest.raises(fhir.BundleTooLarge):
        bundle.write_patients(scenario, ["fhir-bundle"], parts, 0, patients, 3)
    assert list(parts.iterdir()) == []


def test_every_death_is_deceased() -> None:
    """Killed in action, died of wounds, and died of disease or a non-battle injury (DIED, which
    the coherence rules separate from DOW) all mark the Patient deceased at the outcome time."""
    from patientgen.generator import generate

    scenario = PRESETS["peacekeeping"].scenario.model_copy(
        update={"total_patients": 240, "seed": 1}
    )
    (died,) = [p for p in generate(scenario, 233, 234)]
    assert died.outcome == "DIED"
    patient = orjson.loads(fhir.encode(died, fhir.scope(scenario))[0])
    assert patient["deceasedDateTime"] == died.outcome_at.isoformat().replace("+00:00", "Z")
