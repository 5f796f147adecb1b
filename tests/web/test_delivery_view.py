"""A delivery job on the page (Chromium, the real service): its name says what went where, its
report (counts, rate, every rejection with what the server said) stands where a job's charts do,
and nothing on the page breaks on a job that has no files or charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import finished as api_finished
from tests.test_push import fhir_server

from .conftest import Service
from .test_page import open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def finished(service: Service, job_id: str) -> dict[str, Any]:
    """The job once it has ended (tests/api/conftest.py `finished`, through the page's API)."""
    with service.api() as api:
        return api_finished(api, job_id)


def test_a_delivery_shows_its_report(page: Any, service: Service, screenshots: Path) -> None:
    with service.api() as api:
        body = {"scenario": {"total_patients": 30, "seed": 8, "name": "Drill for push"},
                "formats": ["csv"]}  # fmt: skip
        source = finished(service, api.post("/jobs", json=body).json()["job_id"])
        assert source["status"] == "completed"
        with fhir_server("--refuse-type", "Procedure") as url:
            made = api.post(f"/jobs/{source['job_id']}/push", json={"target": "fhir", "url": url})
            assert made.status_code == 202, made.text
            delivery = finished(service, made.json()["job_id"])
    assert delivery["status"] == "completed", delivery["error"]
    rejected = delivery["summary"]["rejected"]
    assert rejected > 0

    open_page(page, service, f"#/jobs/{delivery['job_id']}")
    page.wait_for_selector(".delivery-report")
    assert page.inner_text("#job-title") == f"Push of Drill for push to FHIR {url}"
    facts = page.inner_text(".delivery-report .facts")
    assert f"Rejected\n{rejected}" in facts and "resources/s" in facts
    rows = page.locator(".delivery-report table.rejections tbody tr")
    assert rows.count() == min(rejected, 200)
    assert "Procedure is refused here" in rows.first.inner_text()
    shot(page, screenshots, "delivery-report", 1280)
    shot(page, screenshots, "delivery-report", 390)
    # the jobs list names it too
    open_page(page, service)
    assert page.locator("#jobs-list").get_by_text("Push of Drill for push").count() >= 1
