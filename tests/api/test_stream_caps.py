"""Per-key caps of open event streams and ZIP downloads, and the anonymous caller's patient cap.

One key may hold PATIENTGEN_MAX_STREAMS_PER_KEY event streams and PATIENTGEN_MAX_ARCHIVES_PER_KEY
ZIP downloads open at once; one more gets 429 `too-many-streams` with Retry-After, while other
keys are not affected. A stream that ends or whose client goes away gives its slot back. Without
a key (where keys are optional) a job may ask for at most PATIENTGEN_ANONYMOUS_MAX_PATIENTS.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import Service, add_keys, api_only_with, make_service
from tests.support import running, wait_until

PROBLEM = "application/problem+json"
STREAMS = 3
ANONYMOUS_MAX = 50
#: About 1 KB of ZIP per patient: 4 MB, far more than the server's socket buffer (16 KiB to start,
#: it grows little towards a 4 KiB receive window) and its 64 KiB write buffer hold, so a client
#: that reads nothing keeps its download open.
ARCHIVE_PATIENTS = 4000


@pytest.fixture(scope="module")
def optional_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Keys optional (--auth off), no worker (jobs stay pending: their streams stay open)."""
    yield from api_only_with(
        tmp_path_factory,
        "stream-caps",
        auth="off",
        max_streams_per_key=str(STREAMS),
        anonymous_max_patients=str(ANONYMOUS_MAX),
    )


def _pending_job(svc: Service, key: str | None) -> str:
    with svc.client(key) as http:
        made = http.post(
            "/jobs", json={"preset": "urban-assault", "overrides": {"total_patients": 3}}
        )
    assert made.status_code == 202, made.text
    return made.json()["job_id"]


def _open(svc: Service, target: str, key: str | None) -> socket.socket:
    """A request sent over a raw socket and left open (not read beyond what arrives)."""
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    auth = f"Authorization: Bearer {svc.keys[key]}\r\n" if key else ""
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
    return sock


def _status(sock: socket.socket) -> int:
    sock.settimeout(10)
    head = sock.recv(64)
    return int(head.split(b" ", 2)[1])


def _refused(svc: Service, target: str, key: str | None) -> httpx.Response:
    with svc.client(key) as http:
        got = http.get(target.removeprefix("/api/v1"))
    assert got.status_code == 429, got.text[:300]
    assert got.headers["content-type"] == PROBLEM
    assert int(got.headers["retry-after"]) > 0
    assert got.json()["type"] == "/api/v1/problems/too-many-streams"
    return got


def test_event_streams_per_key_are_capped_and_given_back(optional_keys: Service) -> None:
    svc = optional_keys
    job_id = _pending_job(svc, "alice")
    target = f"/api/v1/jobs/{job_id}/events"
    held = [_open(svc, target, "alice") for _ in range(STREAMS)]
    try:
        assert [_status(s) for s in held] == [200] * STREAMS
        _refused(svc, target, "alice")
        # another key and the anonymous caller are not affected (admins see every job)
        other = _open(svc, target, "root")
        anonymous_job = _pending_job(svc, None)
        anonymous = _open(svc, f"/api/v1/jobs/{anonymous_job}/events", None)
        assert _status(other) == 200 and _status(anonymous) == 200
        other.close()
        anonymous.close()
        # a client that goes away gives its slot back
        held.pop().close()

        def accepted() -> socket.socket | None:
            sock = _open(svc, target, "alice")
            if _status(sock) == 200:
                return sock
            sock.close()
            return None

        held.append(wait_until(accepted, timeout=10, step=0.2))
        _refused(svc, target, "alice")
    finally:
        for sock in held:
            sock.close()
    # all of them given back: the whole cap is available again
    time.sleep(0.5)
    again = [_open(svc, target, "alice") for _ in range(STREAMS)]
    try:
        assert [_status(s) for s in again] == [200] * STREAMS
    finally:
        for sock in again:
            sock.close()


def test_an_ended_stream_gives_its_slot_back(optional_keys: Service) -> None:
    """Streams of a finished job end on their own; many in a row never hit the cap."""
    svc = optional_keys
    job_id = _pending_job(svc, "bob")
    with svc.client("bob") as http:
        assert http.post(f"/jobs/{job_id}/cancel").status_code == 200
        for _ in range(STREAMS * 3):
            got = http.get(f"/jobs/{job_id}/events")
            assert got.status_code == 200 and "event: end" in got.text


def test_the_anonymous_caller_has_a_patient_cap(optional_keys: Service) -> None:
    svc = optional_keys
    body = {"preset": "urban-assault", "overrides": {"total_patients": ANONYMOUS_MAX + 1}}
    with svc.client(None) as http:
        refused = http.post("/jobs", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == PROBLEM
        problem = refused.json()
        assert problem["type"] == "/api/v1/problems/too-many-patients"
        assert [e["field"] for e in problem["errors"]] == ["body.scenario.total_patients"]
        assert problem["errors"][0]["type"] == "less_than_equal"
        body["overrides"]["total_patients"] = ANONYMOUS_MAX
        assert http.post("/jobs", json=body).status_code == 202
    with svc.client("alice") as http:  # a key has no such cap (only its own, if any)
        body["overrides"]["total_patients"] = ANONYMOUS_MAX + 1
        assert http.post("/jobs", json=body).status_code == 202


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str, int]]:
    """A service with the default archive cap (2) and a completed job whose ZIP is far larger
    than what socket buffers hold, so a client that reads nothing keeps its download open."""
    svc = make_service(tmp_path_factory.mktemp("archive-caps"), None, workers=1)
    with running(svc):
        svc.start()
        add_keys(svc)
        yield svc, *_completed_archive(svc)


def _completed_archive(svc: Service) -> tuple[str, int]:
    with svc.client("alice") as http:
        made = http.post(
            "/jobs",
            json={
                "preset": "urban-assault",
                "overrides": {"total_patients": ARCHIVE_PATIENTS},
                "formats": ["fhir", "json"],
            },
        )
        assert made.status_code == 202, made.text
        job_id = made.json()["job_id"]
        wait_until(lambda: http.get(f"/jobs/{job_id}").json()["status"] == "completed", 180)
        with http.stream("GET", f"/jobs/{job_id}/archive") as whole:
            return job_id, sum(len(b) for b in whole.iter_bytes())


def test_archive_downloads_per_key_are_capped_and_given_back(
    archives: tuple[Service, str, int],
) -> None:
    svc, job_id, size = archives
    assert size > 3_000_000, size
    target = f"/api/v1/jobs/{job_id}/archive"
    held = [_open(svc, target, "alice") for _ in range(2)]
    try:
        assert [_status(s) for s in held] == [200, 200]
        _refused(svc, target, "alice")
        # another key still downloads the whole archive, and the job reads fast meanwhile
        with svc.client("root") as http:
            with http.stream("GET", f"/jobs/{job_id}/archive") as whole:
                assert whole.status_code == 200
                assert sum(len(b) for b in whole.iter_bytes()) == size
            assert http.get(f"/jobs/{job_id}").status_code == 200
        held.pop().close()

        def accepted() -> bool:
            with (
                svc.client("alice") as http,
                http.stream("GET", target.removeprefix("/api/v1")) as got,
            ):
                return got.status_code == 200

        wait_until(accepted, timeout=10, step=0.2)
    finally:
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
