"""Slow and stalled clients on downloads: they block nobody else, and they are bounded.

Clients with tiny receive buffers ask for a large output file (and for the ZIP archive) and then
read nothing, or read a few hundred bytes now and then. Meanwhile ordinary requests and a whole
download by another client are answered. A client that takes no bytes for the service's send
timeout (here shortened from 60 s to 3 s) is disconnected before it got the file, and the
service's open files fall back to what they were: nothing is held for ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hostile.conftest import Service, make_service, wait_for
from tests.support import running

SEND_TIMEOUT = 3.0
STALLED = 16
STALLED_ARCHIVES = 4
SLOW_READERS = 2


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = make_service(tmp_path_factory.mktemp("slow-clients"))
    svc.prelude = f"import patientgen.api.app as app; app.SEND_TIMEOUT = {SEND_TIMEOUT}"
    svc.create_key("big")
    with running(svc):
        svc.start()
        yield svc


def _open_files(svc: Service) -> list[str]:
    """What the serve process has open, sockets and job files (not its database files)."""
    assert svc.proc is not None
    fds = Path(f"/proc/{svc.proc.pid}/fd")
    found = []
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):
            target = os.readlink(fds / fd)
            if "/jobs/" in target or target.startswith("socket:"):
                found.append(target)
    return sorted(found)


def _stalled_request(svc: Service, target: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", svc.port))
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {svc.keys['big']}\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def _drain(sock: socket.socket) -> tuple[int, bool]:
    """Read to the end: (bytes received, whether the server closed the connection)."""
    received = 0
    sock.settimeout(5)
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        return received, True
    except TimeoutError:
        return received, False
    return received, True


def test_stalled_and_slow_downloads_block_nobody_and_are_cut_off(slow_service: Service) -> None:
    svc = slow_service
    with svc.client("big") as http:
        made = http.post(
            "/jobs",
            json={
                "preset": "urban-assault",
                "overrides": {"total_patients": 1500},
                "formats": ["fhir", "json"],
            },
        )
        assert made.status_code == 202, made.text
        job_id = made.json()["job_id"]
        wait_for(lambda: http.get(f"/jobs/{job_id}").json()["status"] == "completed", 180)
        files = http.get(f"/jobs/{job_id}/files").json()["items"]
    big = max(files, key=lambda f: f["bytes"])
    assert big["bytes"] > 8_000_000, files  # far more than the socket buffers hold
    target = f"/api/v1/jobs/{job_id}/files/{big['name']}"
    baseline = _open_files(svc)

    stalled = [_stalled_request(svc, target) for _ in range(STALLED)]
    stalled += [
        _stalled_request(svc, f"/api/v1/jobs/{job_id}/archive") for _ in range(STALLED_ARCHIVES)
    ]
    slow = [_stalled_request(svc, target) for _ in range(SLOW_READERS)]
    slow_bytes = [0] * SLOW_READERS
    stop = threading.Event()

    def trickle(i: int) -> None:  # 256 bytes every 0.2 s: about 1 KiB/s
        with contextlib.suppress(OSError):
            while not stop.is_set():
                chunk = slow[i].recv(256)
                if not chunk:
                    return
                slow_bytes[i] += len(chunk)
                time.sleep(0.2)

    readers = [threading.Thread(target=trickle, args=(i,), daemon=True) for i in range(len(slow))]
    for reader in readers:
        reader.start()
    try:
        time.sleep(0.5)
        # Everyone else is served meanwhile, within an ordinary client timeout.
        with httpx.Client(base_url=svc.api, headers=svc.headers("big"), timeout=10) as http:
            for _ in range(20):
                assert http.get(f"/jobs/{job_id}").status_code == 200
                assert http.get("/presets").status_code == 200
            assert httpx.get(svc.url + "/healthz", timeout=10).status_code == 200
            digest = hashlib.sha256()
            with http.stream("GET", target.removeprefix("/api/v1"), timeout=60) as download:
                assert download.status_code == 200
                for block in download.iter_bytes():
                    digest.update(block)
            assert f'"{digest.hexdigest()}"' == download.headers["etag"]
            assert download.num_bytes_downloaded == big["bytes"]
            submitted = http.post(
                "/jobs", json={"preset": "urban-assault", "overrides": {"total_patients": 3}}
            )
            assert submitted.status_code == 202

        # After the send timeout the stalled clients have been let go, before the end of the
        # file; the slow readers too (they cannot take a 64 KiB block within it).
        time.sleep(SEND_TIMEOUT + 3)
        stop.set()
        for reader in readers:
            reader.join(timeout=5)
        for sock in stalled + slow:
            received, closed = _drain(sock)
            assert closed, "the service still holds a stalled download"
            assert received < big["bytes"], received
    finally:
        stop.set()
        for sock in stalled + slow:
            sock.close()

    try:
        wait_for(lambda: len(_open_files(svc)) <= len(baseline) + 2, timeout=20)
    except AssertionError:
        raise AssertionError(f"still open: {_open_files(svc)}; before: {baseline}") from None
    assert not svc.server_errors(), "\n".join(svc.server_errors()[:20])
    assert Path(svc.log).exists()
