"""Sending a completed job's casualties to a system from the page (issue 11's delivery, which the
page could show but not start): a FHIR push and an MLLP replay made with the page's form, each
a delivery job in the list that delivers everything; a bad target gets its problem shown at its
field and nothing is created. Real `serve`, real Chromium, the validating FHIR test server and
an MLLP listener on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.mllp_listener import Acks, serve_mllp
from tests.support import free_port
from tests.test_push import fhir_server, server_counts

from .conftest import Service
from .test_delivery_view import finished
from .test_page import open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def _jobs(service: Service) -> set[str]:
    with service.api() as api:
        return {j["job_id"] for j in api.get("/jobs", params={"limit": 200}).json()["items"]}


def _new_delivery(page: Any, before: set[str]) -> str:
    page.wait_for_selector("#push .push-status a")
    href = page.get_attribute("#push .push-status a", "href")
    job_id = href.rsplit("/", 1)[-1]
    assert job_id not in before
    page.wait_for_selector(f'#jobs-list [data-job-id="{job_id}"]', state="attached")
    return job_id


def test_push_and_replay_from_the_page(page: Any, service: Service, screenshots: Path) -> None:
    with service.api() as api:
        body = {"scenario": {"total_patients": 25, "seed": 31, "name": "Drill to send"},
                "formats": ["ndjson"]}  # fmt: skip
        source = finished(service, api.post("/jobs", json=body).json()["job_id"])
    assert source["status"] == "completed"
    open_page(page, service, f"#/jobs/{source['job_id']}")
    page.wait_for_selector("#push form")
    shot(page, screenshots, "send-to-a-system", 390)
    page.set_viewport_size({"width": 1280, "height": 900})

    # A target the API refuses: the problem at its field, no job made.
    before = _jobs(service)
    page.fill('#push [data-name="url"]', "ftp://nowhere")
    page.click("#push button[type=submit]")
    page.wait_for_selector('#push [data-push="url"] .field-error:not([hidden])')
    assert page.get_attribute('#push [data-name="url"]', "aria-invalid") == "true"
    assert "Not sent" in page.inner_text("#push .push-status")
    assert _jobs(service) == before
    page.locator("#push").screenshot(path=str(screenshots / "send-to-a-system-refused.png"))

    # FHIR, all at once: every resource of the job on the server.
    with fhir_server() as url:
        page.fill('#push [data-name="url"]', url)
        page.select_option('#push [data-name="mode"]', "batch")
        page.click("#push button[type=submit]")
        job_id = _new_delivery(page, before)
        delivery = finished(service, job_id)
        counts = server_counts(url)
    assert delivery["status"] == "completed", delivery["error"]
    assert delivery["config"]["delivery"]["mode"] == "batch"
    assert counts.get("Patient") == 25 and delivery["summary"]["rejected"] == 0
    # each casualty's facilities are counted with it; the server holds each once
    assert delivery["summary"]["delivered"] >= sum(counts.values())

    # MLLP, as a replay at a million exercise seconds a second: every message, once.
    acks = Acks()
    port = free_port()
    for _ in serve_mllp(port, acks):
        page.check('#push [data-choice="target"][value="mllp"]')
        page.fill('#push [data-name="host"]', "127.0.0.1")
        page.fill('#push [data-name="port"]', str(port))
        page.check('#push [data-choice="when"][value="replay"]')
        page.fill('#push [data-name="speed"]', "1000000")
        before = _jobs(service)
        page.click("#push button[type=submit]")
        replay = finished(service, _new_delivery(page, before))
    assert replay["status"] == "completed", replay["error"]
    assert replay["config"]["delivery"]["pace"]["speed"] == 1_000_000
    assert len(acks.acked) == len(set(acks.acked)) == replay["summary"]["delivered"] > 25
