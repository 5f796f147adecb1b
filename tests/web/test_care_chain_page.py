"""The chain of care on the web page (issue 10's medical plan, from the page).

Before, the form had no way to ask for a medical plan (only a scenario imported as JSON could
carry one), the job view showed nothing of the care-chain summary (waits, deaths with a delay
cause, facility load, lifts), and the page counted neither the DIED outcome among the deaths nor
named it. Real `serve`, real Chromium; every figure shown is compared with the job's summary.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson

from tests.care_chain_support import drill
from tests.web.conftest import Service
from tests.web.test_page import WIDTHS, open_page, shot, submit, wait_status

PATIENTS = 400


def _job(service: Service, job_id: str) -> dict[str, Any]:
    with service.api() as api:
        return api.get(f"/jobs/{job_id}").json()


def _summary(service: Service, job_id: str) -> dict[str, Any]:
    """summary.json, with the per-hour series the job document leaves out."""
    with service.api() as api:
        return api.get(f"/jobs/{job_id}/summary").json()


def _open_job(page: Any, job_id: str) -> None:
    page.click(f'#jobs-list [data-job-id="{job_id}"] .job-name')
    page.wait_for_selector(f'#job-view[data-job-id="{job_id}"] #charts svg.chart-svg')


def test_a_sized_plan_from_the_form_and_its_chain_of_care(
    page: Any, service: Service, screenshots: Path
) -> None:
    open_page(page, service)
    page.select_option("#preset", "mass-casualty-drill")
    assert page.input_value("#f-capacity") == "unlimited"
    assert "nobody waits" in page.inner_text("#f-capacity-hint")
    page.fill("#f-patients", str(PATIENTS))
    page.select_option("#f-capacity", "sized")
    assert "waiting can kill" in page.inner_text("#f-capacity-hint")
    job_id = submit(page)
    wait_status(page, job_id, "completed", timeout=120_000)
    job = _job(service, job_id)
    plan = job["config"]["scenario"]["capacity"]
    assert isinstance(plan, dict) and plan["fronts"], "the job did not run with a medical plan"
    chain = job["summary"]["care_chain"]

    assert "hourly" not in chain["simulation"]
    hourly = _summary(service, job_id)["care_chain"]["simulation"]["hourly"]
    page.reload()  # the job as the list has it, then its per-hour series from summary.json
    page.wait_for_selector(f'#jobs-list [data-job-id="{job_id}"]')
    _open_job(page, job_id)
    page.locator("#charts figure.chart", has_text="hour by hour").wait_for()
    page.wait_for_selector('#charts table[data-role="units"][data-series="loaded"]')
    # the replay's facility load reads the same series
    page.locator("#replay-load polyline").first.wait_for()
    assert page.locator("#replay-load-none").count() == 0
    view = page.locator("#job-view")
    assert "Medical plan:" in view.locator(".kv").first.inner_text() or "Medical plan:" in (
        view.inner_text()
    )
    section = page.locator("#charts")
    section.locator("#care-chain-h").wait_for()
    stats = section.locator(".chain-stats").inner_text()
    assert f"{chain['deaths_with_delay']} of {chain['deaths']}" in stats
    waits = section.locator('table[data-role="waits"] tbody tr')
    assert waits.count() == len(chain["wait_percentiles_minutes"]) == 4
    # each triage's lift requests, and those a vehicle of the unit's own took (1.30.0)
    lifts = section.locator('table[data-role="precedence"] tbody tr')
    precedence = chain["simulation"]["lift_precedence_met"]
    assert lifts.count() == len(precedence) == 4
    for k, met in enumerate(precedence.values()):
        cells = lifts.nth(k).locator("th, td").all_inner_texts()
        assert cells[1] == f"{met['requests']:,}" and cells[3] == str(
            met["by_vehicle_of_opportunity"]
        ), cells
    units = section.locator('table[data-role="units"] tbody tr')
    assert units.count() == len(hourly)
    first = sorted(hourly)[0]
    cells = units.first.locator("th, td").all_inner_texts()
    assert cells[0] == first
    assert cells[1] == str(max(hourly[first]["occupancy"]))
    busiest = max(hourly, key=lambda u: chain["simulation"]["operating_table_hours"][u])
    row = units.nth(sorted(hourly).index(busiest)).locator("th, td").all_inner_texts()
    assert float(row[3]) == chain["simulation"]["operating_table_hours"][busiest] > 0
    assert float(row[4]) == chain["simulation"]["icu_bed_days"][busiest]
    titles = section.locator("figure.chart figcaption").all_inner_texts()
    assert "Casualties waiting at the facilities, hour by hour" in titles
    assert "Lifts per day" in titles
    waiting = section.locator("figure.chart", has_text="hour by hour").locator("svg")
    hours = len(next(iter(hourly.values()))["queue"])
    assert int(waiting.get_attribute("data-points")) == hours
    assert int(waiting.get_attribute("data-total")) == sum(sum(h["queue"]) for h in hourly.values())
    # Every death counted, DIED included, and named.
    by_outcome = job["summary"]["by_outcome"]
    deaths = sum(by_outcome.get(o, 0) for o in ("KIA", "DOW", "DIED"))
    assert page.locator(".stats .stat", has_text="Deaths").first.locator("dd").inner_text() == (
        str(deaths)
    )
    if by_outcome.get("DIED"):
        assert "Died of disease or non-battle injury" in section.inner_text()
    for width in WIDTHS:
        shot(page, screenshots, "job-care-chain", width)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Copied as a new scenario, the form keeps the plan as it ran.
    page.locator('#job-view [data-action="reuse"]').first.click()
    assert page.input_value("#f-capacity") == "custom"
    assert "copied scenario" in page.inner_text("#f-capacity-hint")
    again = submit(page)
    assert _job(service, again)["config"]["scenario"]["capacity"] == plan

    # A renamed front no longer matches the plan: the problem is shown at the plan's field.
    page.locator('[data-front="name"]').first.fill("Renamed")
    page.click("#submit")
    page.wait_for_selector("#capacity-error:not([hidden])")
    assert "Renamed" in page.inner_text("#capacity-error")
    page.select_option("#f-capacity", "unlimited")
    unlimited = submit(page)
    assert "capacity" not in _job(service, unlimited)["config"]["scenario"]


def test_a_job_without_a_plan_shows_no_chain_of_care(page: Any, service: Service) -> None:
    open_page(page, service)
    page.fill("#f-patients", "200")
    job_id = submit(page)
    wait_status(page, job_id, "completed")
    _open_job(page, job_id)
    assert page.locator("#charts #care-chain-h").count() == 0
    assert "Unlimited capacity" in page.locator("#job-view").inner_text()


def _minutes_label(m: float | None) -> str:
    """summary.js's words for a wait (minutesLabel of the rounded minutes), rounded as
    JavaScript rounds: Math.round and toFixed take a half up (75 min is "1.3 h"), where Python's
    round and format take it to the even digit ("1.2 h")."""
    if m is None:
        return "–"
    whole = math.floor(m + 0.5)  # Math.round
    if whole < 60:
        return f"{whole} min"
    hours, unit = (whole / 60, " h") if whole < 1440 else (whole / 1440, " d")
    tenths = Decimal(hours).quantize(Decimal("0.1"), ROUND_HALF_UP)  # toFixed(1) of the double
    return f"{tenths}".rstrip("0").rstrip(".") + unit


def test_a_starved_plan_shows_its_waits(page: Any, service: Service) -> None:
    """Under a starved plan (tests/care_chain_support.py) casualties wait: each wait's p50 and
    p90 on the page are the summary's, and so are the deaths with a delay cause; the card of a
    casualty who died waiting shows the signs it was found failing with (generator 1.35.0)."""
    scenario = drill("starved", total_patients=300).model_dump(mode="json")
    with service.api() as api:
        body = {"scenario": scenario, "formats": ["csv", "ndjson"]}
        job_id = api.post("/jobs", json=body).json()["job_id"]
    open_page(page, service, f"#/jobs/{job_id}")
    wait_status(page, job_id, "completed", timeout=120_000)
    page.locator("#charts #care-chain-h").wait_for()
    chain = _job(service, job_id)["summary"]["care_chain"]
    waits = chain["wait_percentiles_minutes"]
    assert any((w["p90"] or 0) > 0 for w in waits.values()), "the starved plan made no one wait"
    rows = page.locator('#charts table[data-role="waits"] tbody tr')
    shown = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    kinds = ("evacuation", "treatment", "surgery", "bed")
    assert shown == [
        [_minutes_label(waits[k]["p50"]), _minutes_label(waits[k]["p90"])] for k in kinds
    ]
    stats = page.locator("#charts .chain-stats").inner_text()
    assert f"{chain['deaths_with_delay']} of {chain['deaths']}" in stats

    with service.api() as api:
        lines = api.get(f"/jobs/{job_id}/files/patients.ndjson").content.splitlines()
    dead = next(r for r in map(orjson.loads, lines) if r["died_waiting"])
    failing = dead["visits"][-1]["deterioration"]
    page.wait_for_selector("#casualty-status[data-total]")
    page.fill("#casualty-find", dead["id"])
    page.keyboard.press("Enter")
    card = page.locator("dialog.casualty-card")
    card.wait_for(state="visible")
    rows = card.locator("table.vitals tbody tr")
    assert rows.count() == 1 + sum(1 for v in dead["visits"] if v["vitals"])
    last = rows.last.inner_text()
    assert "(failing)" in last and f"{failing['systolic_bp']}/{failing['diastolic_bp']}" in last
