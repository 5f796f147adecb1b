"""The whole flow through real HTTP against the real service, on SQLite and on PostgreSQL:
submit, follow the event stream, download, verify, page; owner isolation; idempotency."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import zipfile

import httpx
import orjson
import pytest

from tests.api.conftest import Service

pytestmark = pytest.mark.slow

ALL_FORMATS = ["json", "ndjson", "csv", "fhir"]
PROBLEM = "application/problem+json"


def read_events(client: httpx.Client, path: str) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    with client.stream("GET", path, timeout=httpx.Timeout(10, read=60)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = None, []
        for line in response.iter_lines():
            if line == "":
                if data:
                    events.append((event, json.loads("\n".join(data))))
                event, data = None, []
            elif line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
    return events


@pytest.fixture(scope="module")
def finished_job(live: Service) -> dict:
    """A 5,000-patient job with every format, followed to its end through the event stream."""
    with live.client("alice") as client:
        response = client.post(
            "/jobs",
            json={
                "preset": "urban-assault",
                "overrides": {"total_patients": 5000},
                "formats": ALL_FORMATS,
            },
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/api/v1/jobs/{job['job_id']}"
        assert job["status"] in ("pending", "running")
        events = read_events(client, f"/jobs/{job['job_id']}/events")
    return {"submitted": job, "events": events}


def test_event_stream_reports_progress_then_the_end(finished_job: dict) -> None:
    events = finished_job["events"]
    names = [name for name, _ in events]
    assert names[-1] == "end" and names.count("end") == 1
    assert set(names[:-1]) <= {"progress"}
    final = events[-1][1]
    assert final["status"] == "completed", final
    assert final["progress"] == 100
    progresses = [data["progress"] for _, data in events]
    assert progresses == sorted(progresses), "progress never goes back"
    assert len(set(progresses)) >= 3, f"expected intermediate progress, got {progresses}"
    # one event per change: no two consecutive events carry the same state
    keys = [(d["status"], d["progress"], json.dumps(d["progress_details"])) for _, d in events]
    assert all(a != b for a, b in itertools.pairwise(keys))


def test_job_document(live: Service, finished_job: dict) -> None:
    job_id = finished_job["submitted"]["job_id"]
    with live.client("alice") as client:
        job = client.get(f"/jobs/{job_id}").json()
    for key in (
        "job_id", "status", "progress", "progress_details", "config", "created_at",
        "started_at", "completed_at", "attempts", "error", "output_files", "summary",
    ):  # fmt: skip
        assert key in job
    assert job["config"]["formats"] == ALL_FORMATS
    assert job["config"]["scenario"]["total_patients"] == 5000
    assert job["config"]["scenario"]["seed"] == 3003  # the preset's seed counts as given
    assert job["summary"] is not None
    assert "lease_owner" not in job and "idempotency_key" not in job


def test_download_every_file_and_verify(live: Service, finished_job: dict, tmp_path) -> None:
    job_id = finished_job["submitted"]["job_id"]
    with live.client("alice") as client:
        files = client.get(f"/jobs/{job_id}/files").json()["items"]
        names = {f["name"] for f in files}
        assert {"patients.json", "patients.ndjson", "patients.csv", "manifest.json"} <= names
        assert any(n.startswith("fhir/") for n in names)
        bodies = {}
        for item in files:
            response = client.get(f"/jobs/{job_id}/files/{item['name']}")
            assert response.status_code == 200, (item, response.text)
            digest = hashlib.sha256(response.content).hexdigest()
            assert response.headers["etag"] == f'"{digest}"' == f'"{item["sha256"]}"'
            assert int(response.headers["content-length"]) == item["bytes"]
            bodies[item["name"]] = response.content
        types = {
            "patients.json": "application/json",
            "patients.ndjson": "application/x-ndjson",
            "patients.csv": "text/csv",
        }
        for name, ctype in types.items():
            head = client.head(f"/jobs/{job_id}/files/{name}")
            assert head.status_code == 200 and head.headers["content-type"].startswith(ctype)
        # the manifest lists the same files with the same sha256
        manifest = orjson.loads(bodies["manifest.json"])
        listed = {entry["name"]: entry["sha256"] for entry in manifest["files"]}
        for name, sha in listed.items():
            assert hashlib.sha256(bodies[name]).hexdigest() == sha
        assert len(orjson.loads(bodies["patients.json"])) == 5000
        assert bodies["patients.ndjson"].count(b"\n") == 5000

        # Range: 206 with the right bytes, 416 outside, conditional requests
        csv = bodies["patients.csv"]
        etag = f'"{hashlib.sha256(csv).hexdigest()}"'
        part = client.get(f"/jobs/{job_id}/files/patients.csv", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == csv[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(csv)}"
        tail = client.get(f"/jobs/{job_id}/files/patients.csv", headers={"Range": "bytes=-50"})
        assert tail.status_code == 206 and tail.content == csv[-50:]
        bad = client.get(
            f"/jobs/{job_id}/files/patients.csv", headers={"Range": f"bytes={len(csv) + 5}-"}
        )
        assert bad.status_code == 416 and bad.headers["content-type"] == PROBLEM
        assert bad.headers["content-range"] == f"bytes */{len(csv)}"
        same = client.get(f"/jobs/{job_id}/files/patients.csv", headers={"If-None-Match": etag})
        assert same.status_code == 304
        stale = client.get(
            f"/jobs/{job_id}/files/patients.csv", headers={"Range": "bytes=0-9", "If-Range": '"x"'}
        )
        assert stale.status_code == 200 and stale.content == csv
        # If-Range naming the ETag or the Last-Modified: the range is served, or 416 outside
        for validator in (etag, part.headers["last-modified"]):
            current = {"If-Range": validator}
            url = f"/jobs/{job_id}/files/patients.csv"
            fresh = client.get(url, headers={**current, "Range": "bytes=0-9"})
            assert fresh.status_code == 206 and fresh.content == csv[:10]
            outside = client.get(url, headers={**current, "Range": f"bytes={len(csv)}-"})
            assert outside.status_code == 416 and outside.headers["content-type"] == PROBLEM
        malformed = client.get(
            f"/jobs/{job_id}/files/patients.csv", headers={"Range": "bytes=oops"}
        )
        assert malformed.status_code == 200 and malformed.content == csv

        # the ZIP holds every file, byte for byte
        archive = client.get(f"/jobs/{job_id}/archive")
        assert archive.status_code == 200
        assert archive.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
            assert zf.testzip() is None
            assert set(zf.namelist()) == names
            for name in names:
                assert zf.read(name) == bodies[name]

        # paging patients through the offsets index matches the NDJSON file
        lines = bodies["patients.ndjson"].splitlines()
        seen = []
        offset = 0
        while offset is not None:
            page = client.get(f"/jobs/{job_id}/patients", params={"offset": offset, "limit": 1000})
            assert page.status_code == 200, page.text
            data = page.json()
            assert data["total"] == 5000
            seen.extend(data["items"])
            offset = data["next_offset"]
        assert len(seen) == 5000
        for k in (0, 1, 999, 1000, 2500, 4999):
            assert seen[k] == orjson.loads(lines[k])
        page = client.get(f"/jobs/{job_id}/patients", params={"offset": 4998, "limit": 10}).json()
        assert len(page["items"]) == 2 and page["next_offset"] is None
        past = client.get(f"/jobs/{job_id}/patients", params={"offset": 6000}).json()
        assert past["items"] == []


def test_owner_isolation(live: Service, finished_job: dict) -> None:
    job_id = finished_job["submitted"]["job_id"]
    paths = [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/events"),
        ("GET", f"/jobs/{job_id}/files"),
        ("GET", f"/jobs/{job_id}/files/patients.csv"),
        ("GET", f"/jobs/{job_id}/archive"),
        ("GET", f"/jobs/{job_id}/patients"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("POST", f"/jobs/{job_id}/retry"),
        ("DELETE", f"/jobs/{job_id}"),
    ]
    with live.client("bob") as bob, live.client(None) as anonymous:
        for method, path in paths:
            response = bob.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["type"].endswith("/not-found")
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert "bearer" in response.headers["www-authenticate"].lower()
        assert job_id not in [j["job_id"] for j in bob.get("/jobs").json()["items"]]
        assert anonymous.get("/jobs").status_code == 401
        assert anonymous.post("/jobs", json={"preset": "peacekeeping"}).status_code == 401
        wrong = httpx.get(live.api + "/jobs", headers={"X-API-Key": "not-a-key"})
        assert wrong.status_code == 401
    # an admin sees it; the X-API-Key header works as well as Bearer
    admin = httpx.get(f"{live.api}/jobs/{job_id}", headers={"X-API-Key": live.keys["root"]})
    assert admin.status_code == 200
    # the job survived bob's attempts
    with live.client("alice") as alice:
        assert alice.get(f"/jobs/{job_id}").json()["status"] == "completed"


def test_idempotency(live: Service) -> None:
    body = {"preset": "training-exercise", "overrides": {"total_patients": 20}, "formats": ["csv"]}
    with live.client("alice") as client:
        first = client.post("/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        again = client.post("/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 202 and again.status_code == 200
        assert first.json()["job_id"] == again.json()["job_id"]
        other = dict(body, formats=["json"])
        clash = client.post("/jobs", json=other, headers={"Idempotency-Key": "k-1"})
        assert clash.status_code == 409 and clash.headers["content-type"] == PROBLEM
        assert clash.json()["type"].endswith("/idempotency-conflict")
        # without a seed, the seed chosen for a key is the same for the same body
        seedless = {"scenario": {"total_patients": 10}, "formats": ["csv"]}
        a = client.post("/jobs", json=seedless, headers={"Idempotency-Key": "k-2"}).json()
        b = client.post("/jobs", json=seedless, headers={"Idempotency-Key": "k-2"}).json()
        assert a["job_id"] == b["job_id"]
        # and two seedless submits without a key get their own random seeds, recorded
        c = client.post("/jobs", json=seedless).json()
        d = client.post("/jobs", json=seedless).json()
        assert c["job_id"] != d["job_id"]
        assert c["config"]["scenario"]["seed"] != d["config"]["scenario"]["seed"]
    # the same key used by another owner is another job
    with live.client("bob") as bob:
        theirs = bob.post("/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        assert theirs.status_code == 202
        assert theirs.json()["job_id"] != first.json()["job_id"]


def test_per_key_limits(api_only: Service) -> None:
    """No worker runs, so the first job stays pending and the active-job limit must bite."""
    with api_only.client("capped") as client:
        big = client.post("/jobs", json={"scenario": {"total_patients": 101}, "formats": ["csv"]})
        assert big.status_code == 422 and big.json()["type"].endswith("/too-many-patients")
        slow = {"scenario": {"total_patients": 100, "seed": 1}, "formats": ["csv"]}
        first = client.post("/jobs", json=slow)
        assert first.status_code == 202
        second = client.post("/jobs", json=dict(slow, scenario={"total_patients": 99}))
        assert second.status_code == 429, second.text
        assert second.json()["type"].endswith("/too-many-active-jobs")
        # cancelling the active job frees the slot
        assert client.post(f"/jobs/{first.json()['job_id']}/cancel").status_code == 200
        third = client.post("/jobs", json=dict(slow, scenario={"total_patients": 99}))
        assert third.status_code == 202, third.text


def test_cancel_retry_delete(live: Service) -> None:
    with live.client("alice") as client:
        job = client.post(
            "/jobs", json={"preset": "peacekeeping", "overrides": {"total_patients": 100_000}}
        ).json()
        cancelled = client.post(f"/jobs/{job['job_id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        final = read_events(client, f"/jobs/{job['job_id']}/events")[-1]
        assert final[0] == "end" and final[1]["status"] == "cancelled"
        assert client.post(f"/jobs/{job['job_id']}/cancel").status_code == 409
        assert client.get(f"/jobs/{job['job_id']}/archive").status_code == 409
        retried = client.post(f"/jobs/{job['job_id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
        client.post(f"/jobs/{job['job_id']}/cancel")
        read_events(client, f"/jobs/{job['job_id']}/events")
        assert client.delete(f"/jobs/{job['job_id']}").status_code == 204
        assert client.get(f"/jobs/{job['job_id']}").status_code == 404


def test_list_filter_and_cursor(live: Service) -> None:
    with live.client("bob") as client:
        made = [
            client.post(
                "/jobs", json={"scenario": {"total_patients": 5, "seed": i}, "formats": ["csv"]}
            ).json()["job_id"]
            for i in range(5)
        ]
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = client.get("/jobs", params=params).json()
            assert len(page["items"]) <= 2
            seen.extend(j["job_id"] for j in page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen))
        mine = [j for j in seen if j in made]
        assert mine == list(reversed(made)), "newest first"
        statuses = client.get("/jobs", params={"status": ["completed", "pending"]}).json()
        assert all(j["status"] in ("completed", "pending") for j in statuses["items"])


@pytest.mark.parametrize(
    "name",
    ["..%2Fpatientgen.db", "fhir%2F..%2F..%2F..%2Fpatientgen.db", "%2Fetc%2Fpasswd", "fhir"],
)
def test_no_path_traversal(live: Service, finished_job: dict, name: str) -> None:
    job_id = finished_job["submitted"]["job_id"]
    with live.client("alice") as client:
        response = client.get(f"/jobs/{job_id}/files/{name}")
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM


def test_an_archive_begun_is_whole_even_if_the_job_is_deleted_meanwhile(live: Service) -> None:
    """A ZIP download that has begun holds every file of the job, byte for byte, even when the
    job is deleted (its folder removed) while it streams: the files are opened before the first
    byte is sent. Before, each file was opened as its turn came and the download broke off."""
    with live.client("alice") as client:
        body = {"scenario": {"total_patients": 3000, "seed": 8}, "formats": ["csv", "fhir"]}
        job_id = client.post("/jobs", json=body).json()["job_id"]
        assert read_events(client, f"/jobs/{job_id}/events")[-1][1]["status"] == "completed"
        listed = client.get(f"/jobs/{job_id}/files").json()["items"]
        bodies = {
            f["name"]: client.get(f"/jobs/{job_id}/files/{f['name']}").content for f in listed
        }
        assert sum(len(b) for b in bodies.values()) > 20 << 20  # far more than the stream buffers
        received = bytearray()
        with client.stream("GET", f"/jobs/{job_id}/archive") as archive:
            assert archive.status_code == 200
            blocks = archive.iter_bytes()
            received += next(blocks)
            assert client.delete(f"/jobs/{job_id}").status_code == 204
            assert client.get(f"/jobs/{job_id}").status_code == 404
            for block in blocks:
                received += block
    with zipfile.ZipFile(io.BytesIO(bytes(received))) as zf:
        assert zf.testzip() is None
        assert {name: zf.read(name) for name in zf.namelist()} == bodies
