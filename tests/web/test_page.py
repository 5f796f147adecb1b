"""The web page, in Debian's Chromium, against the real service: presets, live progress, job view
with charts, downloads checked against the API, field errors of a 422, cancel, API keys, layout."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Predicates of wait_for_function are written as functions: Playwright evaluates a bare
# expression with eval() in the page, which the page's Content-Security-Policy forbids.

#: Big enough to take a few seconds with small chunks, so the bar is seen moving.
PROGRESS_PATIENTS = 6_000
#: Big enough to still be running when the test cancels it (and within the 1,000,000 patients
#: a job without a key may ask for).
CANCEL_PATIENTS = 1_000_000

WIDTHS = (1280, 390)
BIG_SEED = 2**63 - 1
ROWS = "#jobs-list [data-job-id]"
IDS = "rows => rows.map(r => r.dataset.jobId)"

#: Buttons and status badges whose text broke over lines (one line is < 44 px high).
BROKEN_BUTTONS = """
() => [...document.querySelectorAll('button, .badge, .btn')]
  .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height > 44)
  .map(e => e.textContent.trim())
"""

RECORD_PROGRESS = """
() => {
  window.__progress = {};
  const note = (bar) => {
    const row = bar.closest('[data-job-id]');
    if (!row) return;
    (window.__progress[row.dataset.jobId] ||= []).push(Number(bar.getAttribute('aria-valuenow')));
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === 'attributes') note(m.target);
      for (const n of m.addedNodes || []) {
        if (n.querySelectorAll) n.querySelectorAll('[role=progressbar]').forEach(note);
      }
    }
  }).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'],
  });
}
"""


#: The page is ready once its presets, jobs and saved scenarios came from the service. Under a
#: full suite's load on 2 cores that took over the 20 s default twice in fresh-clone runs
#: (test_replay, stop 22; test_casualties, stop 28) while it takes 1-3 s alone; on 2026-12-07,
#: on a VM running Python 2.2 times slower than usual, it took over 60 s in two of three
#: fresh-clone runs (test_replay, then test_replay and test_casualties; the web tests alone
#: passed in 141 s). A wait, not a measure: the page's speed is bench/browser.py's.
READY_TIMEOUT_MS = 180_000


def open_page(page: Any, service: Service, path: str = "") -> None:
    page.goto(service.url + path)
    page.wait_for_selector("body[data-ready=true]", timeout=READY_TIMEOUT_MS)


def shot(page: Any, folder: Path, name: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.evaluate("window.scrollTo(0, 0)")  # the sticky jobs panel sits at the top
    page.wait_for_timeout(300)  # charts redraw at the new width
    page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
    broken = page.evaluate(BROKEN_BUTTONS)
    assert broken == [], f"{name} at {width} px: buttons or badges wrapped: {broken}"


def submit(page: Any) -> str:
    """Presses Generate and returns the new job's id (the newest row of the list)."""
    before = set(page.eval_on_selector_all(ROWS, IDS))
    page.click("#submit")
    page.wait_for_function(
        "n => [...document.querySelectorAll('#jobs-list [data-job-id]')]"
        ".some(r => !n.includes(r.dataset.jobId))",
        arg=list(before),
    )
    ids = page.eval_on_selector_all(ROWS, IDS)
    new = [i for i in ids if i not in before]
    assert len(new) == 1
    assert ids[0] == new[0], "the new job is not at the top of the list"
    return new[0]


def wait_status(page: Any, job_id: str, status: str, timeout: float = 60_000) -> None:
    page.wait_for_selector(
        f'#jobs-list [data-job-id="{job_id}"][data-status="{status}"], '
        f'#job-view[data-job-id="{job_id}"][data-status="{status}"]',
        timeout=timeout,
        state="attached",
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_preset_submit_watch_open_download(page: Any, service: Service, screenshots: Path) -> None:
    open_page(page, service)
    # The form, filled by a preset, at both widths.
    page.select_option("#preset", "mass-casualty-drill")
    assert page.input_value("#f-name") == "Mass-casualty drill"
    assert page.input_value("#f-patients") == "1000"
    assert page.input_value("#f-seed") == "5005"
    assert page.input_value("#f-warfare-artillery") == "50"
    assert page.locator("#fronts-list > li").count() == 1
    assert "100 %" in page.inner_text("#warfare-sum")
    for width in WIDTHS:
        shot(page, screenshots, "form", width)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.fill("#f-patients", str(PROGRESS_PATIENTS))
    page.fill("#f-seed", str(BIG_SEED))  # beyond 2**53: must not be rounded on the way
    page.evaluate(RECORD_PROGRESS)
    job_id = submit(page)
    wait_status(page, job_id, "completed")
    seen = page.evaluate(f"window.__progress['{job_id}']")
    moving = sorted({v for v in seen if 0 < v < 100})
    assert moving, f"the progress bar never showed an intermediate value: {seen}"
    assert seen[-1] == 100
    row = page.locator(f'#jobs-list [data-job-id="{job_id}"]')
    assert row.locator('[role="progressbar"]').get_attribute("aria-valuenow") == "100"
    assert "completed" in row.locator(".badge").inner_text().lower()

    with service.api() as api:
        job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "completed"
    assert job["config"]["scenario"]["total_patients"] == PROGRESS_PATIENTS
    assert job["config"]["scenario"]["seed"] == BIG_SEED

    # The list comes from the API: it survives a reload.
    page.reload()
    page.wait_for_selector(f'#jobs-list [data-job-id="{job_id}"][data-status="completed"]')

    # The job view: timings, files, charts.
    page.click(f'#jobs-list [data-job-id="{job_id}"] .job-name')
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"] #charts svg.chart-svg')
    assert page.locator("#job-title").inner_text() == "Mass-casualty drill"
    assert str(BIG_SEED) in page.locator("#job-view .kv").nth(1).inner_text()
    charts = page.locator("#charts figure.chart")
    titles = charts.locator("figcaption").all_inner_texts()
    for wanted in ("Casualties per day", "Casualties by nation", "Casualties by front",
                   "Outcomes by triage category", "Time from injury to outcome"):  # fmt: skip
        assert wanted in titles, titles
    assert any("triage" in t.lower() for t in titles), titles
    for i in range(charts.count()):
        svg = charts.nth(i).locator("svg.chart-svg")
        assert svg.locator("rect.bar").count() > 0, titles[i]
        assert int(svg.get_attribute("data-total")) > 0, titles[i]
    per_day = page.locator("#charts figure.chart", has_text="Casualties per day").locator("svg")
    assert int(per_day.get_attribute("data-total")) == sum(job["summary"]["casualties_per_day"])
    assert int(per_day.get_attribute("data-points")) == len(job["summary"]["casualties_per_day"])
    nations = page.locator("#charts figure.chart", has_text="Casualties by nation").locator("svg")
    assert int(nations.get_attribute("data-total")) == PROGRESS_PATIENTS
    for width in WIDTHS:
        shot(page, screenshots, "job-completed", width)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Every output file but the ndjson offsets index is listed with its size; one download is
    # checked byte for byte.
    listed = page.locator("#job-view .file").evaluate_all("r => r.map(x => x.dataset.name)")
    assert listed == [f["name"] for f in job["output_files"] if f["format"] != "index"]
    wanted = next(f for f in job["output_files"] if f["name"].endswith(".csv"))
    with page.expect_download() as info:
        page.locator(f'#job-view .file[data-name="{wanted["name"]}"] a.download').click()
    path = Path(info.value.path())
    assert path.stat().st_size == wanted["bytes"]
    assert sha256(path) == wanted["sha256"]

    # The ZIP archive holds every file with the same bytes.
    with page.expect_download() as info:
        page.locator("#job-view .archive a.download").click()
    with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as archive:
        names = set(archive.namelist())
        for f in job["output_files"]:
            matches = [n for n in names if n == f["name"] or n.endswith("/" + f["name"])]
            assert matches, (f["name"], names)
            assert hashlib.sha256(archive.read(matches[0])).hexdigest() == f["sha256"]


def test_invalid_scenario_shows_errors_next_to_fields(
    page: Any, service: Service, screenshots: Path
) -> None:
    with service.api() as api:
        jobs_before = len(api.get("/jobs", params={"limit": 200}).json()["items"])
    open_page(page, service)
    page.select_option("#preset", "training-exercise")
    page.fill("#f-patients", "0")
    page.fill("#f-days", "400")
    page.fill("#f-warfare-conventional", "80")  # sum 110 %
    front = page.locator("#fronts-list > li").first
    front.locator('[data-nation="share"]').first.fill("50")  # nations sum 110 %
    page.click(".advanced > summary")
    page.fill("#f-mc-min", "50")  # more than the largest event (12)
    page.click(".advanced > summary")  # folded again: the error must open it
    # Sums are checked live, before anything is sent.
    assert "110 %" in page.inner_text("#warfare-sum")
    assert "bad" in page.get_attribute("#warfare-sum", "class")
    assert "bad" in front.locator('[data-role="nations-sum"]').get_attribute("class")

    page.click("#submit")
    page.wait_for_selector("#form-errors:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "form-errors"

    def error_of(container: Any) -> str:
        err = container.locator(".field-error:not([hidden])").first
        assert err.is_visible()
        return err.inner_text()

    patients = page.locator('.field[data-loc="total_patients"]')
    assert "greater than or equal to 1" in error_of(patients)
    assert page.get_attribute("#f-patients", "aria-invalid") == "true"
    described = page.get_attribute("#f-patients", "aria-describedby").split()
    assert patients.locator(".field-error").first.get_attribute("id") in described
    assert "365" in error_of(page.locator('.field[data-loc="duration_days"]'))
    assert "must add up to 100 %, now 110 %" in page.inner_text("#warfare-error")
    assert page.is_visible("#warfare-error")
    nations_box = front.locator('[data-loc="fronts.0.nationalities"]')
    nations_error = nations_box.locator('[data-role="nations-error"]').inner_text()
    assert "must add up to 100 %, now 110 %" in nations_error
    assert page.get_attribute(".advanced", "open") is not None
    assert "exceeds Largest event (12)" in page.inner_text("#mass_casualty-error")
    assert page.is_visible("#mass_casualty-error")
    # Fields that are fine carry no error.
    assert not page.locator('.field[data-loc="name"] .field-error:not([hidden])').count()
    assert page.is_hidden("#injury-error")
    summary = page.inner_text("#form-errors")
    assert "Patients" in summary and "Kind of fighting" in summary

    with service.api() as api:
        assert len(api.get("/jobs", params={"limit": 200}).json()["items"]) == jobs_before
    for width in WIDTHS:
        shot(page, screenshots, "form-errors", width)
    page.set_viewport_size({"width": 1280, "height": 900})

    # A corrected form clears the errors and submits.
    page.fill("#f-patients", "50")
    page.fill("#f-days", "3")
    page.fill("#f-warfare-conventional", "70")
    front.locator('[data-nation="share"]').first.fill("40")
    page.fill("#f-mc-min", "4")
    page.click("#check")
    page.wait_for_function(
        "() => document.querySelector('#submit-status').textContent.includes('valid')"
    )
    assert page.is_hidden("#form-errors")
    assert page.get_attribute("#f-patients", "aria-invalid") is None


def test_cancel_a_running_job(page: Any, service: Service, screenshots: Path) -> None:
    open_page(page, service)
    page.select_option("#preset", "sustained-operation")
    page.fill("#f-patients", str(CANCEL_PATIENTS))
    for fmt in ("json", "csv", "fhir"):
        page.uncheck(f"#format-{fmt}")
    page.evaluate(RECORD_PROGRESS)
    job_id = submit(page)
    row = page.locator(f'#jobs-list [data-job-id="{job_id}"]')
    page.wait_for_function(
        "id => (window.__progress[id] || []).some(v => v > 0)", arg=job_id, timeout=60_000
    )
    assert row.get_attribute("data-status") == "running"
    assert page.is_visible(f'#jobs-list [data-job-id="{job_id}"] [data-action="cancel"]')
    shot(page, screenshots, "jobs-running", 1280)
    # The running job's own view, at both widths.
    row.locator(".job-name").click()
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"][data-status="running"]')
    for width in WIDTHS:
        shot(page, screenshots, "job-running", width)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert "Files appear when the job is completed" in page.inner_text("#job-view")

    page.click('#job-view [data-action="cancel"]')
    wait_status(page, job_id, "cancelled", timeout=60_000)
    with service.api() as api:
        job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    assert job["progress"] < 100
    # A cancelled job offers retry and delete, no cancel.
    assert page.is_visible('#job-view [data-action="retry"]')
    assert page.is_visible('#job-view [data-action="delete"]')
    assert not page.locator('#job-view [data-action="cancel"]').count()

    # Retry puts it back in the queue; cancel it again before it gets far.
    page.click('#job-view [data-action="retry"]')
    page.wait_for_selector(
        f'#job-view[data-job-id="{job_id}"]:is([data-status="pending"], [data-status="running"])'
    )
    page.click('#job-view [data-action="cancel"]')
    wait_status(page, job_id, "cancelled", timeout=60_000)
    with service.api() as api:
        assert api.get(f"/jobs/{job_id}").json()["status"] == "cancelled"

    page.once("dialog", lambda d: d.accept())
    page.click('#job-view [data-action="delete"]')
    page.wait_for_selector("#home-view:not([hidden])")
    page.wait_for_selector(f'#jobs-list [data-job-id="{job_id}"]', state="detached")
    with service.api() as api:
        assert api.get(f"/jobs/{job_id}").status_code == 404


def test_api_key_required(page: Any, keyed_service: Service, screenshots: Path) -> None:
    svc = keyed_service
    open_page(page, svc)
    # Without a key the page asks for one.
    page.wait_for_selector("#key-form:not([hidden])")
    assert "API key" in page.inner_text("#notice")
    for width in WIDTHS:
        shot(page, screenshots, "api-key-needed", width)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.evaluate("sessionStorage.length") == 0
    page.fill("#api-key", svc.key or "")
    page.click('#key-form button[type="submit"]')
    page.wait_for_function("() => document.querySelectorAll('#preset option').length > 1")
    page.wait_for_function("() => document.querySelector('#preset').value === 'training-exercise'")
    assert page.evaluate("sessionStorage.getItem('patientgen.apiKey')") == svc.key
    assert page.evaluate("localStorage.length") == 0

    page.select_option("#preset", "training-exercise")
    page.fill("#f-patients", "200")
    page.uncheck("#format-fhir")
    job_id = submit(page)
    wait_status(page, job_id, "completed")
    page.click(f'#jobs-list [data-job-id="{job_id}"] .job-name')
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"] #charts svg.chart-svg')
    with svc.api() as api:
        job = api.get(f"/jobs/{job_id}").json()
    wanted = next(f for f in job["output_files"] if f["name"] == "patients.ndjson")
    with page.expect_download() as info:
        page.locator('#job-view .file[data-name="patients.ndjson"] a.download').click()
    assert sha256(Path(info.value.path())) == wanted["sha256"]

    # A reload keeps the key for this tab only; the job and the list are still there.
    page.reload()
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"][data-status="completed"]')
    page.click("#job-view a.back")
    page.wait_for_selector(f'#jobs-list [data-job-id="{job_id}"][data-status="completed"]')
    assert page.is_hidden("#notice")

    # ...and a restart of the service: the list comes from the job store.
    svc.stop()
    svc.start()
    page.reload()
    page.wait_for_selector(f'#jobs-list [data-job-id="{job_id}"][data-status="completed"]')

    # Another browser (no key in its session) following a link to the job is asked for the key,
    # then sees the job.
    context = page.context.browser.new_context()
    try:
        other = context.new_page()
        other.goto(f"{svc.url}#/jobs/{job_id}")
        other.wait_for_selector("#key-form:not([hidden])")
        other.wait_for_function(
            "() => document.querySelector('#job-loading')?.textContent.includes('API key')"
        )
        assert other.locator("#jobs-list [data-job-id]").count() == 0
        other.fill("#api-key", svc.key or "")
        other.press("#api-key", "Enter")
        other.wait_for_selector(f'#job-view[data-job-id="{job_id}"][data-status="completed"]')
        other.wait_for_selector("#charts svg.chart-svg")
    finally:
        context.close()


def test_keyboard_labels_and_narrow_layout(page: Any, service: Service) -> None:
    open_page(page, service)
    page.select_option("#preset", "high-intensity-defence")
    # Every control has an accessible name.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button, textarea')]
            .filter(e => e.offsetParent !== null || e.closest('details'))
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !(e.textContent || '').trim())
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    # Keyboard only: add a front and a nation, then remove the front again.
    fronts = page.locator("#fronts-list > li")
    assert fronts.count() == 3
    page.focus("#add-front")
    page.keyboard.press("Enter")
    assert fronts.count() == 4
    assert page.evaluate("document.activeElement.dataset.front") == "name"
    page.keyboard.type("West")
    assert fronts.nth(3).locator(".front-legend").inner_text() == "Front 4: West"
    assert "bad" not in page.get_attribute("#fronts-sum", "class")  # the new front has share 0
    page.keyboard.press("Tab")
    page.keyboard.type("10")
    assert "110 %" in page.inner_text("#fronts-sum")
    assert "bad" in page.get_attribute("#fronts-sum", "class")
    fronts.nth(3).locator('[data-action="add-nation"]').focus()
    page.keyboard.press("Enter")
    assert fronts.nth(3).locator(".nation").count() == 2
    fronts.nth(3).locator('[data-action="remove-front"]').focus()
    page.keyboard.press("Space")
    assert fronts.count() == 3
    assert "100 %" in page.inner_text("#fronts-sum")
    # Duplicate nations in one front are caught before sending (a JSON object cannot hold both).
    first = fronts.first
    first.locator('[data-nation="code"]').nth(1).select_option("EST")
    page.click("#submit")
    assert "listed twice" in first.locator(".nation-error").nth(1).inner_text()
    page.wait_for_timeout(200)
    # Nothing is wider than a phone.
    page.set_viewport_size({"width": 390, "height": 800})
    page.wait_for_timeout(100)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('label, legend, p, a, button, span, dt, dd, h1, h2')]
            .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > 391)
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert clipped == []
    # The footer's link to the API documentation works.
    docs = page.get_attribute(".site-footer a", "href")
    with service.api() as api:
        assert api.get(service.url + docs).status_code == 200
