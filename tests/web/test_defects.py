"""The rough edges a new user found on the page (issue 12, defects 1-10), each driven in Debian's
Chromium against the real service: API docs offline, edits kept (confirmation, draft, no submit on
Enter), the job view's order and files, help and definitions, messages in percent and labels, the
narrow layout, the nations box, completed jobs' actions and the job filter, a malformed job id."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service
from .test_page import READY_TIMEOUT_MS, open_page, shot, submit

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

NAME = "Filterable alpha"


def wait_completed(service: Service, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with service.api() as api:
        while True:
            job = api.get(f"/jobs/{job_id}").json()
            if job["status"] == "completed":
                return job
            assert job["status"] in ("pending", "running"), job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def done_job(service: Service) -> Iterator[dict[str, Any]]:
    """One small completed job with NDJSON (so its offsets index exists) and CSV."""
    with service.api() as api:
        body = {"preset": "high-intensity-defence", "formats": ["ndjson", "csv"],
                "overrides": {"total_patients": 400, "name": NAME}}  # fmt: skip
        job = api.post("/jobs", json=body).json()
        other = {"preset": "training-exercise", "formats": ["csv"],
                 "overrides": {"total_patients": 10, "name": "Other beta"}}  # fmt: skip
        api.post("/jobs", json=other).raise_for_status()
    yield wait_completed(service, job["job_id"])


def test_api_docs_render_with_the_network_blocked(browser: Any, service: Service) -> None:
    """Defect 1: every request that is not to the service is refused; the docs still list the
    operations, under their own Content-Security-Policy."""
    context = browser.new_context()
    blocked: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(service.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    try:
        context.route("**/*", only_the_service)
        pg = context.new_page()
        console: list[str] = []
        pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        response = pg.goto(service.url + "api/v1/docs")
        assert response is not None and response.status == 200
        assert "content-security-policy" in response.headers
        pg.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
        paths = pg.locator(".opblock .opblock-summary-path").all_inner_texts()
        assert any(p.replace("\u200b", "") == "/api/v1/jobs" for p in paths), paths
        assert pg.locator(".opblock").count() >= 10
        assert blocked == [], f"the docs asked another host for: {blocked}"
        refused = [line for line in console if "Content Security Policy" in line]
        assert not refused, refused
    finally:
        context.close()


def test_edits_are_kept(page: Any, service: Service) -> None:
    """Defects 2 and 4 (form help): a preset asks before it replaces edits, the form survives a
    reload, Enter in a field sends nothing; intensity, tempo and kinds of fighting are explained."""
    open_page(page, service)
    page.wait_for_function("() => document.querySelector('#preset').value === 'training-exercise'")
    # Help for intensity and tempo follows the chosen value; every kind of fighting is explained.
    before = page.inner_text("#f-intensity-hint")
    assert "die" in before
    page.select_option("#f-intensity", "extreme")
    assert page.inner_text("#f-intensity-hint") not in ("", before)
    assert page.inner_text("#f-tempo-hint")
    page.click("#warfare-help > summary")
    assert page.locator("#warfare-help dd").count() == 8
    assert all(t.strip() for t in page.locator("#warfare-help dd").all_inner_texts())

    page.fill("#f-name", "My edited scenario")
    fronts = page.locator("#fronts-list > li").count() + 1
    page.click("#add-front")
    assert page.locator("#fronts-list > li").count() == fronts
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.select_option("#preset", "urban-assault")
    page.wait_for_timeout(200)
    assert asked, "the preset replaced the edited form without asking"
    assert page.input_value("#f-name") == "My edited scenario"
    assert page.locator("#fronts-list > li").count() == fronts
    assert page.input_value("#preset") == "training-exercise"

    # A reload restores the form as it was edited.
    page.wait_for_timeout(500)  # the draft is written 300 ms after the last keystroke
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=READY_TIMEOUT_MS)
    assert page.input_value("#f-name") == "My edited scenario"
    assert page.locator("#fronts-list > li").count() == fronts
    assert page.input_value("#f-intensity") == "extreme"

    # Enter in a field does not submit.
    with service.api() as api:
        count = len(api.get("/jobs", params={"limit": 200}).json()["items"])
        page.fill("#f-patients", "20")
        page.press("#f-patients", "Enter")
        page.press("#f-name", "Enter")
        page.wait_for_timeout(700)
        assert len(api.get("/jobs", params={"limit": 200}).json()["items"]) == count
    assert "Started" not in page.inner_text("#submit-status")

    # Accepted, the preset replaces the form.
    page.once("dialog", lambda d: d.accept())
    page.select_option("#preset", "urban-assault")
    page.wait_for_function("() => document.querySelector('#f-name').value !== 'My edited scenario'")
    assert page.input_value("#preset") == "urban-assault"
    page.evaluate("localStorage.clear()")


def test_errors_speak_percent_and_labels(page: Any, service: Service) -> None:
    """Defect 5: the API's problems shown in the form's unit (percent) and with its labels."""
    open_page(page, service)
    page.evaluate("localStorage.clear()")
    page.select_option("#preset", "training-exercise")
    disease = float(page.input_value("#f-injury_mix-disease"))
    page.fill("#f-injury_mix-disease", str(disease + 5))  # the mix sums to 105 %
    front = page.locator("#fronts-list > li").first
    share = float(front.locator('[data-front="share"]').input_value())
    front.locator('[data-front="share"]').fill(str(share + 10))  # fronts sum to 110 %
    front.locator('[data-nation="share"]').first.fill("150")  # a nation above 100 %
    page.click(".advanced > summary")
    page.fill("#f-mc-min", "5000")  # more than the largest event
    page.click("#check")
    page.wait_for_selector("#form-errors:not([hidden])")
    errors = page.locator(".field-error:not([hidden])").all_inner_texts()
    shown = [page.inner_text("#form-errors"), *errors]
    text = "\n".join(shown)
    assert "105 %" in page.inner_text("#injury-error"), page.inner_text("#injury-error")
    assert "110 %" in page.inner_text("#fronts-error"), page.inner_text("#fronts-error")
    assert "100 %" in text
    assert "Largest event" in page.inner_text("#form-errors")
    for internal in ("sum to 1", "fronts[]", "injury_mix", "nationalities", "share must"):
        assert internal not in text, (internal, text)
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text), text
    page.evaluate("localStorage.clear()")


def test_nations_box_keeps_its_height(page: Any, service: Service) -> None:
    """Defect 8, in the exact steps of the report: Custom, remove every front, Check, add a
    front, give a second nation the first one's code, Check again."""
    open_page(page, service)
    page.evaluate("localStorage.clear()")
    page.select_option("#preset", "")
    while page.locator("#fronts-list > li").count():
        page.locator('#fronts-list [data-action="remove-front"]').first.click()
    page.click("#check")
    page.wait_for_selector("#form-errors:not([hidden])")
    page.click("#add-front")
    front = page.locator("#fronts-list > li").first
    front.locator('[data-action="add-nation"]').click()
    code = front.locator('[data-nation="code"]').first.input_value()
    front.locator('[data-nation="code"]').nth(1).select_option(code)
    page.click("#check")
    page.wait_for_timeout(300)
    box = front.locator(".nations-box").bounding_box()
    assert box is not None and box["height"] > 100, box
    assert front.locator('[data-nation="code"]').nth(1).is_visible()
    assert "listed twice" in front.locator(".nation-error").nth(1).inner_text()
    assert front.locator(".nation-error").nth(1).bounding_box()["height"] > 5
    page.evaluate("localStorage.clear()")


def test_a_malformed_job_id_is_not_found(page: Any, service: Service) -> None:
    """Defect 10: an id that is no UUID (422 from the API) and an unknown one (404) both say
    "not found", never "try again"."""
    for job_id in ("not-a-job", str(uuid.uuid4())):
        open_page(page, service, f"#/jobs/{job_id}")
        page.wait_for_selector('#job-view[data-status="not-found"]')
        assert page.inner_text("#job-title") == "Job not found"
        assert "try again" not in page.inner_text("#job-view").lower()


def open_job(page: Any, service: Service, job_id: str) -> None:
    open_page(page, service, f"#/jobs/{job_id}")
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"] #charts svg.chart-svg')


def test_job_view_summary_first_compact_files(
    page: Any, service: Service, done_job: dict[str, Any], screenshots: Path
) -> None:
    """Defect 3: the summary and its charts before the files, high on the page; the files in
    short rows, without the offsets index, the full sha256 on hover."""
    open_job(page, service, done_job["job_id"])
    top = "e => e.getBoundingClientRect().top + window.scrollY"
    assert page.eval_on_selector("#summary-h", top) < page.eval_on_selector("#files-h", top)
    assert page.eval_on_selector("#charts figure.chart", top) < 900
    wanted = done_job["output_files"]
    assert {f["format"] for f in wanted} == {"ndjson", "csv", "summary", "manifest"}  # no index
    rows = page.locator("#job-view .file")
    assert rows.evaluate_all("r => r.map(x => x.dataset.name)") == [f["name"] for f in wanted]
    assert "patients.ndjson.idx" not in page.inner_text("#job-view")
    for i, f in enumerate(wanted):
        sha = rows.nth(i).locator("code.sha")
        assert len(sha.inner_text()) <= 24 and f["sha256"] in sha.get_attribute("title")
        assert rows.nth(i).bounding_box()["height"] < 60
    assert f"{len(wanted)} files" in page.inner_text("#job-view .archive")
    for width in (1280, 390):
        shot(page, screenshots, "job-summary-first", width)


def test_summary_defines_cfr_kia_dow(page: Any, service: Service, done_job: dict[str, Any]) -> None:
    """Defect 4: CFR, %KIA and %DOW are defined where they are shown, as the CLI prints them."""
    open_job(page, service, done_job["job_id"])
    defs = page.locator(".stat-def").all_inner_texts()
    assert any("CFR = (KIA + DOW) / (KIA + WIA)" in d for d in defs), defs
    assert any(d.startswith("%KIA = ") for d in defs) and any(d.startswith("%DOW = ") for d in defs)
    assert "RTD returned to duty" in page.inner_text(".stats-legend")


def test_chain_of_care_and_readable_triage_outcomes(
    page: Any, service: Service, done_job: dict[str, Any]
) -> None:
    """Defect 6: a chart of the load per role of care; in "Outcomes by triage" every category
    is as wide as the others (shares of itself), so T1 and T2 are readable beside T3."""
    open_job(page, service, done_job["job_id"])
    roles: dict[str, int] = {}
    for f in done_job["summary"]["facilities"].values():
        roles[f["role"]] = roles.get(f["role"], 0) + f["visits"]
    load = page.locator("#charts figure.chart", has_text="Load per role of care").locator("svg")
    assert load.locator("rect.bar").count() == len(roles) >= 2
    assert int(load.get_attribute("data-total")) == sum(roles.values())
    triage = page.locator("#charts figure.chart", has_text="Outcomes by triage").locator("svg")
    widths: dict[str, float] = {}
    for rect in triage.locator("rect.bar").all():
        y = rect.get_attribute("y")
        widths[y] = widths.get(y, 0.0) + float(rect.get_attribute("width"))
    assert len(widths) >= 3, widths
    assert max(widths.values()) - min(widths.values()) < 3, widths  # each row spans the width
    assert min(widths.values()) > 100


def test_completed_job_actions_and_job_filter(
    page: Any, service: Service, done_job: dict[str, Any]
) -> None:
    """Defect 9: a completed job's first action is a download and delete is not the primary
    one, in its view and in the list; the list filters by name and by status."""
    job_id = done_job["job_id"]
    open_job(page, service, job_id)
    for where in ("#job-view .job-progress-panel", f'#jobs-list [data-job-id="{job_id}"]'):
        if where.startswith("#jobs-list"):
            page.click("#job-view a.back")
            page.wait_for_selector(where)
        actions = page.locator(f"{where} .job-actions > *")
        first = actions.first
        assert first.get_attribute("data-action") == "download"
        assert "btn-primary" in first.get_attribute("class")
        assert first.get_attribute("href").endswith(f"/jobs/{job_id}/archive")
        delete = page.locator(f'{where} .job-actions [data-action="delete"]')
        assert "btn-primary" not in delete.get_attribute("class")
        assert actions.nth(actions.count() - 1).get_attribute("data-action") == "delete"
    page.wait_for_selector('#jobs-list [data-status="completed"]:has-text("Other beta")')
    visible = "rows => rows.filter(r => !r.hidden).map(r => r.dataset.jobId)"
    page.fill("#jobs-search", "alpha")
    assert page.eval_on_selector_all("#jobs-list [data-job-id]", visible) == [job_id]
    assert "1 of" in page.inner_text("#jobs-filtered")
    page.fill("#jobs-search", "")
    page.select_option("#jobs-status", "completed")
    statuses = page.eval_on_selector_all(
        "#jobs-list [data-job-id]", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.status)"
    )
    assert len(statuses) >= 2 and set(statuses) == {"completed"}
    page.select_option("#jobs-status", "failed")
    assert page.eval_on_selector_all("#jobs-list [data-job-id]", visible) == []


def test_narrow_screen_reaches_the_jobs(page: Any, service: Service, screenshots: Path) -> None:
    """Defect 7: at 390 px the jobs are one tap away at the top, and Generate shows the new
    job."""
    page.set_viewport_size({"width": 390, "height": 800})
    open_page(page, service)
    page.evaluate("localStorage.clear()")
    switch = page.locator("#show-jobs")
    assert switch.is_visible() and switch.bounding_box()["y"] < 800
    switch.click()
    top = page.eval_on_selector("#jobs-title", "e => e.getBoundingClientRect().top + scrollY")
    assert top < 800, top
    assert page.locator("#jobs-list").is_visible()
    shot(page, screenshots, "jobs-narrow", 390)
    page.set_viewport_size({"width": 390, "height": 800})
    page.click("#show-form")
    page.select_option("#preset", "training-exercise")
    page.fill("#f-patients", "30")
    for fmt in ("json", "ndjson", "fhir"):
        page.uncheck(f"#format-{fmt}")
    job_id = submit(page)
    row = page.locator(f'#jobs-list [data-job-id="{job_id}"]')
    row.wait_for(state="visible")
    page.wait_for_timeout(300)
    box = row.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 200) <= 800, box
    page.evaluate("localStorage.clear()")
