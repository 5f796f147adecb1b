"""POST /jobs/{id}/push through the real service (SQLite and PostgreSQL, one embedded worker) to
the tests' real FHIR server: the delivery runs as a job, its report is its summary, secrets are
never shown, bad requests are 422 listing every problem, and keys push only where allowed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import STORES, Service, finished, per_store
from tests.test_push import fhir_server, server_counts
from tests.test_push_mllp import MESSAGE_TYPES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PROBLEM = "application/problem+json"
PUSH_ENV = {
    "PATIENTGEN_PUSH_HOSTS": "127.0.0.1",
    "PATIENTGEN_DELIVERY_RETRIES": "1",
    "PATIENTGEN_DELIVERY_BACKOFF": "0.05",
}


@pytest.fixture(scope="module", params=STORES)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    # keys that are not an admin's may push to loopback here (PATIENTGEN_PUSH_HOSTS)
    yield from per_store(request, tmp_path_factory, "push", workers=1, extra_env=PUSH_ENV)


@pytest.fixture(scope="module")
def completed(svc: Service) -> Iterator[dict[str, Any]]:
    with svc.client("alice") as alice:
        body = {"scenario": {"total_patients": 40, "seed": 4}, "formats": ["fhir"]}
        job = alice.post("/jobs", json=body).json()
        yield finished(alice, job["job_id"])


def test_push_runs_as_a_job_and_reports(svc: Service, completed: dict[str, Any]) -> None:
    assert completed["status"] == "completed"
    with fhir_server("--token", "sesame") as url, svc.client("alice") as alice:
        body = {"target": "fhir", "url": url, "bundle_size": 50, "authorization": "Bearer sesame"}
        made = alice.post(
            f"/jobs/{completed['job_id']}/push", json=body, headers={"Idempotency-Key": "p-1"}
        )
        assert made.status_code == 202, made.text
        delivery = made.json()
        assert made.headers["location"].endswith(delivery["job_id"])
        assert delivery["config"]["delivery"]["authorization"] == "(hidden)"
        assert delivery["config"]["delivery"]["source_job"] == completed["job_id"]
        again = alice.post(
            f"/jobs/{completed['job_id']}/push", json=body, headers={"Idempotency-Key": "p-1"}
        )
        assert again.status_code == 200 and again.json()["job_id"] == delivery["job_id"]
        done = finished(alice, delivery["job_id"])
        assert done["status"] == "completed", done["error"]
        report = done["summary"]
        assert report["rejected"] == 0 and report["delivered"] > 0 and report["rate"] > 0
        assert report["target"]["url"] == url and "authorization" not in report["target"]
        assert server_counts(url)["Patient"] == 40
        assert done["output_files"] == []
        listed = alice.get("/jobs", params={"limit": 200}).json()["items"]
        assert all(
            j["config"].get("delivery", {}).get("authorization") in (None, "(hidden)")
            for j in listed
        )


def test_the_client_pushes_over_tls(svc: Service, completed: dict[str, Any]) -> None:
    """Client.push(mllp=..., tls=True) reaches the worker: a listener whose certificate the
    service does not trust (a test CA it was not given) fails the delivery as untrusted, and
    nothing arrives."""
    import trustme

    from patientgen.client import Client
    from tests.mllp_listener import Acks, serve_mllp
    from tests.support import free_port
    from tests.test_push_tls import _server_context

    acks, port = Acks(), free_port()
    for _ in serve_mllp(port, acks, tls=_server_context(trustme.CA())):
        with Client(svc.url, api_key=svc.keys["alice"]) as client:
            made = client.push(completed["job_id"], mllp=("127.0.0.1", port), tls=True)
        with svc.client("alice") as alice:
            done = finished(alice, str(made.job_id))
    assert done["config"]["delivery"]["tls"] is True
    assert done["status"] == "failed" and "not trusted" in done["error"]
    assert acks.acked == []


def test_bad_pushes(svc: Service, completed: dict[str, Any]) -> None:
    job_url = f"/jobs/{completed['job_id']}/push"
    with svc.client("alice") as alice:
        bad = alice.post(
            job_url,
            json={"target": "fhir", "url": "ftp://x", "mode": "bulk", "bundle_size": 0},
        )
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
        fields = {e["field"] for e in bad.json()["errors"]}
        assert {"body.fhir.url", "body.fhir.mode", "body.fhir.bundle_size"} <= fields, fields
        port = alice.post(job_url, json={"target": "mllp", "host": "127.0.0.1", "port": 0})
        assert port.status_code == 422
        other = alice.post(job_url, json={"target": "sftp", "host": "x"})
        assert other.status_code == 422
        missing = alice.post(
            "/jobs/00000000-0000-4000-8000-000000000000/push",
            json={"target": "mllp", "host": "127.0.0.1", "port": 2575},
        )
        assert missing.status_code == 404
        # a key that is not an admin's pushes only to the hosts allowed
        far = alice.post(job_url, json={"target": "mllp", "host": "10.9.8.7", "port": 2575})
        assert far.status_code == 403 and "PATIENTGEN_PUSH_HOSTS" in far.json()["detail"]
        made = alice.post(job_url, json={"target": "mllp", "host": "127.0.0.1", "port": 9})
        assert made.status_code == 202
        delivery = made.json()["job_id"]
        # a delivery has no casualties of its own to push
        nested = alice.post(
            f"/jobs/{delivery}/push", json={"target": "mllp", "host": "127.0.0.1", "port": 9}
        )
        assert nested.status_code == 409 and nested.headers["content-type"] == PROBLEM
        assert finished(alice, delivery)["status"] == "failed"
    with svc.client("bob") as bob:  # another key's job is not there for bob
        hidden = bob.post(job_url, json={"target": "mllp", "host": "127.0.0.1", "port": 2575})
        assert hidden.status_code == 404
    with svc.client("root") as root:  # an admin pushes anywhere
        anywhere = root.post(job_url, json={"target": "mllp", "host": "10.9.8.7", "port": 9})
        assert anywhere.status_code == 202
        root.post(f"/jobs/{anywhere.json()['job_id']}/cancel")


def test_a_replay_through_the_api(svc: Service, completed: dict[str, Any]) -> None:
    """pace: the items of the job in exercise-time order, at the speed asked; a job above the
    replay limit is a 422 naming the field, and nothing is queued."""
    from hl7apy.mllp import MLLPServer

    from patientgen.jobs.timeline import Timeline
    from patientgen.scenario import Scenario
    from tests.test_push_mllp import Listener, _handler  # hl7apy's MLLP server, checking nothing

    heard = Listener(port=0, check=False)
    server = MLLPServer("127.0.0.1", 0, {kind: (_handler(heard),) for kind in MESSAGE_TYPES})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    timeline = Timeline(Scenario.model_validate(completed["config"]["scenario"]), "hl7")
    order = [item.ref for _, _, item in timeline.items(0)]
    speed = min(((timeline.keys[-1] >> 40) - timeline.start()) / 2.0, 1_000_000)  # a few s
    try:
        with svc.client("alice") as alice:
            body = {"target": "mllp", "host": "127.0.0.1", "port": port, "pace": {"speed": speed}}
            made = alice.post(f"/jobs/{completed['job_id']}/push", json=body)
            assert made.status_code == 202, made.text
            done = finished(alice, made.json()["job_id"])
            assert done["status"] == "completed", done["error"]
            assert heard.received == order
            assert done["config"]["delivery"]["pace"] == {"speed": speed, "start": "now"}
            big = alice.post(
                "/jobs",
                json={"scenario": {"total_patients": 20_001, "seed": 2}, "formats": ["csv"]},
            ).json()
            assert finished(alice, big["job_id"], timeout=180)["status"] == "completed"
            refused = alice.post(f"/jobs/{big['job_id']}/push", json=body)
            assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
            assert refused.json()["errors"][0]["field"] == "body.mllp.pace"
            assert "at most 20,000 casualties" in refused.json()["detail"]
    finally:
        server.shutdown()
        server.server_close()
