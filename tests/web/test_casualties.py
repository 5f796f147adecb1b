"""The casualty browser of the job view (issue 12, item 1), in Debian's Chromium against the real
service: filter, sort, page, open a casualty card with the keyboard, find one by id; screenshots
of the browser and of a card at 1280 and 390 px. Expected figures come from the job's NDJSON,
downloaded and parsed here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import Service
from .test_defects import wait_completed
from .test_page import open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

STATUS = "#casualty-status[data-total]"
ROW_INDEXES = "#casualties tbody tr[data-index]"


@pytest.fixture(scope="module")
def job(service: Service) -> Iterator[dict[str, Any]]:
    """A completed 1,500-patient job in three chunks, with its records parsed from the NDJSON."""
    with service.api() as api:
        body = {"preset": "high-intensity-defence", "formats": ["ndjson"],
                "overrides": {"total_patients": 1500, "seed": 5, "name": "Browser"}}  # fmt: skip
        submitted = api.post("/jobs", json=body).json()
        done = wait_completed(service, submitted["job_id"])
        lines = api.get(f"/jobs/{done['job_id']}/files/patients.ndjson").content.splitlines()
    yield {**done, "records": [orjson.loads(line) for line in lines]}


def open_browser(page: Any, service: Service, job_id: str) -> None:
    open_page(page, service, f"#/jobs/{job_id}")
    page.wait_for_selector(STATUS)


def total(page: Any) -> int:
    return int(page.get_attribute(STATUS, "data-total"))


def wait_total(page: Any, expected: int) -> None:
    page.wait_for_function(
        "n => document.querySelector('#casualty-status')?.dataset.total === String(n)"
        " && !document.querySelector('#casualties[aria-busy]')",
        arg=expected,
    )


def shown_indexes(page: Any) -> list[int]:
    return [
        int(i) for i in page.eval_on_selector_all(ROW_INDEXES, "rs => rs.map(r => r.dataset.index)")
    ]


def test_filter_sort_and_page(
    page: Any, service: Service, job: dict[str, Any], screenshots: Path
) -> None:
    records = job["records"]
    open_browser(page, service, job["job_id"])
    assert total(page) == len(records) == 1500
    assert shown_indexes(page) == list(range(50))  # the first page only, in file order
    assert "1–50 of 1,500 casualties" in page.inner_text("#casualty-status")

    # the browser sits under the summary: one button near the top takes keyboard users there
    page.click("button.to-casualties")
    assert page.evaluate("document.activeElement.id") == "casualties-h"

    t1 = [r for r in records if r["triage"] == "T1"]
    assert f"({len(t1):,})" in page.inner_text('#cf-triage option[value="T1"]')  # facet counts
    page.select_option("#cf-triage", "T1")
    wait_total(page, len(t1))
    assert shown_indexes(page) == [r["index"] for r in t1[:50]]
    triage_cells = page.eval_on_selector_all(
        '#casualties tbody td[data-col="Triage"]', "cs => cs.map(c => c.textContent)"
    )
    assert set(triage_cells) == {"T1"}

    front = records[0]["front"]
    both = [r for r in t1 if r["front"] == front]
    page.select_option("#cf-front", front)
    wait_total(page, len(both))

    # sort by injury time, then descending, with the keyboard on the column header
    page.focus('button[data-sort="injured_at"]')
    page.keyboard.press("Enter")
    page.wait_for_selector('th[aria-sort="ascending"] button[data-sort="injured_at"]')
    wait_total(page, len(both))
    ordered = sorted(both, key=lambda r: (r["injured_at"], r["index"]))
    assert shown_indexes(page) == [r["index"] for r in ordered[:50]]
    assert page.evaluate("document.activeElement.dataset.sort") == "injured_at"
    page.keyboard.press("Enter")
    page.wait_for_selector('th[aria-sort="descending"] button[data-sort="injured_at"]')
    page.wait_for_function("() => !document.querySelector('#casualties[aria-busy]')")
    assert shown_indexes(page) == [r["index"] for r in ordered[::-1][:50]]

    # clear the filters and page forward
    page.click("#casualties >> text=Clear filters")
    wait_total(page, 1500)
    page.click('[data-role="next"]')
    page.wait_for_function(
        "() => document.querySelector('#casualty-status').textContent.startsWith('51–100')"
    )
    by_time_desc = sorted(records, key=lambda r: (r["injured_at"], r["index"]))[::-1]
    assert shown_indexes(page) == [r["index"] for r in by_time_desc[50:100]]
    page.click("#casualties >> text=Clear filters")
    wait_total(page, 1500)

    # on a phone: who, triage, outcome and where stay in the table; every sort is in a menu
    page.set_viewport_size({"width": 390, "height": 900})
    page.select_option("#casualty-sort", "-outcome_at")
    page.wait_for_selector(
        'th[aria-sort="descending"] button[data-sort="outcome_at"]', state="attached"
    )
    page.wait_for_function("() => !document.querySelector('#casualties[aria-busy]')")
    by_outcome = sorted(records, key=lambda r: (r["outcome_at"], r["index"]))[::-1]
    assert shown_indexes(page) == [r["index"] for r in by_outcome[:50]]
    visible = page.eval_on_selector_all(
        "#casualties thead th", "ths => ths.filter(t => t.offsetParent).map(t => t.dataset.col)"
    )
    assert visible == ["#", "Name", "Triage", "Outcome", "Last facility"]
    page.select_option("#casualty-sort", "index")
    page.wait_for_selector('th[aria-sort="ascending"] button[data-sort="index"]', state="attached")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#casualties").scroll_into_view_if_needed()
        shot(page, screenshots, "casualty-browser", width)
        page.locator("#casualties").screenshot(
            path=str(screenshots / f"casualty-table-{width}.png")
        )


def test_card_opens_from_a_row_with_the_keyboard(
    page: Any, service: Service, job: dict[str, Any], screenshots: Path
) -> None:
    records = job["records"]
    # someone who reached facilities, had vitals taken and procedures done
    r = next(
        x for x in records if len(x["visits"]) >= 3 and any(v["procedures"] for v in x["visits"])
    )
    open_browser(page, service, job["job_id"])
    page.fill("#casualty-find", r["id"])
    page.keyboard.press("Enter")
    card = page.locator("dialog.casualty-card")
    card.wait_for(state="visible")
    assert card.locator("#card-title").inner_text() == f"{r['family_name']}, {r['given_name']}"
    assert page.evaluate("document.activeElement.id") == "card-title"
    assert card.locator(".visit").count() == len(r["visits"])
    assert card.locator(".timeline li").count() == len(r["timeline"])
    vitals = sum(1 for v in r["visits"] if v["vitals"])
    assert card.locator("table.vitals tbody tr").count() == vitals
    for condition in r["conditions"]:
        assert condition["display"] in card.locator(".injuries").inner_text()
    text = card.inner_text()
    for label in ("Transit", "Wait for care", "Stay", r["visits"][0]["facility_id"]):
        assert label in text
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(200)
        page.screenshot(path=str(screenshots / f"casualty-card-{width}.png"))
        box = card.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (
            f"the card overflows at {width} px"
        )
    page.keyboard.press("Escape")
    card.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.id") == "casualty-find"  # focus goes back

    # from a row: Tab to the first name button, Enter opens its card, Close returns there
    page.set_viewport_size({"width": 1280, "height": 900})
    first = page.locator("#casualties tbody tr[data-index='0'] button.open-card")
    first.focus()
    page.keyboard.press("Enter")
    card.wait_for(state="visible")
    zero = records[0]
    assert (
        card.locator("#card-title").inner_text() == f"{zero['family_name']}, {zero['given_name']}"
    )
    assert f"Casualty #0 · {zero['id']}" in card.inner_text()
    card.locator('[data-role="close-card"]').click()
    card.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('open-card')")


def test_unknown_id_is_said_plainly(page: Any, service: Service, job: dict[str, Any]) -> None:
    open_browser(page, service, job["job_id"])
    for wrong in ("0b5f3c2e-8d1a-4c7e-9f60-2a4b6c8d0e1f", "not an id"):
        page.fill("#casualty-find", wrong)
        page.keyboard.press("Enter")
        page.wait_for_selector("#casualty-find-error:not([hidden])")
        assert wrong in page.inner_text("#casualty-find-error")
        assert page.get_attribute("#casualty-find", "aria-invalid") == "true"
    assert page.locator("dialog.casualty-card").is_hidden()


def test_a_job_without_ndjson_says_so(page: Any, service: Service) -> None:
    with service.api() as api:
        body = {"scenario": {"total_patients": 20, "seed": 1}, "formats": ["csv"]}
        done = wait_completed(service, api.post("/jobs", json=body).json()["job_id"])
    open_page(page, service, f"#/jobs/{done['job_id']}")
    page.wait_for_selector("#casualties-h")
    assert "needs the NDJSON format" in page.inner_text("#job-view")
    assert page.locator("#casualties table").count() == 0
