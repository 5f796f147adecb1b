"""The attribute index of patients.ndjson (formats.attributes) and its queries
(formats.casualties): byte-identical whatever the chunking, the same for a small batched job, and
each record saying what the NDJSON record says (decoded here with struct, independently)."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from patientgen.formats import bundle, casualties
from patientgen.scenario import Scenario

N = 1500
INDEX_FILES = ("patients.attrs", "patients.attrs.json", "patients.ndjson.idx", "manifest.json")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(name="index", seed=21, total_patients=N)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> Path:
    out = tmp_path_factory.mktemp("whole")
    bundle.write_all(scenario, ["ndjson"], out, chunk_size=N)  # one chunk, written whole
    return out


@pytest.mark.parametrize("chunk_size", [1, 333, 1000])
def test_index_is_byte_identical_for_any_chunking(
    tmp_path: Path, scenario: Scenario, whole: Path, chunk_size: int
) -> None:
    small = scenario.model_copy(update={"total_patients": 40}) if chunk_size == 1 else scenario
    reference = whole
    if small is not scenario:
        reference = tmp_path / "whole"
        bundle.write_all(small, ["ndjson"], reference, chunk_size=40)
    out = tmp_path / "chunked"
    bundle.write_all(small, ["ndjson", "csv"], out, chunk_size=chunk_size)
    for name in INDEX_FILES[:3]:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_small_batched_runs_write_the_same_index(
    tmp_path: Path, scenario: Scenario, whole: Path
) -> None:
    other = scenario.model_copy(update={"seed": 22, "total_patients": 30})
    runs = [
        bundle.SmallRun(scenario, ("ndjson",), tmp_path / "a", tmp_path / "a-parts"),
        bundle.SmallRun(other, ("ndjson",), tmp_path / "b", tmp_path / "b-parts"),
    ]
    results = bundle.write_runs(runs)
    for name in INDEX_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (whole / name).read_bytes(), name
    listed = {f.name for f in results[0][1]}
    assert set(INDEX_FILES) <= listed  # the run lists them (the manifest checks them) …
    assert not {f.name for f in bundle.outputs(results[0][1])} & set(INDEX_FILES[:3])  # … no output


def _micros(text: str) -> int:
    delta = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def test_records_say_what_the_ndjson_says(whole: Path) -> None:
    records = [orjson.loads(line) for line in (whole / "patients.ndjson").read_bytes().splitlines()]
    data = (whole / "patients.attrs").read_bytes()
    codes = orjson.loads((whole / "patients.attrs.json").read_bytes())["codes"]
    assert len(data) == 72 * len(records)
    never = -(2**63)
    for k, r in enumerate(records):
        injured, outcome_at, raw_id, *fields = struct.unpack_from("<qq16s6B2x", data, 72 * k)
        assert injured == _micros(r["injured_at"]) and outcome_at == _micros(r["outcome_at"])
        arrivals = {v["facility"]: _micros(v["arrived_at"]) for v in r["visits"]}
        assert list(struct.unpack_from("<4q", data, 72 * k + 40)) == [
            arrivals.get(role, never) for role in ("R1", "R2", "R3", "R4")
        ]
        assert uuid.UUID(bytes=raw_id) == uuid.UUID(r["id"])
        names = [codes[f][c] for f, c in zip(casualties.FIELDS, fields, strict=True)]
        assert names == [
            r["front"], r["nationality"], r["category"], r["triage"] or "none",
            r["outcome"], r["outcome_facility"],
        ]  # fmt: skip


def test_queries(whole: Path) -> None:
    records = [orjson.loads(line) for line in (whole / "patients.ndjson").read_bytes().splitlines()]
    index = casualties.open_index(whole)
    assert casualties.open_index(whole) is index  # cached while the files stay the same
    total, positions = casualties.select(index, {"triage": ["T2", "T3"]}, "-injured_at", 5, 20)
    expected = sorted(
        (r for r in records if r["triage"] in ("T2", "T3")),
        key=lambda r: (_micros(r["injured_at"]), r["index"]),
    )[::-1]
    assert total == len(expected)
    assert positions == [r["index"] for r in expected[5:25]]
    assert casualties.find(index, uuid.UUID(records[777]["id"])) == 777
    assert casualties.find(index, uuid.uuid4()) is None
    bad = casualties.problems(index, {"front": ["Nowhere"]}, "age")
    assert [p["field"] for p in bad] == ["front", "sort"]
    assert casualties.split_values(["T1,T2", "T3"], ["T1", "T2", "T3"]) == ["T1", "T2", "T3"]
    assert casualties.split_values(["East, West"], ["East, West"]) == ["East, West"]
