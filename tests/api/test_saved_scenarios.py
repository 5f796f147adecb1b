"""Saved scenarios through real HTTP against the real service: save, replace, list, get, delete,
per API key; bad input listed in one 422 and nothing saved."""

from __future__ import annotations

import pytest

from tests.api.conftest import Service

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def alice(api_only: Service):
    with api_only.client("alice") as client:
        yield client


def test_save_replace_list_get_delete(api_only: Service, alice) -> None:
    made = alice.put("/saved-scenarios/Exercise A", json={"preset": "peacekeeping"})
    assert made.status_code == 201, made.text
    first = made.json()
    assert first["name"] == "Exercise A" and first["version"] == 1
    assert first["scenario"] == alice.get("/presets/peacekeeping").json()["scenario"]
    replaced = alice.put(
        "/saved-scenarios/Exercise A",
        json={"preset": "peacekeeping", "overrides": {"total_patients": 77, "seed": 5}},
    )
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert replaced.json()["scenario"]["total_patients"] == 77
    assert (
        alice.put("/saved-scenarios/b-2", json={"scenario": {"total_patients": 3}}).status_code
        == 201
    )
    listed = alice.get("/saved-scenarios").json()["items"]
    assert [(s["name"], s["version"]) for s in listed] == [("Exercise A", 2), ("b-2", 1)]
    assert all("scenario" not in s for s in listed)
    got = alice.get("/saved-scenarios/Exercise A").json()
    assert got["scenario"] == replaced.json()["scenario"]
    # another key's owner sees none of them
    with api_only.client("bob") as bob:
        assert bob.get("/saved-scenarios").json()["items"] == []
        missing = bob.get("/saved-scenarios/Exercise A")
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert alice.delete("/saved-scenarios/b-2").status_code == 204
    assert alice.delete("/saved-scenarios/b-2").status_code == 404
    assert [s["name"] for s in alice.get("/saved-scenarios").json()["items"]] == ["Exercise A"]
    # a saved scenario submits as a job like any other
    job = alice.post("/jobs", json={"scenario": got["scenario"], "formats": ["csv"]})
    assert job.status_code == 202


def test_bad_input_is_listed_and_saves_nothing(alice) -> None:
    assert (
        alice.put("/saved-scenarios/keep", json={"scenario": {"total_patients": 4}}).status_code
        == 201
    )
    bad = alice.put(
        "/saved-scenarios/keep",
        json={"scenario": {"total_patients": -1, "duration_days": 0}},
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"body.scenario.total_patients", "body.scenario.duration_days"} <= fields
    for name in (" lead", "x" * 101, "semi;colon"):
        refused = alice.put(f"/saved-scenarios/{name}", json={"scenario": {"total_patients": 4}})
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM, name
        assert refused.json()["errors"][0]["field"] == "path.name"
    kept = alice.get("/saved-scenarios/keep").json()
    assert kept["version"] == 1 and kept["scenario"]["total_patients"] == 4


def test_anonymous_callers_need_a_key(api_only: Service) -> None:
    with api_only.client(None) as anonymous:
        assert anonymous.get("/saved-scenarios").status_code == 401


def test_conditional_saves(alice) -> None:
    """RFC 9110 preconditions: the ETag is the version; If-None-Match: * saves a new name only,
    If-Match replaces only that version; a failed one is 412 with the version there now, and
    saves nothing."""
    url = "/saved-scenarios/cond"
    made = alice.put(url, json={"scenario": {"total_patients": 5}}, headers={"If-None-Match": "*"})
    assert made.status_code == 201 and made.headers["etag"] == '"1"'
    taken = alice.put(url, json={"scenario": {"total_patients": 6}}, headers={"If-None-Match": "*"})
    assert taken.status_code == 412 and taken.headers["content-type"] == PROBLEM
    assert taken.json()["current_version"] == 1 and taken.headers["etag"] == '"1"'
    got = alice.get(url)
    assert got.headers["etag"] == '"1"' and got.json()["scenario"]["total_patients"] == 5

    replaced = alice.put(url, json={"scenario": {"total_patients": 8}}, headers={"If-Match": '"1"'})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    stale = alice.put(url, json={"scenario": {"total_patients": 9}}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["current_version"] == 2
    assert alice.get(url).json()["scenario"]["total_patients"] == 8

    for headers in ({"If-Match": "1"}, {"If-None-Match": '"1"'},
                    {"If-Match": '"1"', "If-None-Match": "*"}):  # fmt: skip
        bad = alice.put(url, json={"scenario": {"total_patients": 3}}, headers=headers)
        assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM, headers
    assert alice.get(url).json()["version"] == 2

    assert alice.delete(url).status_code == 204
    gone = alice.put(url, json={"scenario": {"total_patients": 3}}, headers={"If-Match": '"2"'})
    assert gone.status_code == 412 and "current_version" not in gone.json()
    assert alice.get(url).status_code == 404
