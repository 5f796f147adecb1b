"""Pushing a completed job's casualties into a real FHIR server (issue 11, item 2).

The server is Medplum's FHIR request engine over its in-memory repository, validating every write
against the R4 StructureDefinitions (tests/fhir-validator/server.mjs), started on loopback by the
tests. What the server holds is compared with the job's own FHIR files: every resource there, once.
Deliveries run as jobs in a real SQLite store, in this process or as the real CLI in a subprocess
(killed with SIGKILL mid-way and run again).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from patientgen.formats import fhir
from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.settings import Settings
from tests.fhir_validator import FOLDER, _node
from tests.support import CLI, delivery_settings, free_port, service_env, wait_until

pytestmark = pytest.mark.timeout(300)


@contextmanager
def fhir_server(*options: str, host: str = "127.0.0.1") -> Iterator[str]:
    """The test FHIR server on a free loopback port (of `host`); yields its base URL (https
    when `options` give it --cert and --key)."""
    port = free_port()
    # its own process group: the environment's `node` may be a launcher that starts the real one
    proc = subprocess.Popen(
        [_node(), str(FOLDER / "server.mjs"), "--port", str(port), "--host", host, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening"), (line, proc.stderr.read() if proc.stderr else "")
        scheme = "https" if "--cert" in options else "http"
        yield f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/fhir/R4"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def server_counts(url: str, verify: Any = True) -> dict[str, int]:
    return httpx.get(url.removesuffix("/fhir/R4") + "/_test/counts", verify=verify).json()


def server_stats(url: str) -> dict[str, int]:
    return httpx.get(url.removesuffix("/fhir/R4") + "/_test/stats").json()


def settings_for(folder: Path, **values: Any) -> Settings:
    return delivery_settings(folder, **values)


def file_counts(service: JobService, job: Any) -> dict[str, int]:
    """Resources per type in the job's own FHIR NDJSON files."""
    out = service.output_dir(job)
    return {
        rtype: sum(1 for line in (out / name).read_bytes().split(b"\n") if line)
        for rtype, name in fhir.FILES.items()
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, int]]]:
    """A completed 120-patient job with its FHIR files: (data folder, job id, resources/type)."""
    folder = tmp_path_factory.mktemp("push-source")
    with JobService.open(settings_for(folder)) as service:
        job, _ = service.submit({"total_patients": 120, "seed": 11}, ["fhir"])
        job, _ = service.run_here(job.job_id, threading.Event())
        assert job.status == JobStatus.COMPLETED
        yield folder, str(job.job_id), file_counts(service, job)


def push_here(folder: Path, job_id: str, target: dict[str, Any], **values: Any) -> Any:
    """Push in this process; returns the delivery job as it ended."""
    with JobService.open(settings_for(folder, **values)) as service:
        delivery, _ = service.push(job_id, target)
        ended, _ = service.run_here(delivery.job_id, threading.Event())
        return ended


def test_the_test_server_outlives_a_client_killed_mid_request() -> None:
    """A push killed mid-request (test_killed_mid_way_...) leaves the test FHIR server a request
    whose body never ends: the server must go on answering (it exited on the unhandled
    'aborted' error, and the kill test then failed with "connection refused")."""
    import socket
    import struct

    with fhir_server() as url:
        server = httpx.URL(url)
        sock = socket.create_connection((server.host, server.port))
        head = (
            "POST /fhir/R4 HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
            "Content-Length: 100000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"resourceType": "Bundle", "entry": [' + b" " * 1000)
        time.sleep(0.3)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, as from a process killed mid-request
        time.sleep(0.5)
        assert server_counts(url)["Patient"] == 0


def test_every_resource_once_and_again_none_twice(source) -> None:
    folder, job_id, expected = source
    with fhir_server() as url:
        first = push_here(folder, job_id, {"target": "fhir", "url": url, "bundle_size": 80})
        assert first.status == JobStatus.COMPLETED, first.error
        assert server_counts(url) == expected
        report = first.summary
        own = sum(expected.values()) - expected["Organization"] - expected["Location"]
        assert own < report["delivered"]  # each casualty's own, and its facilities
        assert server_stats(url)["writes"] == sum(expected.values())  # each facility once
        assert report["rejected"] == 0 and report["rejections"] == []
        assert report["rate"] > 0 and report["unit"] == "resources"
        # the same casualties again: updated in place, nothing new on the server
        again = push_here(folder, job_id, {"target": "fhir", "url": url, "mode": "batch"})
        assert again.status == JobStatus.COMPLETED, again.error
        assert server_counts(url) == expected


def test_a_server_on_an_ipv6_address_loads(source) -> None:
    """A base URL with an IPv6 literal (http://[::1]:port/...): refused by the URL check before."""
    folder, job_id, expected = source
    with fhir_server(host="::1") as url:
        assert url.startswith("http://[::1]:")
        done = push_here(folder, job_id, {"target": "fhir", "url": url})
        assert done.status == JobStatus.COMPLETED, done.error
        assert server_counts(url) == expected


def test_a_busy_server_and_its_size_limit_are_honoured(source) -> None:
    """Every 15th request answered 429 with Retry-After: 1 (several in the push), each waited
    out, and bundles split to the server's 60 entries."""
    folder, job_id, expected = source
    with fhir_server("--busy-every", "15", "--max-entries", "60") as url:
        started = time.monotonic()
        ended = push_here(folder, job_id, {"target": "fhir", "url": url, "bundle_size": 100})
        elapsed = time.monotonic() - started
        assert ended.status == JobStatus.COMPLETED, ended.error
        assert server_counts(url) == expected
        busy = server_stats(url)["busy"]
        assert busy >= 2
        assert ended.summary["retries"] >= busy  # each 429 tried again...
        assert elapsed >= busy * 1.0  # ...after its Retry-After: 1


def test_refused_resources_are_each_reported_and_the_rest_loads(source) -> None:
    folder, job_id, expected = source
    for mode in ("transaction", "batch"):
        with fhir_server("--refuse-type", "Procedure") as url:
            target = {"target": "fhir", "url": url, "mode": mode, "bundle_size": 60}
            ended = push_here(folder, job_id, target)
            assert ended.status == JobStatus.COMPLETED, ended.error
            held = server_counts(url)
            assert held == {**expected, "Procedure": 0}, mode
            report = ended.summary
            assert report["rejected"] == expected["Procedure"], mode
            listed = report["rejections"]
            assert len(listed) == min(expected["Procedure"], 200)
            assert all(r["ref"].startswith("Procedure/") for r in listed)
            assert all(r["status"] == "400" for r in listed), listed[:2]  # the server's code
            assert all("refused here" in str(r["outcome"]) for r in listed)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--token", "sesame"), "refused the credentials (401)"),
        (("--always-500",), "answered 500 3 times in a row"),
    ],
)
def test_a_bad_server_fails_the_delivery_clearly(source, options, said) -> None:
    folder, job_id, expected = source
    with fhir_server(*options) as url:
        ended = push_here(folder, job_id, {"target": "fhir", "url": url})
        assert ended.status == JobStatus.FAILED
        assert said in (ended.error or ""), ended.error
        assert url in ended.error
    with JobService.open(settings_for(folder)) as service:  # the source is untouched
        job = service.get(job_id)
        assert job.status == JobStatus.COMPLETED and file_counts(service, job) == expected


def test_the_right_credentials_load(source) -> None:
    folder, job_id, expected = source
    with fhir_server("--token", "sesame") as url:
        target = {"target": "fhir", "url": url, "authorization": "Bearer sesame"}
        ended = push_here(folder, job_id, target)
        assert ended.status == JobStatus.COMPLETED, ended.error
        assert server_counts(url) == expected
        kept = ended.config["delivery"]["authorization"]  # kept to resume, sealed
        assert kept.startswith("sealed:v1:") and "sesame" not in kept


def test_a_refused_connection_fails_clearly(source) -> None:
    folder, job_id, _ = source
    url = f"http://127.0.0.1:{free_port()}/fhir/R4"
    ended = push_here(folder, job_id, {"target": "fhir", "url": url})
    assert ended.status == JobStatus.FAILED
    assert f"no answer from the FHIR server at {url}/ after 2 retries" in (ended.error or "")


def test_killed_mid_way_and_run_again_loads_each_resource_once(tmp_path: Path) -> None:
    """The real CLI, killed with SIGKILL mid-way through 1,000 casualties, then the same command
    again: every resource of the job's files on the server once, and the second run went on from
    the saved cursor (the server saw at most a bundle more writes than there are resources)."""
    folder = tmp_path / "data"
    folder.mkdir()
    with JobService.open(settings_for(folder)) as service:
        job, _ = service.submit({"total_patients": 1000, "seed": 5}, ["fhir"])
        job, _ = service.run_here(job.job_id, threading.Event())
        expected = file_counts(service, job)
    env = service_env(
        folder,
        f"sqlite:///{folder / 'patientgen.db'}",
        PATIENTGEN_LEASE_SECONDS="2",
        PATIENTGEN_POLL_INTERVAL="0.1",
    )
    with fhir_server() as url:
        argv = [*CLI, "push", str(job.job_id), "--fhir", url, "--bundle-size", "200"]
        # a pause after each bundle: the kill lands mid-way (the rest takes seconds even without)
        slow = {**env, "PATIENTGEN_CHUNK_DELAY": "0.05"}
        proc = subprocess.Popen(argv, env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: server_counts(url)["Patient"] >= 250, timeout=120)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        held = server_counts(url)
        assert 250 <= held["Patient"] < 1000, held
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        assert "rejected" in done.stdout and "resources/s" in done.stdout
        assert server_counts(url) == expected
        writes = server_stats(url)["writes"]
    facilities = expected["Organization"] + expected["Location"]
    with JobService.open(settings_for(folder)) as service:
        (delivery,) = [j for j in service.list().items if "delivery" in j.config]
    assert delivery.status == JobStatus.COMPLETED and delivery.attempts == 2
    # every resource written once; after the kill at most the bundle in flight again (200) and
    # each facility once more (the second run sends each with its first casualty)
    total = sum(expected.values())
    assert total <= writes <= total + 200 + facilities, (writes, total)
