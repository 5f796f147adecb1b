"""FHIR output against an independent validator (issue 11): Medplum's validateResource over the
R4 StructureDefinitions and the vital-signs profiles, run by tests/fhir-validator/validate.mjs.

Zero errors (and warnings) on 1,000 patients of every preset, bulk resources and transaction
bundles alike, validated in one Node process.
The validator is shown to catch what it must: a test that only ever sees valid input proves
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from care_chain_support import drill
from fhir_validator import validate

from patientgen.formats import bundle, fhir
from patientgen.scenario import PRESETS

PATIENTS = 1000
VS = "http://hl7.org/fhir/StructureDefinition/"

_VITAL = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }
    ]
}


def _observation(code: list[tuple[str, str]], profile: str | None, **value: Any) -> dict:
    item: dict[str, Any] = {"resourceType": "Observation", "id": "o1"}
    if profile is not None:
        item["meta"] = {"profile": [VS + profile]}
    item |= {
        "status": "final",
        "category": [_VITAL],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": c, "display": d} for c, d in code]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-03-02T06:00:00Z",
    }
    return item | value


_SPO2 = {
    "valueQuantity": {"value": 97, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
}


def test_the_validator_catches_what_it_must() -> None:
    good_spo2 = _observation([("2708-6", "x"), ("59408-5", "y")], "oxygensat", **_SPO2)
    cases: list[tuple[str, dict, str]] = [
        # the defect of issue 11: SpO2 without 2708-6, claimed or not (the spec requires the
        # profile of every SpO2 observation; see validate.mjs)
        ("spo2 claimed", _observation([("59408-5", "y")], "oxygensat", **_SPO2), "OxygenSatCode"),
        ("spo2 unclaimed", _observation([("59408-5", "y")], None, **_SPO2), "OxygenSatCode"),
        ("no status", {k: v for k, v in good_spo2.items() if k != "status"}, "status"),
        ("bad gender type", {"resourceType": "Patient", "id": "p", "gender": 1}, "gender"),
        ("bad date", {"resourceType": "Patient", "id": "p", "birthDate": "1990-13-01"}, "date"),
        ("bad id", {"resourceType": "Patient", "id": "a_b"}, "id"),
        ("unknown field", {"resourceType": "Patient", "id": "p", "colour": "red"}, "colour"),
        (
            "bp without diastolic",
            _observation(
                [("85354-9", "bp")],
                "bp",
                component=[
                    {
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                        "valueQuantity": {
                            "value": 120,
                            "unit": "mmHg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mm[Hg]",
                        },
                    }
                ],
            ),
            "DiastolicBP",
        ),
        (
            "unresolved urn in a bundle",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:6b7d9a4e-36a4-4b8c-9d1e-0f6a1c2b3d4e",
                        "resource": good_spo2
                        | {
                            "subject": {
                                "reference": "urn:uuid:00000000-0000-4000-8000-000000000000"
                            }
                        },
                        "request": {"method": "POST", "url": "Observation"},
                    }
                ],
            },
            "unresolved reference",
        ),
    ]
    data = b"".join(orjson.dumps(item) + b"\n" for _, item, _ in cases)
    report = validate(data=data)
    for line, (name, _, needle) in enumerate(cases, 1):
        found = [e for e in report["first_errors"] if e["line"] == line]
        assert found, f"{name}: no error"
        assert any(needle in orjson.dumps(e).decode() for e in found), (name, found)
    assert validate(data=orjson.dumps(good_spo2))["errors"] == 0
    # a reference to a resource of a type the element does not allow is a warning in Medplum
    # (the test of the output below allows no warning either); inside a bundle too
    organization = {"resourceType": "Organization", "name": "x"}
    wrong_target = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6b7d9a4e-36a4-4b8c-9d1e-0f6a1c2b3d4e",
                "resource": organization,
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "fullUrl": "urn:uuid:7c8e0b5f-47b5-4c9d-8e2f-1a7b2d3c4e5f",
                "resource": good_spo2
                | {"subject": {"reference": "urn:uuid:6b7d9a4e-36a4-4b8c-9d1e-0f6a1c2b3d4e"}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    report = validate(data=orjson.dumps(wrong_target))
    assert report["errors"] == 0 and report["warnings"] >= 1  # base and profile validation
    assert all(kind.startswith("Invalid reference") for kind in report["warning_kinds"])


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """1,000 patients of every preset, as bulk FHIR and as transaction bundles."""
    base = tmp_path_factory.mktemp("validator")
    out: dict[str, Path] = {}
    for name, preset in PRESETS.items():
        scenario = preset.scenario.model_copy(update={"total_patients": PATIENTS})
        out[name] = base / name
        bundle.write_all(scenario, ["fhir", "fhir-bundle"], out[name], chunk_size=PATIENTS)
    # a scenario with a medical plan (issue 10): waiting-time and death-delay extensions
    starved = drill("starved", total_patients=PATIENTS)
    out["starved"] = base / "starved"
    bundle.write_all(starved, ["fhir", "fhir-bundle"], out["starved"], chunk_size=PATIENTS)
    return out


def test_every_preset_validates_with_zero_errors(outputs) -> None:
    paths = [
        folder / name
        for folder in outputs.values()
        for name in (*fhir.FILES.values(), fhir.BUNDLE_FILE)
    ]
    report = validate(paths)
    assert report["errors"] == 0, report["first_errors"]
    assert report["warnings"] == 0, report["warning_kinds"]
    assert report["bundles"] == PATIENTS * len(outputs)
    encounters = (outputs["starved"] / fhir.FILES["Encounter"]).read_bytes()
    assert fhir.WAITING_TIME.encode() in encounters and fhir.DEATH_DELAY.encode() in encounters
    assert (
        fhir.WAITING_TIME.encode()
        not in (outputs["mass-casualty-drill"] / fhir.FILES["Encounter"]).read_bytes()
    )
    for resource_type in (*fhir.RESOURCE_TYPES, "Bundle"):
        assert report["by_type"].get(resource_type), resource_type
    # every vital-signs observation was checked against its R4 profile
    for profile in ("heartrate", "resprate", "oxygensat", "bodytemp", "bp"):
        assert report["profiles"].get(VS + profile), profile
