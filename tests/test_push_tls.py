"""Pushes over TLS: MLLP over TLS (`tls: true`, `--tls`, `mllps://`) and https FHIR servers,
trusting the system's CAs and the CAs of PATIENTGEN_DELIVERY_CA_FILE (a test lab's own CA).

Before, MLLP could not use TLS at all, and an https FHIR server with a lab's own CA could not be
trusted. A certificate that does not verify fails the delivery at once (never retried: it will
not verify on the next try either) with a sentence naming the setting, and nothing is sent.
A test CA (trustme) issues the listeners' certificates for 127.0.0.1.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from tests.mllp_listener import Acks, serve_mllp
from tests.support import CLI, delivery_settings, free_port, service_env
from tests.test_push import fhir_server, server_counts

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, Path, Path]]:
    """The lab's CA, its certificate as a PEM file, and a folder with a completed job."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca_file = folder / "lab-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with JobService.open(delivery_settings(folder)) as service:
        job, _ = service.submit({"total_patients": 15, "seed": 9}, ["ndjson"])
        job, _ = service.run_here(job.job_id, threading.Event())
        assert job.status == JobStatus.COMPLETED
    (folder / "source").write_text(str(job.job_id))
    yield ca, ca_file, folder


def _push(folder: Path, target: dict, **settings: object):
    with JobService.open(delivery_settings(folder, **settings)) as service:
        delivery, _ = service.push((folder / "source").read_text(), target)
        ended, _ = service.run_here(delivery.job_id, threading.Event())
    return ended


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_mllp_over_tls_with_the_labs_ca(lab) -> None:
    ca, ca_file, folder = lab
    acks, port = Acks(), free_port()
    for _ in serve_mllp(port, acks, tls=_server_context(ca)):
        target = {"target": "mllp", "host": "127.0.0.1", "port": port, "tls": True}
        ended = _push(folder, target, delivery_ca_file=ca_file)
    assert ended.status == JobStatus.COMPLETED, ended.error
    assert len(acks.acked) == len(set(acks.acked)) == ended.summary["delivered"] > 15


def test_mllp_over_tls_without_trust_fails_at_once(lab) -> None:
    ca, _, folder = lab
    acks, port = Acks(), free_port()
    for _ in serve_mllp(port, acks, tls=_server_context(ca)):
        target = {"target": "mllp", "host": "127.0.0.1", "port": port, "tls": True}
        ended = _push(folder, target)
    assert ended.status == JobStatus.FAILED
    assert "TargetUntrusted" in (ended.error or "") and "PATIENTGEN_DELIVERY_CA_FILE" in ended.error
    assert acks.acked == []


def test_an_https_fhir_server_with_the_labs_ca(lab, tmp_path: Path) -> None:
    ca, ca_file, folder = lab
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    with fhir_server("--cert", str(cert), "--key", str(key)) as url:
        assert url.startswith("https://")
        refused = _push(folder, {"target": "fhir", "url": url})
        assert refused.status == JobStatus.FAILED and "TargetUntrusted" in (refused.error or "")
        ended = _push(
            folder, {"target": "fhir", "url": url, "mode": "batch"}, delivery_ca_file=ca_file
        )
        assert ended.status == JobStatus.COMPLETED, ended.error
        assert (
            server_counts(url, verify=ssl.create_default_context(cafile=str(ca_file)))["Patient"]
            == 15
        )


def test_the_cli_pushes_and_replays_over_tls(lab) -> None:
    ca, ca_file, folder = lab
    env = service_env(
        folder,
        f"sqlite:///{folder / 'patientgen.db'}",
        PATIENTGEN_DELIVERY_CA_FILE=str(ca_file),
        PATIENTGEN_DELIVERY_RETRIES="1",
    )
    source = (folder / "source").read_text()
    for argv in (
        ["push", source, "--mllp", "127.0.0.1:{port}", "--tls"],
        ["replay", source, "--to", "mllps://127.0.0.1:{port}", "--speed", "1000000"],
    ):
        acks, port = Acks(), free_port()
        for _ in serve_mllp(port, acks, tls=_server_context(ca)):
            args = [a.format(port=port) for a in argv]
            done = subprocess.run(
                [*CLI, *args], env=env, capture_output=True, text=True, timeout=120
            )
        assert done.returncode == 0, done.stderr
        assert len(acks.acked) == len(set(acks.acked)) > 15, argv


def test_plain_mllp_is_stored_and_keyed_as_before_tls() -> None:
    """Without TLS, the target dumps without `tls`: the delivery job's stored config and the
    CLI's idempotency key (a hash of model_dump_json) are those made before TLS existed, so a
    `patientgen push` interrupted before the upgrade goes on with the same delivery after it."""
    from patientgen.delivery import DELIVERY

    plain = DELIVERY.validate_python({"target": "mllp", "host": "h", "port": 2575})
    assert plain.model_dump_json() == '{"target":"mllp","host":"h","port":2575,"pace":null}'
    tls = DELIVERY.validate_python({"target": "mllp", "host": "h", "port": 2575, "tls": True})
    assert tls.model_dump(mode="json", exclude_none=True)["tls"] is True
