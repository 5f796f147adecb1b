"""A medical plan through the real API (issue 10, item 1): validation answers 422 listing every
problem of a plan at once, "sized" resolves to the scenario's default plan, and a scenario
without a plan is answered exactly as before (no `capacity` member)."""

from __future__ import annotations

from tests.api.conftest import Service

PROBLEM = "application/problem+json"
LIFT = {"count": 0, "patients_per_lift": 1, "turnaround_minutes": 5}


def test_a_bad_plan_is_422_with_every_problem(api_only: Service) -> None:
    bad = {
        "front": "East",
        "facilities": [
            {"role": "R1", "treatment_teams": 1, "holding_beds": 2, "operating_tables": 1}
        ],
        "ground_ambulances": LIFT,
        "helicopters": {**LIFT, "turnaround_minutes": -1},
    }
    body = {"scenario": {"capacity": {"fronts": [bad, {**bad, "front": "Nowhere"}]}}}
    with api_only.client("alice") as client:
        response = client.post("/scenarios/validate", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    errors = response.json()["errors"]
    fields = {e["field"] for e in errors}
    assert "body.scenario.capacity.fronts.0.helicopters.turnaround_minutes" in fields
    assert "body.scenario.capacity.fronts.1.helicopters.turnaround_minutes" in fields
    # once the fields themselves are valid, every problem across them is listed too
    fixed = {**bad, "helicopters": LIFT}
    body = {"scenario": {"capacity": {"fronts": [fixed, {**fixed, "front": "Nowhere"}]}}}
    with api_only.client("alice") as client:
        response = client.post("/scenarios/validate", json=body)
    assert response.status_code == 422
    messages = " | ".join(e["message"] for e in response.json()["errors"])
    for expected in (
        "needs a R3",
        "needs an R2B or R2E",
        "R1 has no operating table",
        "ground ambulance",
        "'Nowhere' is not a front",
        "'North' has no medical",
    ):
        assert expected in messages, (expected, messages)  # fmt: skip


def test_sized_resolves_to_a_plan_and_unlimited_stays_out(api_only: Service) -> None:
    with api_only.client("alice") as client:
        sized = client.post("/scenarios/validate", json={"scenario": {"capacity": "sized"}})
        plain = client.post("/scenarios/validate", json={"scenario": {}})
    assert sized.status_code == 200, sized.text
    plan = sized.json()["scenario"]["capacity"]
    assert [f["front"] for f in plan["fronts"]] == ["East", "North"]
    roles = [g["role"] for g in plan["fronts"][0]["facilities"]]
    assert roles == ["R1", "R2B", "R2E", "R3"]
    assert plain.status_code == 200 and "capacity" not in plain.json()["scenario"]
