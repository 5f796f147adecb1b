"""Hostile requests to the real service: path traversal on downloads, oversized and malformed
bodies, oversized headers. Each is refused with a 4xx problem (never a 5xx, never a file outside
the job's own outputs) and leaves the service serving."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hostile.conftest import Service, wait_for

MAX_BODY = 1024 * 1024


def raw_request(svc: Service, method: str, target: str, headers: dict[str, str], body: bytes = b""):
    """One HTTP/1.1 request with the target sent byte for byte (no client-side normalisation of
    `..` or of percent escapes); returns (status, headers text, body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{svc.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", svc.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), payload


@pytest.fixture(scope="module")
def finished_jobs(hostile_service: Service) -> Iterator[dict[str, Any]]:
    """A completed job of `fuzz` (all formats) and one of `other` (whose files `fuzz` must never
    reach)."""
    svc = hostile_service
    ids = {}
    for key in ("fuzz", "other"):
        with svc.client(key) as http:
            made = http.post(
                "/jobs",
                json={
                    "preset": "urban-assault",
                    "overrides": {"total_patients": 7, "name": f"traversal-{key}"},
                },
            )
            assert made.status_code == 202, made.text
            ids[key] = made.json()["job_id"]

    def done() -> bool:
        statuses = []
        for key, job_id in ids.items():
            with svc.client(key) as http:
                statuses.append(http.get(f"/jobs/{job_id}").json()["status"])
        return all(s == "completed" for s in statuses)

    wait_for(done, timeout=120)
    with svc.client("fuzz") as http:
        files = http.get(f"/jobs/{ids['fuzz']}/files").json()["items"]
    yield {"mine": ids["fuzz"], "theirs": ids["other"], "files": [f["name"] for f in files]}


TRAVERSALS = [
    "../../patientgen.db",
    "../{theirs}/patients.ndjson",
    "..%2f..%2fpatientgen.db",
    "..%2F{theirs}%2Fpatients.ndjson",
    "%2e%2e/%2e%2e/patientgen.db",
    "%2e%2e%2f%2e%2e%2fpatientgen.db",
    "%252e%252e%252fpatientgen.db",
    "..%5c..%5cpatientgen.db",
    "..\\..\\patientgen.db",
    "....//....//patientgen.db",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "//etc/passwd",
    "%2F%2Fetc%2Fpasswd",
    "patients.ndjson%00",
    "patients.ndjson%00.csv",
    "%00",
    "patients.ndjson/../../../patientgen.db",
    "./patients.ndjson",
    "patients.ndjson/",
    "%c0%ae%c0%ae/patientgen.db",
    "%ef%bc%8e%ef%bc%8e/patientgen.db",
    "manifest.json/..",
    "",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_path_traversal_on_downloads_is_refused(
    hostile_service: Service, finished_jobs: dict[str, Any], name: str
) -> None:
    svc = hostile_service
    target = f"/api/v1/jobs/{finished_jobs['mine']}/files/" + name.format(**finished_jobs)
    status, head, body = raw_request(svc, "GET", target, svc.headers("fuzz"))
    assert status < 500, (status, body[:500])
    assert status in (400, 404, 405, 422), (status, head, body[:500])
    assert b"SQLite format 3" not in body and b"root:" not in body
    assert b"traversal-other" not in body
    assert "application/problem+json" in head.lower() or status == 400, head


@pytest.mark.parametrize(
    "job_part", ["..", "..%2f..", "%2e%2e", "00000000-0000-0000-0000-000000000000%00", "%00"]
)
@pytest.mark.parametrize("suffix", ["", "/files", "/archive", "/patients", "/events"])
def test_traversal_through_the_job_id_is_refused(
    hostile_service: Service, job_part: str, suffix: str
) -> None:
    svc = hostile_service
    status, _, body = raw_request(svc, "GET", f"/api/v1/jobs/{job_part}{suffix}", svc.headers())
    assert status in (400, 404, 405, 422), (status, body[:300])


def test_the_real_files_still_download(
    hostile_service: Service, finished_jobs: dict[str, Any]
) -> None:
    with hostile_service.client("fuzz") as http:
        for name in finished_jobs["files"]:
            got = http.get(f"/jobs/{finished_jobs['mine']}/files/{name}")
            assert got.status_code == 200, (name, got.text[:200])
        # someone else's key sees neither the job nor its files
    with hostile_service.client("other") as http:
        name = finished_jobs["files"][0]
        assert http.get(f"/jobs/{finished_jobs['mine']}/files/{name}").status_code == 404


def _job_count(svc: Service) -> int:
    with svc.client("admin") as http:
        total, cursor = 0, None
        while True:
            page = http.get(
                "/jobs", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            total += len(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                return total


def _padded_submit(size: int) -> bytes:
    body = {"preset": "urban-assault", "overrides": {"total_patients": 3, "name": "x"}}
    raw = json.dumps(body).encode()
    return raw[:-1] + b", " + b'"pad": "' + b"a" * (size - len(raw) - 12) + b'"}'


@pytest.mark.parametrize("path", ["/jobs", "/scenarios/validate"])
def test_oversized_bodies_get_413(hostile_service: Service, path: str) -> None:
    svc = hostile_service
    before = _job_count(svc)
    big = _padded_submit(MAX_BODY + 10)
    with svc.client() as http:
        declared = http.post(path, content=big, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text[:300]
        assert declared.headers["content-type"].startswith("application/problem+json")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        streamed = http.post(path, content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413, streamed.text[:300]
        huge_declared = raw_request(
            svc,
            "POST",
            "/api/v1" + path,
            {**svc.headers(), "Content-Type": "application/json", "Content-Length": "10" * 10},
        )
        assert huge_declared[0] in (400, 413), huge_declared
    # just under the limit is read, parsed and refused for what it says, not for its size
    with svc.client() as http:
        fits = http.post(path, content=_padded_submit(MAX_BODY - 100))
        assert fits.status_code == 422, fits.text[:300]
    assert _job_count(svc) == before
    assert httpx.get(svc.url + "/healthz").status_code == 200


MALFORMED: dict[str, bytes] = {
    "deep array": b'{"preset":"urban-assault","overrides":{"x":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
    "deep object": b'{"preset":"urban-assault","overrides":'
    + b'{"a":' * 20_000
    + b"1"
    + b"}" * 20_000
    + b"}",
    "deep overrides": b'{"preset":"urban-assault","overrides":'
    + b'{"fronts":' * 50
    + b"1"
    + b"}" * 50
    + b"}",
    "huge integer": b'{"scenario":{"total_patients":' + b"9" * 5000 + b"}}",
    "huge float": b'{"scenario":{"total_patients":1e400}}',
    "NaN": b'{"scenario":{"total_patients":NaN}}',
    "Infinity share": b'{"scenario":{"fronts":[{"name":"a","share":Infinity,'
    b'"nationalities":{"USA":1}}]}}',
    "latin-1": b'{"scenario":{"name":"\xe9"}}',
    "lone surrogate": b'{"scenario":{"name":"\\ud800"}}',
    "NUL in a name": b'{"scenario":{"name":"a\\u0000b"}}',
    "NUL in a key": b'{"preset":"urban-assault","overrides":{"na\\u0000me":"x"}}',
    "truncated": b'{"scenario":{"name":',
    "empty": b"",
    "array": b"[]",
    "string": b'"scenario"',
    "null": b"null",
    "trailing garbage": b'{"preset":"urban-assault"} {}',
    "both sources": b'{"preset":"urban-assault","scenario":{}}',
    "null preset": b'{"preset":null}',
    "unknown preset": b'{"preset":"../../etc/passwd"}',
    "formats twice": b'{"preset":"urban-assault","overrides":{"total_patients":2},'
    b'"formats":["csv","csv"]}',
    "format unknown": b'{"preset":"urban-assault","formats":["exe"]}',
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("path", ["/jobs", "/scenarios/validate"])
def test_malformed_bodies_get_a_4xx_problem(hostile_service: Service, name: str, path: str):
    svc = hostile_service
    with svc.client() as http:
        got = http.post(path, content=MALFORMED[name], headers={"Content-Type": "application/json"})
    assert 400 <= got.status_code < 500, (got.status_code, got.text[:300])
    assert got.headers["content-type"].startswith("application/problem+json")
    problem = got.json()
    assert problem["status"] == got.status_code and problem["detail"]


def test_wrong_media_types_and_huge_headers(hostile_service: Service) -> None:
    svc = hostile_service
    with svc.client() as http:
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            got = http.post(
                "/jobs", content=b'{"preset":"urban-assault"}', headers={"Content-Type": ctype}
            )
            assert got.status_code == 415, (ctype, got.text[:200])
    status, _, _ = raw_request(
        svc, "GET", "/api/v1/presets", {**svc.headers(), "X-Big": "a" * 200_000}
    )
    assert status == 431, status
    status, _, _ = raw_request(
        svc, "GET", "/api/v1/presets", {"Authorization": "Bearer " + "k" * 100_000}
    )
    assert status == 431, status
    # a head of 40 MB is cut off early, not held in the server's memory
    before = _rss_kib(svc)
    with socket.create_connection(("127.0.0.1", svc.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 40_000_000:
                sock.sendall(b"a" * 65536)
                sent += 65536
    assert sent < 40_000_000 or _rss_kib(svc) - before < 20_000
    with svc.client() as http:  # ordinary headers of some size still pass
        assert http.get("/presets", headers={"X-Trace": "t" * 10_000}).status_code == 200
    assert not svc.server_errors(), "\n".join(svc.server_errors()[:20])


def _rss_kib(svc: Service) -> int:
    assert svc.proc is not None
    for line in Path(f"/proc/{svc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_thousands_of_invalid_fields_get_a_bounded_answer(hostile_service: Service) -> None:
    """60,000 unknown keys: a 422 that counts them all but lists only the first 200."""
    overrides = {f"k{i}": 1 for i in range(60_000)}
    body = json.dumps({"preset": "urban-assault", "overrides": overrides}).encode()
    assert len(body) < 1024 * 1024  # under the body limit: this is about the answer's size
    with hostile_service.client("fuzz") as http:
        got = http.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert got.status_code == 422, got.text[:300]
    problem = got.json()
    assert len(problem["errors"]) == 200
    assert problem["detail"].startswith("60000 invalid field(s)")
    assert len(got.content) < 100_000
