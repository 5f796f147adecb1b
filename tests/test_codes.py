"""Every code the generator emits is in the one code table, with the table's display."""

from __future__ import annotations

import re

import pytest

from patientgen.generator import codes, generate
from patientgen.generator.care import ALLOWED_PROCEDURES
from patientgen.generator.patient import Patient
from patientgen.scenario import PRESETS

TOTAL = 20_000


@pytest.fixture(scope="module")
def patients() -> list[Patient]:
    out: list[Patient] = []
    per = TOTAL // len(PRESETS) + 1
    for preset in PRESETS.values():
        scenario = preset.scenario.model_copy(update={"total_patients": per})
        out.extend(generate(scenario))
    return out


def test_every_emitted_code_is_in_the_table(patients: list[Patient]) -> None:
    seen: set[str] = set()
    for p in patients:
        for c in p.conditions:
            assert codes.SNOMED.get(c.code) == c.display, c.code
            assert c.code in codes.CONDITIONS
            seen.add(c.code)
            if c.body_site_code is not None:
                assert codes.SNOMED.get(c.body_site_code) == c.body_site
                assert (c.body_site_code, c.body_site) == codes.BODY_SITES[c.region]
                seen.add(c.body_site_code)
        for v in p.visits:
            for proc in v.procedures:
                assert codes.PROCEDURES.get(proc.code) == proc.display, proc.code
                seen.add(proc.code)
        if p.mechanism_code is not None:
            assert p.mechanism_code in codes.MECHANISMS
            assert codes.MECHANISM_CODES[p.mechanism] == p.mechanism_code
            seen.add(p.mechanism_code)
        # a KIA who died before anyone triaged them carries no category (coherence rules)
        assert p.triage in codes.TRIAGE or (p.triage is None and p.outcome == "KIA")
        for v in p.visits:
            assert v.triage is None or v.triage in codes.TRIAGE
    assert not seen & set(codes.FORBIDDEN_CODES)
    # the generator exercises most of the table
    assert len(seen) >= 0.8 * len(codes.SNOMED)


def test_known_wrong_codes_never_appear(patients: list[Patient]) -> None:
    text = repr(patients[:3000])
    for wrong in codes.FORBIDDEN_CODES:
        assert wrong not in codes.SNOMED
        assert f"'{wrong}'" not in text


def test_table_is_well_formed() -> None:
    for table in (codes.CONDITIONS, codes.PROCEDURES, codes.MECHANISMS):
        for code, display in table.items():
            assert re.fullmatch(r"[1-9][0-9]{5,17}", code), code
            assert display and display.strip() == display
    # one concept, one display, wherever it is listed
    merged: dict[str, str] = {}
    for table in (codes.CONDITIONS, codes.PROCEDURES, codes.MECHANISMS):
        for code, display in table.items():
            assert merged.setdefault(code, display) == display
    for code, display in codes.BODY_SITES.values():
        assert codes.SNOMED[code] == display
    for code in codes.LOINC:
        assert re.fullmatch(r"[0-9]{1,6}-[0-9]", code), code
    assert set(codes.VITALS_LOINC.values()) <= set(codes.LOINC)
    assert set(codes.TRIAGE) == {"T1", "T2", "T3", "T4"}
    assert codes.TRIAGE_SYSTEM and codes.AVPU.keys() == {"A", "V", "P", "U"}
    for allowed in ALLOWED_PROCEDURES.values():
        assert allowed <= set(codes.PROCEDURES)


def test_domain_codes_are_present_with_their_meaning() -> None:
    expected = {
        "283545005": "Gunshot wound",
        "262595009": "Traumatic amputation",
        "127295002": "Traumatic brain injury",
        "233645004": "Tension pneumothorax",
        "47505003": "Posttraumatic stress disorder",
        "20655006": "Application of tourniquet",
        "225390008": "Triage",
        "242777003": "Accident caused by explosion",
        "218081007": "Accident caused by firearm missile",
    }
    for code, display in expected.items():
        assert codes.SNOMED[code] == display
