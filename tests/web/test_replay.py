"""The replay of the chain of care in the job view (issue 12, item 2), in Debian's Chromium
against the real service: play, change speed, pause, filter, seek with the keyboard, play to the
end; the counters are checked against figures computed here from the job's NDJSON (downloaded
through the API and parsed here) and against its summary.json. Screenshots at 1280 and 390 px."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import Service
from .test_defects import wait_completed
from .test_page import open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

ROLES = ("POI", "R1", "R2", "R3", "R4")
HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IDLE = (
    "() => { const r = document.querySelector('#replay');"
    " return r && !r.hasAttribute('aria-busy') && r.dataset.state === 'paused'"
    " && document.querySelectorAll('#replay-counters tbody tr').length === 5; }"
)


@pytest.fixture(scope="module")
def job(service: Service) -> Iterator[dict[str, Any]]:
    """A completed 2,000-patient job over 10 days with a medical plan, its records and its
    summary (10 days: played at 100×, its span takes a few seconds)."""
    with service.api() as api:
        body = {"preset": "high-intensity-defence", "formats": ["ndjson"],
                "overrides": {"total_patients": 2000, "seed": 9, "name": "Replay",
                              "duration_days": 10, "capacity": "sized"}}  # fmt: skip
        submitted = api.post("/jobs", json=body).json()
        done = wait_completed(service, submitted["job_id"], timeout=120)
        lines = api.get(f"/jobs/{done['job_id']}/files/patients.ndjson").content.splitlines()
        summary = api.get(f"/jobs/{done['job_id']}/files/summary.json").json()
    yield {**done, "records": [orjson.loads(line) for line in lines], "summary_file": summary}


def _ms(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def expected(records: list[dict[str, Any]], at: int) -> dict[str, dict[str, int]]:
    """Counters before `at` (epoch ms) and casualties there now, from the records alone."""
    counters = {role: {"here": 0, "arrivals": 0, "deaths": 0, "rtd": 0} for role in ROLES}
    for r in records:
        arrivals = {v["facility"]: _ms(v["arrived_at"]) for v in r["visits"]}
        arrivals["POI"] = _ms(r["injured_at"])
        for role, t in arrivals.items():
            if t < at:
                counters[role]["arrivals"] += 1
        outcome_at = _ms(r["outcome_at"])
        if outcome_at < at:
            if r["outcome"] in ("KIA", "DOW", "DIED"):
                counters[r["outcome_facility"]]["deaths"] += 1
            elif r["outcome"] == "RTD":
                counters[r["outcome_facility"]]["rtd"] += 1
        elif arrivals["POI"] < at:
            where = max((t, ROLES.index(role)) for role, t in arrivals.items() if t < at)[1]
            counters[ROLES[where]]["here"] += 1
    return counters


def shown(page: Any) -> dict[str, dict[str, int]]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#replay-counters tbody tr')]
        .map(tr => [tr.dataset.role, Object.fromEntries([...tr.querySelectorAll('td')]
        .map(td => [td.dataset.kind, Number(td.textContent.replace(/,/g, ''))]))]))"""
    )


def at(page: Any) -> int:
    return int(page.get_attribute("#replay", "data-at"))


def wait_idle(page: Any) -> None:
    page.wait_for_function(IDLE)


def play_for(page: Any, seconds: float) -> tuple[int, float]:
    """Presses Play, lets it run, pauses; (exercise ms advanced, wall seconds it ran). The wall
    time is the page's own, between the two presses as the page received them, so a test
    process slowed by a loaded machine does not count time the page did not see."""
    page.evaluate(
        """() => { if (window.__presses) return; window.__presses = [];
        document.querySelector('#replay-play').addEventListener('click',
            () => window.__presses.push(performance.now()), {capture: true}); }"""
    )
    before = at(page)
    page.click("#replay-play")
    page.wait_for_selector("#replay[data-state=playing]")
    page.wait_for_timeout(seconds * 1000)
    page.click("#replay-play")
    wait_idle(page)
    pressed = page.evaluate("window.__presses.slice(-2)")
    return at(page) - before, (pressed[1] - pressed[0]) / 1000


def test_play_speed_pause_filter_seek_and_end(
    page: Any, service: Service, job: dict[str, Any], screenshots: Path
) -> None:
    records = job["records"]
    open_page(page, service, f"#/jobs/{job['job_id']}")
    wait_idle(page)
    page.click("button.to-replay")  # near the top: keyboard users get there in one step
    assert page.evaluate("document.activeElement.id") == "replay-h"
    start, end = (int(page.get_attribute("#replay", f"data-{k}")) for k in ("start", "end"))
    assert start == min(_ms(r["injured_at"]) for r in records)
    assert end > max(_ms(r["outcome_at"]) for r in records)
    assert shown(page) == expected(records, start)  # nothing before the first injury
    assert "1× is one exercise hour per second" in page.inner_text("#replay")

    # play at 1×: at most an exercise hour per wall second
    moved, wall = play_for(page, 1.0)
    assert 0 < moved <= (wall + 0.3) * HOUR_MS
    # pause: the clock stops, and the counters are exactly those of the records at that time
    frozen = at(page)
    page.wait_for_timeout(400)
    assert at(page) == frozen
    assert shown(page) == expected(records, frozen)
    assert page.inner_text("#replay-live")  # the pause is announced

    # 100×: many hours a second; the counters still match the records when paused
    page.select_option("#replay-speed", "100")
    moved, wall = play_for(page, 1.5)
    assert moved > 5 * HOUR_MS, f"100× moved {moved / HOUR_MS:.1f} h in {wall:.1f} s"
    now = at(page)
    assert shown(page) == expected(records, now)
    assert shown(page)["POI"]["arrivals"] > 0

    for width in (1280, 390):  # mid-exercise, casualties in every column
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(200)
        page.locator("#replay").scroll_into_view_if_needed()
        page.locator("#replay").screenshot(path=str(screenshots / f"replay-{width}.png"))
        shot(page, screenshots, "replay-page", width)
        box = page.locator("#replay-canvas").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
    page.set_viewport_size({"width": 1280, "height": 900})

    # a filter: the counters of the T1 casualties at the same moment
    page.select_option("#rf-triage", "T1")
    wait_idle(page)
    assert at(page) == now
    t1 = [r for r in records if r["triage"] == "T1"]
    assert shown(page) == expected(t1, now)
    front = records[0]["front"]
    page.select_option("#rf-front", front)
    wait_idle(page)
    assert shown(page) == expected([r for r in t1 if r["front"] == front], now)
    assert f"{front} front" in page.inner_text("#replay-load h3")  # the load of that front
    page.select_option("#rf-triage", "")
    page.select_option("#rf-front", "")
    wait_idle(page)
    assert shown(page) == expected(records, now)

    # the keyboard: k plays and pauses on the picture; End seeks to the end
    page.focus("#replay-canvas")
    page.keyboard.press("k")
    page.wait_for_selector("#replay[data-state=playing]")
    page.keyboard.press("k")
    wait_idle(page)
    page.keyboard.press("-")  # speed down and up again
    assert page.input_value("#replay-speed") == "50"
    page.keyboard.press("+")
    assert page.input_value("#replay-speed") == "100"
    before = at(page)
    page.keyboard.press("ArrowRight")  # an hour on
    page.wait_for_function(
        f"() => document.querySelector('#replay').dataset.at === '{before + HOUR_MS}'"
    )
    wait_idle(page)
    assert shown(page) == expected(records, before + HOUR_MS)
    wait_idle(page)
    page.keyboard.press("End")
    page.wait_for_function(f"() => document.querySelector('#replay').dataset.at === '{end}'")
    wait_idle(page)
    final = shown(page)
    assert final == expected(records, end)
    check_summary(final, job["summary_file"])
    assert "injured" in page.inner_text("#replay-live")

    # the load chart from summary.care_chain, with its playhead
    assert page.locator("#replay-load polyline").count() >= 6
    page.set_viewport_size({"width": 390, "height": 900})
    page.locator("#replay").screenshot(path=str(screenshots / f"replay-end-{390}.png"))


def check_summary(counters: dict[str, dict[str, int]], summary: dict[str, Any]) -> None:
    visits = dict.fromkeys(ROLES, 0)
    for facility in summary["facilities"].values():
        visits[facility["role"]] += facility["visits"]
    assert counters["POI"]["arrivals"] == summary["patients"]
    for role in ROLES[1:]:
        assert counters[role]["arrivals"] == visits[role], role
    deaths = sum(summary["by_outcome"].get(k, 0) for k in ("KIA", "DOW", "DIED"))
    assert sum(c["deaths"] for c in counters.values()) == deaths
    assert sum(c["rtd"] for c in counters.values()) == summary["by_outcome"]["RTD"]
    assert counters["POI"]["deaths"] == summary["by_outcome"]["KIA"]
    assert all(c["here"] == 0 for c in counters.values())


def test_played_to_the_end_the_counters_are_the_summarys(
    page: Any, service: Service, job: dict[str, Any]
) -> None:
    """Streamed from the first injury to the last outcome at 100×: the counters that play adds
    up casualty by casualty end where the summary does."""
    open_page(page, service, f"#/jobs/{job['job_id']}")
    wait_idle(page)
    page.select_option("#replay-speed", "100")
    page.click("#replay-play")
    page.wait_for_selector("#replay[data-state=playing]")
    page.wait_for_function(
        "() => document.querySelector('#replay').dataset.state === 'paused'", timeout=120_000
    )
    wait_idle(page)
    end = int(page.get_attribute("#replay", "data-end"))
    assert at(page) == end
    final = shown(page)
    assert final == expected(job["records"], end)
    check_summary(final, job["summary_file"])


def test_without_a_plan_the_load_says_why(page: Any, service: Service) -> None:
    with service.api() as api:
        body = {"scenario": {"total_patients": 60, "seed": 4}, "formats": ["ndjson"]}
        done = wait_completed(service, api.post("/jobs", json=body).json()["job_id"])
    open_page(page, service, f"#/jobs/{done['job_id']}")
    wait_idle(page)
    assert "medical plan" in page.inner_text("#replay-load-none")
