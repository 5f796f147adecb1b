"""Slowloris: connections that never finish their request head are closed by the service.

Hundreds of connections each send the start of a head and then nothing. While they are open,
/healthz still answers at once; once the head timeout (shortened here to HEAD_TIMEOUT seconds)
has passed, the service has closed every one of them. A connection that sends nothing at all,
and one left idle after a response, are closed the same way; a request whose head did arrive
(a long event stream) is never cut by the head timer.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.hostile.conftest import Service, make_service
from tests.support import running

HEAD_TIMEOUT = 1.5
PARTIAL_HEADS = 300
PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def head_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = make_service(
        tmp_path_factory.mktemp("slowloris"), workers=0, PATIENTGEN_HEAD_TIMEOUT=str(HEAD_TIMEOUT)
    )
    svc.create_key("loris")
    with running(svc):
        svc.start()
        yield svc


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server ends the connection within `within` seconds (whatever it says first,
    e.g. a 408)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_partial_heads_are_closed_and_block_nobody(head_service: Service) -> None:
    svc = head_service
    sockets: list[socket.socket] = []
    try:
        for _ in range(PARTIAL_HEADS):
            sock = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
            sock.sendall(PARTIAL_HEAD)
            sockets.append(sock)
        opened = time.monotonic()
        # While they are all open, the service answers others at once.
        started = time.monotonic()
        assert httpx.get(svc.health_url, timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        # After the head timeout every one of them has been closed by the service.
        time.sleep(max(0.0, opened + HEAD_TIMEOUT + 1.0 - time.monotonic()))
        still_open = [s for s in sockets if not _closed_by_server(s, 0.05)]
        assert not still_open, f"{len(still_open)} of {PARTIAL_HEADS} partial heads still open"
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(svc.health_url, timeout=5).status_code == 200
    assert not svc.server_errors(), "\n".join(svc.server_errors()[:20])


def test_a_silent_connection_gets_a_408_and_is_closed(head_service: Service) -> None:
    with socket.create_connection(("127.0.0.1", head_service.port), timeout=10) as sock:
        sock.settimeout(HEAD_TIMEOUT + 3)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]


def test_an_idle_keep_alive_connection_is_closed(head_service: Service) -> None:
    with socket.create_connection(("127.0.0.1", head_service.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first[:200]
        assert _closed_by_server(sock, HEAD_TIMEOUT + 2)


def test_a_long_response_is_not_cut_by_the_head_timer(head_service: Service) -> None:
    """An event stream (its head arrived in time) outlives the head timeout many times over."""
    svc = head_service
    with httpx.Client(base_url=svc.api, headers=svc.headers("loris"), timeout=30) as http:
        made = http.post(
            "/jobs", json={"preset": "urban-assault", "overrides": {"total_patients": 3}}
        )
        assert made.status_code == 202, made.text  # no worker: it stays pending
        job_id = made.json()["job_id"]
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(
            f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {svc.keys['loris']}\r\n\r\n".encode()
        )
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # open for three head timeouts: nothing ends it (its keep-alive comment is 15 s away)
        assert not _closed_by_server(sock, HEAD_TIMEOUT * 3)
