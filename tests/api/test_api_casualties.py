"""The casualty browser's API against the real service: filters, sort, paging totals, facets,
lookup by id, 422s listing every problem; and the internal indexes kept out of the outputs.

Every expected figure is computed here from the job's own patients.ndjson, downloaded through
the API and parsed independently of the index the service answers from.
"""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import Service

pytestmark = pytest.mark.slow

FIELDS = {
    "front": lambda r: r["front"],
    "nation": lambda r: r["nationality"],
    "category": lambda r: r["category"],
    "triage": lambda r: r["triage"] or "none",
    "outcome": lambda r: r["outcome"],
    "facility": lambda r: r["outcome_facility"],
}
INTERNAL = {"patients.ndjson.idx", "patients.attrs", "patients.attrs.json"}


@pytest.fixture(scope="module")
def job(live_sqlite: Service) -> dict[str, Any]:
    """A completed 3,500-patient job in 4 chunks (the service's chunks are 1,000 patients) and
    its records, parsed from the NDJSON downloaded as a file."""
    with live_sqlite.client("alice") as client:
        response = client.post(
            "/jobs",
            json={
                "preset": "high-intensity-defence",
                "overrides": {"total_patients": 3500, "seed": 11},
                "formats": ["ndjson", "csv"],
            },
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        for _ in range(600):
            document = client.get(f"/jobs/{job_id}").json()
            if document["status"] == "completed":
                break
            assert document["status"] in ("pending", "running"), document
            time.sleep(0.1)
        else:
            pytest.fail("the job did not complete in 60 s")
        lines = client.get(f"/jobs/{job_id}/files/patients.ndjson").content.splitlines()
    return {
        "id": job_id,
        "document": document,
        "lines": lines,
        "records": [orjson.loads(x) for x in lines],
    }


def _all_pages(client: httpx.Client, path: str, **params: Any) -> tuple[int, list[dict]]:
    items: list[dict] = []
    offset: int | None = 0
    total = -1
    while offset is not None:
        response = client.get(path, params={**params, "offset": offset, "limit": 700})
        assert response.status_code == 200, response.text
        page = response.json()
        assert total in (-1, page["total"])
        total = page["total"]
        items.extend(page["items"])
        offset = page["next_offset"]
    return total, items


def test_outputs_leave_out_the_internal_indexes(live_sqlite: Service, job: dict) -> None:
    """Issue 12 defect 3: the internal patients.ndjson.idx (and now the attribute index) is no
    output: not in the job's files, its list, its ZIP, and not downloadable by name."""
    job_id = job["id"]
    with live_sqlite.client("alice") as client:
        listed = {f["name"] for f in client.get(f"/jobs/{job_id}/files").json()["items"]}
        in_job = {f["name"] for f in client.get(f"/jobs/{job_id}").json()["output_files"]}
        archive = zipfile.ZipFile(io.BytesIO(client.get(f"/jobs/{job_id}/archive").content))
        zipped = set(archive.namelist())
        assert "patients.ndjson" in listed and "patients.csv" in listed
        assert listed == in_job == zipped
        assert not listed & INTERNAL
        manifest = orjson.loads(archive.read("manifest.json"))
        assert {f["name"] for f in manifest["files"]} == listed - {"manifest.json"}
        assert {f["name"] for f in manifest["internal_files"]} == INTERNAL
        for name in INTERNAL:
            assert client.get(f"/jobs/{job_id}/files/{name}").status_code == 404


def test_filters_count_and_page_like_the_ndjson(live_sqlite: Service, job: dict) -> None:
    records = job["records"]
    path = f"/jobs/{job['id']}/patients"
    first = records[0]
    cases: list[dict[str, Any]] = [
        {"triage": ["T1"]},
        {"triage": ["T1", "T2"], "category": ["battle_injury"]},
        {"front": [first["front"]], "nation": [first["nationality"]]},
        {"outcome": ["KIA", "DOW"]},
        {"facility": ["R2"], "outcome": ["RTD"], "category": ["disease", "non_battle_injury"]},
        {"triage": ["none"]},
    ]
    with live_sqlite.client("alice") as client:
        for filters in cases:
            expected = [
                r["id"]
                for r in records
                if all(FIELDS[name](r) in values for name, values in filters.items())
            ]
            assert expected, filters  # each case selects someone
            total, items = _all_pages(client, path, **filters)
            assert total == len(expected), filters
            assert [r["id"] for r in items] == expected, filters
        # a comma list is the same as the repeated parameter
        repeated = client.get(path, params={"triage": ["T1", "T2"], "limit": 50}).json()
        commas = client.get(path, params={"triage": "T1,T2", "limit": 50}).json()
        assert repeated == commas and repeated["total"] > 50
        # nothing matches: an empty page, total 0
        empty = client.get(path, params={"outcome": "KIA", "facility": "R4"}).json()
        assert empty["total"] == sum(
            1 for r in records if r["outcome"] == "KIA" and r["outcome_facility"] == "R4"
        )
        assert empty["total"] == 0 and empty["items"] == [] and empty["next_offset"] is None


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_sorted_pages(live_sqlite: Service, job: dict) -> None:
    records = job["records"]
    path = f"/jobs/{job['id']}/patients"
    triage_rank = {"none": 0, "T1": 1, "T2": 2, "T3": 3, "T4": 4}
    with live_sqlite.client("alice") as client:
        _, items = _all_pages(client, path, sort="injured_at")
        assert [r["index"] for r in items] == [
            r["index"] for r in sorted(records, key=lambda r: (_at(r["injured_at"]), r["index"]))
        ]
        _, items = _all_pages(client, path, sort="-outcome_at", category="battle_injury")
        battle = [r for r in records if r["category"] == "battle_injury"]
        times = [_at(r["outcome_at"]) for r in items]
        assert times == sorted(times, reverse=True) and len(items) == len(battle)
        page = client.get(path, params={"sort": "triage", "limit": 1000}).json()
        ranks = [triage_rank[r["triage"] or "none"] for r in page["items"]]
        assert ranks == sorted(ranks) and page["sort"] == "triage"
        nations = client.get(path, params={"sort": "-nation", "limit": 1000}).json()["items"]
        codes = [r["nationality"] for r in nations]
        assert codes == sorted(codes, reverse=True)
        assert codes[0] == max(r["nationality"] for r in records)


def test_facets_count_the_ndjson(live_sqlite: Service, job: dict) -> None:
    records = job["records"]
    with live_sqlite.client("alice") as client:
        answer = client.get(f"/jobs/{job['id']}/patients/facets").json()
    assert answer["total"] == len(records) == 3500
    assert "injured_at" in answer["sort_keys"] and "triage" in answer["sort_keys"]
    for name, get in FIELDS.items():
        counted = Counter(get(r) for r in records)
        assert {f["value"]: f["count"] for f in answer["facets"][name]} == counted, name


def test_lookup_by_id(live_sqlite: Service, job: dict) -> None:
    path = f"/jobs/{job['id']}/patients"
    with live_sqlite.client("alice") as client:
        for k in (0, 999, 1000, 2024, 3499):
            found = client.get(f"{path}/{job['records'][k]['id']}")
            assert found.status_code == 200, found.text
            assert found.content == job["lines"][k]
        missing = client.get(f"{path}/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert client.get(f"{path}/not-an-id").status_code == 422
        # someone else's job is not there at all
        with live_sqlite.client("bob") as bob:
            assert bob.get(f"{path}/{job['records'][0]['id']}").status_code == 404


def test_unknown_filters_and_sort_list_every_problem(live_sqlite: Service, job: dict) -> None:
    path = f"/jobs/{job['id']}/patients"
    with live_sqlite.client("alice") as client:
        response = client.get(
            path,
            params={
                "triage": ["T1", "T9"],
                "nation": "XXX,POL",
                "outcome": "LOST",
                "sort": "-name",
            },
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    fields = sorted(e["field"] for e in problem["errors"])
    assert fields == ["nation", "outcome", "sort", "triage"]
    messages = " ".join(e["message"] for e in problem["errors"])
    for bad in ("'T9'", "'XXX'", "'LOST'", "'-name'"):
        assert bad in messages


def test_a_job_without_the_index_still_pages(live_sqlite: Service) -> None:
    """A job written before the casualty index existed (its files removed here to stand for
    one): plain pages still work; filters, sorts, facets and lookups say why they cannot."""
    with live_sqlite.client("alice") as client:
        body = {"scenario": {"total_patients": 30, "seed": 2}, "formats": ["ndjson"]}
        job_id = client.post("/jobs", json=body).json()["job_id"]
        for _ in range(300):
            if client.get(f"/jobs/{job_id}").json()["status"] == "completed":
                break
            time.sleep(0.1)
        folder = live_sqlite.data_dir / "jobs" / job_id
        for name in ("patients.attrs", "patients.attrs.json"):
            (folder / name).unlink()
        page = client.get(f"/jobs/{job_id}/patients", params={"limit": 10}).json()
        assert page["total"] == 30 and len(page["items"]) == 10
        for path, params in [
            ("/patients", {"triage": "T1"}),
            ("/patients", {"sort": "-injured_at"}),
            ("/patients/facets", {}),
            (f"/patients/{page['items'][0]['id']}", {}),
        ]:
            answer = client.get(f"/jobs/{job_id}{path}", params=params)
            assert answer.status_code == 409, (path, answer.text)
            assert answer.json()["type"].endswith("/no-casualty-index")
