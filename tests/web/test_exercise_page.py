"""The exercise package on the web page (issue 11, item 5): the two formats are offered unchecked,
asked for by ticking them, listed and downloadable once the job is completed, and cards for too
many patients are refused with the error next to the formats."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service
from .test_page import open_page, submit, wait_status

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

OTHER_FORMATS = ("json", "ndjson", "csv", "fhir", "fhir-bundle", "hl7")


def test_exercise_formats_on_request(page: Any, service: Service) -> None:
    open_page(page, service)
    for fmt, words in (("mel", "inject list"), ("cards", "Casualty cards")):
        assert not page.is_checked(f"#format-{fmt}"), fmt  # on request only
        assert words in page.inner_text(f'label[for="format-{fmt}"]')
    page.select_option("#preset", "mass-casualty-drill")
    page.fill("#f-patients", "30")
    for fmt in OTHER_FORMATS:
        page.uncheck(f"#format-{fmt}")
    page.check("#format-mel")
    page.check("#format-cards")
    job_id = submit(page)
    wait_status(page, job_id, "completed")
    with service.api() as api:
        job = api.get(f"/jobs/{job_id}").json()
    assert job["config"]["formats"] == ["mel", "cards"]
    page.click(f'#jobs-list [data-job-id="{job_id}"] .job-name')
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"] .file[data-name="cards.pdf"]')
    listed = page.locator("#job-view .file").evaluate_all("r => r.map(x => x.dataset.name)")
    assert {"mel.csv", "cards.pdf"} <= set(listed)
    wanted = next(f for f in job["output_files"] if f["name"] == "cards.pdf")
    with page.expect_download() as info:
        page.locator('#job-view .file[data-name="cards.pdf"] a.download').click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"%PDF-")
    assert hashlib.sha256(data).hexdigest() == wanted["sha256"]


def test_cards_for_too_many_patients_show_an_error(page: Any, service: Service) -> None:
    with service.api() as api:
        before = len(api.get("/jobs", params={"limit": 200}).json()["items"])
    open_page(page, service)
    page.select_option("#preset", "peacekeeping")
    page.fill("#f-patients", "20001")
    page.check("#format-cards")
    page.click("#submit")
    page.wait_for_selector("#formats-error:not([hidden])")
    assert "20,000" in page.inner_text("#formats-error")
    with service.api() as api:
        assert len(api.get("/jobs", params={"limit": 200}).json()["items"]) == before
