"""What the replay of the chain of care asks the API for, against the real service: time filters
on the patients pages, the casualties' tracks and the counters per role before a moment, and
422s listing every problem.

Every expected figure is computed here from the job's patients.ndjson, downloaded through the
API and parsed independently of the index the service answers from.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import Service

pytestmark = pytest.mark.slow

ROLES = ("POI", "R1", "R2", "R3", "R4")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def job(live_sqlite: Service) -> dict[str, Any]:
    """A completed 2,500-patient job with a medical plan in 3 chunks, its records and summary."""
    with live_sqlite.client("alice") as client:
        body = {
            "preset": "high-intensity-defence",
            "overrides": {"total_patients": 2500, "seed": 23, "capacity": "sized"},
            "formats": ["ndjson"],
        }
        response = client.post("/jobs", json=body)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        for _ in range(1200):
            document = client.get(f"/jobs/{job_id}").json()
            if document["status"] == "completed":
                break
            assert document["status"] in ("pending", "running"), document
            time.sleep(0.1)
        else:
            pytest.fail("the job did not complete in 120 s")
        lines = client.get(f"/jobs/{job_id}/files/patients.ndjson").content.splitlines()
        summary = client.get(f"/jobs/{job_id}/files/summary.json").json()
    return {"id": job_id, "records": [orjson.loads(x) for x in lines], "summary": summary}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _ms(text: str) -> int:
    return (_at(text) - EPOCH) // timedelta(milliseconds=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _arrivals(record: dict[str, Any]) -> dict[str, str]:
    """Where and when the casualty arrived (the point of injury at its injury)."""
    found = {v["facility"]: v["arrived_at"] for v in record["visits"]}
    found["POI"] = record["injured_at"]
    return found


def _moments(records: list[dict[str, Any]]) -> list[datetime]:
    """Times across the job: before it, quartiles of injury, exact event times, after it."""
    injuries = sorted(_at(r["injured_at"]) for r in records)
    outcomes = sorted(_at(r["outcome_at"]) for r in records)
    n = len(injuries)
    some_arrival = _at(next(v["arrived_at"] for r in records for v in r["visits"][1:]))
    return [
        injuries[0] - timedelta(hours=1),
        injuries[0],  # nobody injured before the first injury
        injuries[n // 4],
        some_arrival,  # an arrival exactly at T is not "before T"
        injuries[n // 2] + timedelta(minutes=7),
        outcomes[3 * n // 4],
        outcomes[-1],
        outcomes[-1] + timedelta(seconds=1),
    ]


def _pages(client: httpx.Client, path: str, **params: Any) -> tuple[int, list[dict]]:
    items: list[dict] = []
    offset: int | None = 0
    total = -1
    while offset is not None:
        response = client.get(path, params={**params, "offset": offset})
        assert response.status_code == 200, response.text
        page = response.json()
        assert total in (-1, page["total"])
        total = page["total"]
        items.extend(page["items"])
        offset = page["next_offset"]
    return total, items


def test_time_filters_count_and_page_like_the_ndjson(live_sqlite: Service, job: dict) -> None:
    records = job["records"]
    path = f"/jobs/{job['id']}/patients"
    with live_sqlite.client("alice") as client:
        for moment in _moments(records):
            t = _iso(moment)
            cases = {
                "injured_before": lambda r, m=moment: _at(r["injured_at"]) < m,
                "injured_after": lambda r, m=moment: _at(r["injured_at"]) >= m,
                "outcome_before": lambda r, m=moment: _at(r["outcome_at"]) < m,
                "outcome_after": lambda r, m=moment: _at(r["outcome_at"]) >= m,
            }
            for name, keep in cases.items():
                expected = [r["index"] for r in records if keep(r)]
                total, items = _pages(client, path, **{name: t}, limit=1000)
                assert total == len(expected), (name, t)
                assert [r["index"] for r in items] == expected, (name, t)
            # active at T, battle casualties only, latest injury first
            active = [
                r
                for r in records
                if _at(r["injured_at"]) < moment <= _at(r["outcome_at"])
                and r["category"] == "battle_injury"
            ]
            params = {"injured_before": t, "outcome_after": t, "category": "battle_injury",
                      "sort": "-injured_at", "limit": 1000}  # fmt: skip
            total, items = _pages(client, path, **params)
            assert total == len(active)
            ordered = sorted(active, key=lambda r: (_at(r["injured_at"]), r["index"]))[::-1]
            assert [r["index"] for r in items] == [r["index"] for r in ordered]
        # a time with another zone is the same moment
        first = _at(records[0]["injured_at"])
        paris = (first + timedelta(minutes=1)).astimezone(
            datetime.fromisoformat("2026-01-01T00:00:00+01:00").tzinfo
        )
        a = client.get(path, params={"injured_before": paris.isoformat(), "limit": 1}).json()
        b = client.get(path, params={"injured_before": _iso(first + timedelta(minutes=1)),
                                     "limit": 1}).json()  # fmt: skip
        assert a["total"] == b["total"] > 0


def test_tracks_are_each_casualtys_path(live_sqlite: Service, job: dict) -> None:
    records = job["records"]
    path = f"/jobs/{job['id']}/patients/tracks"
    by_injury = sorted(records, key=lambda r: (_at(r["injured_at"]), r["index"]))
    with live_sqlite.client("alice") as client:
        total, items = _pages(client, path, limit=900)
        first = client.get(path, params={"limit": 1}).json()
    assert total == len(records) == 2500
    assert first["columns"] == list(ROLES)
    assert first["span"] == {
        "start": min(_ms(r["injured_at"]) for r in records),
        "end": max(_ms(r["outcome_at"]) for r in records),
    }
    assert [t["index"] for t in items] == [r["index"] for r in by_injury]
    for track, r in zip(items, by_injury, strict=True):
        arrivals = _arrivals(r)
        assert track["times"] == [
            *(_ms(arrivals[role]) if role in arrivals else None for role in ROLES),
            _ms(r["outcome_at"]),
        ]
        assert (track["triage"], track["outcome"], track["facility"]) == (
            r["triage"] or "none",
            r["outcome"],
            r["outcome_facility"],
        )
        assert (track["front"], track["nation"]) == (r["front"], r["nationality"])


def test_tracks_active_at_a_moment_and_ahead(live_sqlite: Service, job: dict) -> None:
    """A seek to T fetches the casualties active at T; play fetches those injured from T on:
    together, every casualty with an event after T, once."""
    records = job["records"]
    path = f"/jobs/{job['id']}/patients/tracks"
    with live_sqlite.client("alice") as client:
        for moment in _moments(records)[2:6]:
            t = _iso(moment)
            filters = {"triage": "T1,T2", "front": records[0]["front"]}
            mine = [
                r
                for r in records
                if (r["triage"] in ("T1", "T2")) and r["front"] == records[0]["front"]
            ]
            _, active = _pages(client, path, injured_before=t, outcome_after=t, **filters)
            _, ahead = _pages(client, path, injured_after=t, **filters)
            assert {x["index"] for x in active} == {
                r["index"] for r in mine if _at(r["injured_at"]) < moment <= _at(r["outcome_at"])
            }
            assert [x["index"] for x in ahead] == [
                r["index"]
                for r in sorted(mine, key=lambda r: (_at(r["injured_at"]), r["index"]))
                if _at(r["injured_at"]) >= moment
            ]


def _expected_counters(records: list[dict[str, Any]], moment: datetime) -> dict[str, Any]:
    counters = {role: {"arrivals": 0, "deaths": 0, "rtd": 0} for role in ROLES}
    for r in records:
        for role, at in _arrivals(r).items():
            if _at(at) < moment:
                counters[role]["arrivals"] += 1
        if _at(r["outcome_at"]) < moment:
            if r["outcome"] in ("KIA", "DOW", "DIED"):
                counters[r["outcome_facility"]]["deaths"] += 1
            elif r["outcome"] == "RTD":
                counters[r["outcome_facility"]]["rtd"] += 1
    return counters


def test_counters_before_a_moment(live_sqlite: Service, job: dict) -> None:
    records = job["records"]
    path = f"/jobs/{job['id']}/patients/counters"
    with live_sqlite.client("alice") as client:
        for moment in _moments(records):
            answer = client.get(path, params={"at": _iso(moment)}).json()
            assert answer["counters"] == _expected_counters(records, moment), moment
            assert answer["total"] == len(records)
            assert answer["at"] == (moment - EPOCH) // timedelta(milliseconds=1)
            nation = records[5]["nationality"]
            filtered = client.get(
                path, params={"at": _iso(moment), "nation": nation, "outcome": "RTD,DOW"}
            ).json()
            mine = [
                r for r in records if r["nationality"] == nation and r["outcome"] in ("RTD", "DOW")
            ]
            assert filtered["total"] == len(mine)
            assert filtered["counters"] == _expected_counters(mine, moment)


def test_counters_at_the_end_are_the_summarys(live_sqlite: Service, job: dict) -> None:
    records, summary = job["records"], job["summary"]
    end = max(_at(r["outcome_at"]) for r in records) + timedelta(seconds=1)
    with live_sqlite.client("alice") as client:
        answer = client.get(f"/jobs/{job['id']}/patients/counters", params={"at": _iso(end)})
    counters = answer.json()["counters"]
    visits_by_role = {role: 0 for role in ROLES}
    for facility in summary["facilities"].values():
        visits_by_role[facility["role"]] += facility["visits"]
    assert counters["POI"]["arrivals"] == summary["patients"] == 2500
    for role in ROLES[1:]:
        assert counters[role]["arrivals"] == visits_by_role[role], role
    by_outcome = summary["by_outcome"]
    deaths = sum(by_outcome.get(k, 0) for k in ("KIA", "DOW", "DIED"))
    assert sum(c["deaths"] for c in counters.values()) == deaths
    assert sum(c["rtd"] for c in counters.values()) == by_outcome["RTD"]
    assert counters["POI"]["deaths"] == by_outcome["KIA"]


def test_bad_times_and_values_list_every_problem(live_sqlite: Service, job: dict) -> None:
    base = f"/jobs/{job['id']}/patients"
    with live_sqlite.client("alice") as client:
        for path in (base, f"{base}/tracks"):
            response = client.get(
                path,
                params={
                    "injured_before": "yesterday",
                    "outcome_after": "2026-03-02T06:00:00",  # no zone
                    "injured_after": "2026-03-02T06:00:00Z",  # fine
                    "triage": "T9",
                },
            )
            assert response.status_code == 422, path
            assert response.headers["content-type"] == "application/problem+json"
            errors = response.json()["errors"]
            assert sorted(e["field"] for e in errors) == [
                "injured_before",
                "outcome_after",
                "triage",
            ]
            messages = " ".join(e["message"] for e in errors)
            assert "'yesterday' is not a time" in messages and "without its zone" in messages
        response = client.get(f"{base}/counters", params={"at": "noon", "outcome": "LOST"})
        assert response.status_code == 422
        assert sorted(e["field"] for e in response.json()["errors"]) == ["at", "outcome"]
        missing = client.get(f"{base}/counters")
        assert missing.status_code == 422
        assert [e["loc"] for e in missing.json()["errors"]] == [["query", "at"]]
        blank = client.get(base, params={"injured_before": "", "outcome_after": " "})
        assert blank.status_code == 200 and blank.json()["total"] == 2500  # blank: not given
        too_many = client.get(f"{base}/tracks", params={"limit": 5001})
        assert too_many.status_code == 422


def test_the_python_client(live_sqlite: Service, job: dict) -> None:
    from patientgen.client import Client, ValidationFailed

    records = job["records"]
    moment = sorted(_at(r["injured_at"]) for r in records)[1000]
    active = [r for r in records if _at(r["injured_at"]) < moment <= _at(r["outcome_at"])]
    t1 = [r for r in records if r["triage"] == "T1" and _at(r["injured_at"]) >= moment]
    with Client(live_sqlite.url, api_key=live_sqlite.keys["alice"]) as client:
        page = client.patients(job["id"], injured_before=moment, outcome_after=_iso(moment))
        assert page.total == len(active)
        tracks = client.patient_tracks(job["id"], limit=5000, injured_after=moment, triage="T1")
        assert [t.index for t in tracks.items] == [
            r["index"] for r in sorted(t1, key=lambda r: (_at(r["injured_at"]), r["index"]))
        ]
        counted = client.patient_counters(job["id"], moment, triage=["T1"])
        mine = [r for r in records if r["triage"] == "T1"]
        assert {k: v.model_dump() for k, v in counted.counters.items()} == _expected_counters(
            mine, moment
        )
        with pytest.raises(ValidationFailed) as failed:
            client.patient_tracks(job["id"], injured_before="soon", triage="T7")
        assert len(failed.value.errors) == 2


def test_an_index_written_before_the_arrivals(live_sqlite: Service) -> None:
    """A job whose casualty index is of version 1 (no arrival times; made here from the real one
    by cutting each record to its first 40 bytes): filters, sorts and lookups still work, the
    replay's calls say why they cannot."""
    with live_sqlite.client("alice") as client:
        body = {"scenario": {"total_patients": 40, "seed": 3}, "formats": ["ndjson"]}
        job_id = client.post("/jobs", json=body).json()["job_id"]
        for _ in range(300):
            if client.get(f"/jobs/{job_id}").json()["status"] == "completed":
                break
            time.sleep(0.1)
        lines = client.get(f"/jobs/{job_id}/files/patients.ndjson").content.splitlines()
        records = [orjson.loads(x) for x in lines]
        folder = live_sqlite.data_dir / "jobs" / job_id
        data = (folder / "patients.attrs").read_bytes()
        assert len(data) == 72 * 40
        (folder / "patients.attrs").write_bytes(
            b"".join(data[k : k + 40] for k in range(0, len(data), 72))
        )
        dictionary = orjson.loads((folder / "patients.attrs.json").read_bytes())
        (folder / "patients.attrs.json").write_bytes(orjson.dumps({**dictionary, "version": 1}))
        path = f"/jobs/{job_id}/patients"
        t1 = client.get(path, params={"triage": "T1", "sort": "-injured_at"}).json()
        assert t1["total"] == sum(1 for r in records if r["triage"] == "T1")
        found = client.get(f"{path}/{records[-1]['id']}")
        assert found.status_code == 200 and found.content == lines[-1]
        moment = _iso(_at(records[0]["injured_at"]))
        assert client.get(path, params={"injured_after": moment}).json()["total"] == sum(
            1 for r in records if _at(r["injured_at"]) >= _at(moment)
        )
        for tail, params in (("/tracks", {}), ("/counters", {"at": moment})):
            answer = client.get(f"{path}{tail}", params=params)
            assert answer.status_code == 409, answer.text
            assert "predates the replay" in answer.json()["detail"]
