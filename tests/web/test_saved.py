"""Saved scenarios and scenario files on the page (issue 12, item 3), in Debian's Chromium against
the real service: save, reload, load, overwrite only after a confirmation (and not over a version
saved elsewhere meanwhile), delete; export a scenario file and import it back, a bad file changing
nothing and a file with problems marking them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service
from .test_page import READY_TIMEOUT_MS, open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def saved_names(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#saved-select option", "os => os.map(o => o.value).filter(Boolean)"
    )


def wait_status(page: Any, text: str) -> str:
    page.wait_for_function(
        "t => document.querySelector('#saved-status').textContent.includes(t)", arg=text
    )
    return page.inner_text("#saved-status")


def test_save_reload_load_and_overwrite(page: Any, service: Service, screenshots: Path) -> None:
    open_page(page, service)
    page.fill("#f-name", "Northern Shield")
    page.fill("#f-patients", "321")
    page.fill("#saved-name", "Exercise A")
    page.click("#saved-save")
    wait_status(page, "Saved “Exercise A”")
    assert saved_names(page) == ["Exercise A"]
    with service.api() as api:
        got = api.get("/saved-scenarios/Exercise A").json()
    assert got["version"] == 1 and got["scenario"]["total_patients"] == 321
    assert got["scenario"]["name"] == "Northern Shield"

    # Edit, save under the same name: asked first; declined, nothing changes.
    page.fill("#f-patients", "400")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#saved-save")
    wait_status(page, "Nothing saved")
    assert asked and "exists (version 1)" in asked[0]
    with service.api() as api:
        assert api.get("/saved-scenarios/Exercise A").json()["version"] == 1

    # Replaced in another tab meanwhile: the confirmation names the version there now, and
    # accepting replaces exactly that one.
    with service.api() as api:
        other = {"scenario": {**got["scenario"], "total_patients": 999}}
        assert api.put("/saved-scenarios/Exercise A", json=other).status_code == 200
    asked.clear()
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.click("#saved-save")
    wait_status(page, "Replaced “Exercise A” (now version 3)")
    assert "exists (version 2)" in asked[0]
    with service.api() as api:
        assert api.get("/saved-scenarios/Exercise A").json()["scenario"]["total_patients"] == 400

    # A reload keeps the list; loading over an edited form asks first, then fills it.
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=READY_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#saved-select').options.length > 1")
    page.fill("#f-patients", "12")  # an edit
    page.select_option("#saved-select", "Exercise A")
    asked.clear()
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#saved-load")
    page.wait_for_timeout(300)
    assert asked and "Replace the scenario you edited" in asked[0]
    assert page.input_value("#f-patients") == "12"
    page.once("dialog", lambda d: d.accept())
    page.click("#saved-load")
    wait_status(page, "Loaded “Exercise A” (version 3)")
    assert page.input_value("#f-patients") == "400"
    assert page.input_value("#f-name") == "Northern Shield"
    assert page.input_value("#preset") == ""
    shot(page, screenshots, "saved-scenarios", 1280)
    shot(page, screenshots, "saved-scenarios", 390)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Unchanged since loading: loading again does not ask (and really loads: the status is
    # cleared first, so the wait cannot be met by the earlier message).
    dialogs: list[str] = []

    def asked_anyway(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", asked_anyway)
    page.evaluate("document.querySelector('#saved-status').textContent = ''")
    page.click("#saved-load")
    wait_status(page, "Loaded “Exercise A” (version 3)")
    page.remove_listener("dialog", asked_anyway)
    assert dialogs == []

    # A bad name is refused on the page, before any request.
    page.fill("#saved-name", "a/b")
    page.click("#saved-save")
    wait_status(page, "The name must be")

    # Delete, after a confirmation.
    page.once("dialog", lambda d: d.accept())
    page.click("#saved-delete")
    wait_status(page, "Deleted “Exercise A”")
    assert saved_names(page) == []
    with service.api() as api:
        assert api.get("/saved-scenarios/Exercise A").status_code == 404
    page.evaluate("localStorage.clear()")


def test_export_and_import_a_scenario_file(page: Any, service: Service, tmp_path: Path) -> None:
    open_page(page, service)
    page.wait_for_function("() => document.querySelector('#preset').value === 'training-exercise'")
    page.fill("#f-name", "Export me")
    page.fill("#f-seed", "18446744073709551")  # beyond 2^53: stays exact through the file
    with page.expect_download() as info:
        page.click("#export-json")
    download = info.value
    assert download.suggested_filename == "Export-me.json"
    path = tmp_path / "exported.json"
    download.save_as(path)
    text = path.read_text()
    assert '"seed": 18446744073709551' in text
    exported = json.loads(text)
    assert exported["name"] == "Export me"
    # The file is a scenario as the service takes it.
    with service.api() as api:
        checked = api.post("/scenarios/validate", json={"scenario": exported})
        assert checked.status_code == 200, checked.text

    # Another name, then import the file back over the edited form (after a confirmation).
    page.fill("#f-name", "Changed")
    page.fill("#f-patients", "55")
    page.once("dialog", lambda d: d.accept())
    page.set_input_files("#import-json", str(path))
    wait_status(page, "the scenario is valid")
    assert page.input_value("#f-name") == "Export me"
    assert page.input_value("#f-seed") == "18446744073709551"
    assert page.input_value("#f-patients") == str(exported["total_patients"])

    # Not JSON: a message, the form unchanged.
    page.fill("#f-name", "Still here")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    page.set_input_files("#import-json", str(junk))
    wait_status(page, "is not JSON")
    assert page.input_value("#f-name") == "Still here"
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    page.set_input_files("#import-json", str(array))
    wait_status(page, "holds no scenario")
    assert page.input_value("#f-name") == "Still here"

    # A job request (scenario and formats) with a problem: imported, formats taken, problem marked.
    request = {
        "scenario": {**exported, "injury_mix": {"disease": 0.6, "non_battle_injury": 0.3,
                                                "battle_injury": 0.15}},
        "formats": ["csv"],
    }  # fmt: skip
    bad = tmp_path / "request.json"
    bad.write_text(json.dumps(request))
    page.once("dialog", lambda d: d.accept())
    page.set_input_files("#import-json", str(bad))
    wait_status(page, "it has problems")
    assert page.is_visible("#form-errors")
    assert page.is_visible("#injury-error")
    checked = page.eval_on_selector_all(
        'input[name="formats"]', "bs => bs.filter(b => b.checked).map(b => b.value)"
    )
    assert checked == ["csv"]
    page.evaluate("localStorage.clear()")
