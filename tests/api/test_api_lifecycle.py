"""Service lifecycle: graceful SIGTERM, the keys commands, and 503 while PostgreSQL is down."""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest

from tests.api.conftest import Service, add_keys, make_service, wait_running
from tests.support import group_alive

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_sigterm_hands_the_job_back(tmp_path) -> None:
    """SIGTERM to `serve` alone: its workers stop, release the job (pending, no lease), exit.
    An event stream open on the running job is ended as the shutdown begins (its last chunk
    sent), instead of holding the shutdown until uvicorn's graceful timeout cuts it off."""
    service = make_service(
        tmp_path,
        None,
        workers=1,
        extra_env={"PATIENTGEN_CHUNK_SIZE": "200", "PATIENTGEN_CHUNK_DELAY": "0.2"},
    )
    service.start()
    try:
        add_keys(service)
        with service.client("alice") as client:
            job_id = client.post(
                "/jobs", json={"scenario": {"seed": 1, "total_patients": 4000}, "formats": ["csv"]}
            ).json()["job_id"]
            wait_running(client, job_id)
        stream = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        stream.sendall(
            f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {service.keys['alice']}\r\n\r\n".encode()
        )
        assert stream.recv(64).startswith(b"HTTP/1.1 200 ")
        assert service.proc is not None
        pgid = service.proc.pid
        service.proc.send_signal(signal.SIGTERM)
        with stream:
            ended = _read_to_end(stream)
        assert ended.endswith(b"0\r\n\r\n"), ended[-200:]  # chunked answer's end, not cut
        assert service.proc.wait(timeout=30) == 0
        assert "graceful shutdown exceeded" not in service.log.read_text()
        deadline = time.monotonic() + 15
        while group_alive(pgid):  # the embedded workers are gone too
            assert time.monotonic() < deadline, "worker processes outlived serve"
            time.sleep(0.05)
        service.proc = None

        from patientgen.jobs.service import JobService
        from patientgen.settings import Settings

        settings = Settings(data_dir=service.data_dir, database_url=service.database_url)
        with JobService.open(settings) as jobs:
            job = jobs.get(job_id)
        assert job.status == "pending" and job.lease_owner is None, job
    finally:
        service.stop()


def test_keys_commands(api_only: Service) -> None:
    created = api_only.cli("keys", "create", "ci-bot", "--max-patients", "50")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("pgk_") and " " not in secret
    listed = api_only.cli("keys", "list")
    assert listed.returncode == 0 and "ci-bot" in listed.stdout and secret not in listed.stdout
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "ci-bot" in line)
    headers = {"X-API-Key": secret}
    assert httpx.get(api_only.api + "/jobs", headers=headers).status_code == 200
    too_big = httpx.post(
        api_only.api + "/jobs", headers=headers, json={"scenario": {"total_patients": 51}}
    )
    assert too_big.status_code == 422 and too_big.json()["type"].endswith("/too-many-patients")
    revoked = api_only.cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 10  # a checked key is trusted for 2 s
    while httpx.get(api_only.api + "/jobs", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works"
        time.sleep(0.2)
    unknown = api_only.cli("keys", "revoke", "key_nope")
    assert unknown.returncode != 0 and len(unknown.stderr.strip().splitlines()) == 1
    # found by probing: an empty name ended in a traceback, and a name of two lines was kept
    # (and broke the table of `keys list`)
    before = api_only.cli("keys", "list").stdout
    for bad in ("", "  ", "two\nlines", "tab\there", "k" * 101):
        refused = api_only.cli("keys", "create", bad)
        assert refused.returncode == 2, (bad, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1, (bad, refused.stderr)
        assert "key name" in refused.stderr and "Traceback" not in refused.stderr
    assert api_only.cli("keys", "list").stdout == before


@pytest.mark.postgres
@pytest.mark.faults
def test_503_while_postgres_is_down(pg_cluster_factory, tmp_path) -> None:
    cluster = pg_cluster_factory()
    import psycopg

    with psycopg.connect(f"{cluster.url}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE api_outage")
    service = make_service(
        tmp_path,
        f"{cluster.url}/api_outage",
        workers=0,
        extra_env={"PATIENTGEN_DB_TIMEOUT": "2"},
    )
    service.start()
    try:
        add_keys(service)
        with service.client("alice") as client:
            job_id = client.post("/jobs", json={"preset": "peacekeeping"}).json()["job_id"]
            cluster.stop("immediate")
            try:
                for method, path in (
                    ("GET", f"/jobs/{job_id}"),
                    ("GET", "/jobs"),
                    ("POST", "/jobs"),
                    ("GET", "/readyz"),
                ):
                    began = time.monotonic()
                    kwargs = {"json": {"preset": "peacekeeping"}} if method == "POST" else {}
                    response = client.request(method, path, **kwargs)
                    assert time.monotonic() - began < 15, "no hang"
                    # a key cannot be checked while the store is down: 503 as well
                    assert response.status_code == 503, (path, response.text)
                    assert response.headers["content-type"] == PROBLEM
                    assert response.json()["type"].endswith("/service-unavailable")
                    assert "retry-after" in response.headers
                assert httpx.get(service.url + "/healthz").status_code == 200
            finally:
                cluster.start()
            deadline = time.monotonic() + 30
            while client.get(f"/jobs/{job_id}").status_code != 200:
                assert time.monotonic() < deadline, "the API did not reconnect"
                time.sleep(0.2)
    finally:
        service.stop()
