# ruff: noqa: E501
"""Bad input gets a 4xx problem+json and changes nothing; the OpenAPI document is valid and full."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import Service

PROBLEM = "application/problem+json"

GOOD_FRONT = {"name": "A", "share": 1.0, "nationalities": {"POL": 1.0}}

# (name, method, path, kwargs, expected status, fields that must be named in `errors`)
BAD_REQUESTS: list[tuple[str, str, str, dict, int, list[str]]] = [
    ("not json", "POST", "/jobs", {"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, []),
    ("json array body", "POST", "/jobs", {"json": [1, 2]}, 422, []),
    ("json string body", "POST", "/jobs", {"json": "preset"}, 422, []),
    ("empty body", "POST", "/jobs", {"content": b"", "headers": {"content-type": "application/json"}}, 422, []),
    ("form body", "POST", "/jobs", {"content": b"preset=x", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415, []),
    ("oversized body", "POST", "/jobs", {"content": b"[" + b"1," * 700_000 + b"1]", "headers": {"content-type": "application/json"}}, 413, []),
    ("neither scenario nor preset", "POST", "/jobs", {"json": {"formats": ["csv"]}}, 422, ["body.scenario"]),
    ("both scenario and preset", "POST", "/jobs", {"json": {"scenario": {}, "preset": "peacekeeping"}}, 422, ["body.preset"]),
    ("unknown preset", "POST", "/jobs", {"json": {"preset": "no-such-preset"}}, 422, ["body.preset"]),
    ("unknown top-level field", "POST", "/jobs", {"json": {"preset": "peacekeeping", "colour": "red"}}, 422, ["body.colour"]),
    ("unknown scenario field", "POST", "/jobs", {"json": {"scenario": {"patients": 10}}}, 422, ["body.scenario.patients"]),
    ("unknown override field", "POST", "/jobs", {"json": {"preset": "peacekeeping", "overrides": {"nope": 1}}}, 422, ["body.overrides.nope"]),
    ("overrides without preset", "POST", "/jobs", {"json": {"scenario": {}, "overrides": {"seed": 1}}}, 422, ["body.overrides"]),
    ("patients as string", "POST", "/jobs", {"json": {"scenario": {"total_patients": "many"}}}, 422, ["body.scenario.total_patients"]),
    ("zero patients", "POST", "/jobs", {"json": {"scenario": {"total_patients": 0}}}, 422, ["body.scenario.total_patients"]),
    ("huge patient count", "POST", "/jobs", {"json": {"scenario": {"total_patients": 10**12}}}, 422, ["body.scenario.total_patients"]),
    ("negative seed", "POST", "/jobs", {"json": {"scenario": {"seed": -1}}}, 422, ["body.scenario.seed"]),
    ("seed too large", "POST", "/jobs", {"json": {"scenario": {"seed": 2**64}}}, 422, ["body.scenario.seed"]),
    ("injury mix does not sum to 1", "POST", "/jobs", {"json": {"scenario": {"injury_mix": {"disease": 0.9, "non_battle_injury": 0.3, "battle_injury": 0.1}}}}, 422, ["body.scenario.injury_mix"]),
    ("warfare does not sum to 1", "POST", "/jobs", {"json": {"scenario": {"warfare": {"urban": 0.5}}}}, 422, ["body.scenario.warfare"]),
    ("unknown nation", "POST", "/jobs", {"json": {"scenario": {"fronts": [{"name": "A", "share": 1.0, "nationalities": {"XXX": 1.0}}]}}}, 422, ["body.scenario.fronts.0.nationalities.XXX.[key]"]),
    ("front shares do not sum to 1", "POST", "/jobs", {"json": {"scenario": {"fronts": [dict(GOOD_FRONT, share=0.5)]}}}, 422, ["body.scenario.fronts"]),
    ("unknown intensity", "POST", "/jobs", {"json": {"scenario": {"intensity": "apocalyptic"}}}, 422, ["body.scenario.intensity"]),
    ("naive start date", "POST", "/jobs", {"json": {"scenario": {"start": "2026-01-01T00:00:00"}}}, 422, ["body.scenario.start"]),
    ("duration out of range", "POST", "/jobs", {"json": {"scenario": {"duration_days": 400}}}, 422, ["body.scenario.duration_days"]),
    ("NaN fraction", "POST", "/jobs", {"content": b'{"scenario": {"calibration": {"female_share": NaN}}}', "headers": {"content-type": "application/json"}}, 422, []),
    ("unknown format", "POST", "/jobs", {"json": {"preset": "peacekeeping", "formats": ["xml"]}}, 422, ["body.formats.0"]),
    ("duplicate formats", "POST", "/jobs", {"json": {"preset": "peacekeeping", "formats": ["csv", "csv"]}}, 422, ["body.formats"]),
    ("empty formats", "POST", "/jobs", {"json": {"preset": "peacekeeping", "formats": []}}, 422, ["body.formats"]),
    ("formats not a list", "POST", "/jobs", {"json": {"preset": "peacekeeping", "formats": "csv"}}, 422, ["body.formats"]),
    ("over-long idempotency key", "POST", "/jobs", {"json": {"preset": "peacekeeping"}, "headers": {"Idempotency-Key": "k" * 300}}, 422, ["header.Idempotency-Key"]),
    ("several problems at once", "POST", "/jobs", {"json": {"scenario": {"total_patients": -1, "seed": "x", "tempo": "fast"}}}, 422, ["body.scenario.total_patients", "body.scenario.seed", "body.scenario.tempo"]),
    ("bad cursor", "GET", "/jobs", {"params": {"cursor": "not-a-cursor"}}, 422, ["query.cursor"]),
    ("bad status filter", "GET", "/jobs", {"params": {"status": "sleeping"}}, 422, ["query.status.0"]),
    ("limit too large", "GET", "/jobs", {"params": {"limit": 100000}}, 422, ["query.limit"]),
    ("limit not a number", "GET", "/jobs", {"params": {"limit": "ten"}}, 422, ["query.limit"]),
    ("malformed job id", "GET", "/jobs/not-a-uuid", {}, 422, ["path.job_id"]),
    ("unknown job", "GET", f"/jobs/{uuid.uuid4()}", {}, 404, []),
    ("unknown job events", "GET", f"/jobs/{uuid.uuid4()}/events", {}, 404, []),
    ("cancel unknown job", "POST", f"/jobs/{uuid.uuid4()}/cancel", {}, 404, []),
    ("negative page offset", "GET", f"/jobs/{uuid.uuid4()}/patients", {"params": {"offset": -5}}, 422, ["query.offset"]),
    ("page limit zero", "GET", f"/jobs/{uuid.uuid4()}/patients", {"params": {"limit": 0}}, 422, ["query.limit"]),
    ("unknown preset name", "GET", "/presets/nope", {}, 404, []),
    ("validate with bad scenario", "POST", "/scenarios/validate", {"json": {"scenario": {"tempo": 3}}}, 422, ["body.scenario.tempo"]),
    ("NUL character in a name", "POST", "/jobs", {"json": {"scenario": {"name": "a\u0000b"}}}, 422, ["body.scenario.name"]),
    ("NUL character in a front", "POST", "/jobs", {"json": {"preset": "peacekeeping", "overrides": {"fronts": [dict(GOOD_FRONT, name="\u0000")]}}}, 422, ["body.overrides.fronts.0.name"]),
    ("deeply nested JSON", "POST", "/jobs", {"content": b'{"preset": "peacekeeping", "overrides": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, "headers": {"content-type": "application/json"}}, 400, []),
    ("body not UTF-8", "POST", "/jobs", {"content": b'{"scenario": {"name": "\xff"}}', "headers": {"content-type": "application/json"}}, 400, []),
    ("front name a spreadsheet reads as a formula", "POST", "/jobs", {"json": {"preset": "peacekeeping", "overrides": {"fronts": [dict(GOOD_FRONT, name="=HYPERLINK(0)")]}}}, 422, ["body.overrides.fronts.0.name"]),
    ("line break in a name", "POST", "/jobs", {"json": {"scenario": {"name": "Drill\r\nday 2"}}}, 422, ["body.scenario.name"]),
    ("misspelt query parameter", "GET", "/jobs", {"params": {"stauts": "running"}}, 422, ["query.stauts"]),
    ("misspelt casualty filter", "GET", f"/jobs/{uuid.uuid4()}/patients", {"params": {"trige": "T1", "limit": 5}}, 422, ["query.trige"]),
    ("query parameter where none is taken", "GET", "/presets", {"params": {"name": "peacekeeping"}}, 422, ["query.name"]),
    ("unknown endpoint", "GET", "/nothing-here", {}, 404, []),
    ("wrong method", "PUT", "/jobs", {"json": {}}, 405, []),
]  # fmt: skip


def _count_jobs(service: Service) -> int:
    with service.client("root") as admin:
        total, cursor = 0, None
        while True:
            page = admin.get(
                "/jobs", params={"limit": 200} | ({"cursor": cursor} if cursor else {})
            )
            total += len(page.json()["items"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                return total


def test_at_least_25_kinds_of_bad_request(api_only: Service) -> None:
    assert len(BAD_REQUESTS) >= 25
    before = _count_jobs(api_only)
    failures = []
    with api_only.client("alice") as client:
        for name, method, path, kwargs, status, fields in BAD_REQUESTS:
            response = client.request(method, path, **kwargs)
            problem = response.json() if response.content else {}
            ok = (
                response.status_code == status
                and response.headers.get("content-type") == PROBLEM
                and problem.get("status") == status
                and problem.get("type", "").startswith("/api/v1/problems/")
                and problem.get("title")
                and problem.get("detail")
            )
            if status == 422:
                named = {e["field"] for e in problem.get("errors") or []}
                ok = ok and bool(problem.get("errors")) and set(fields) <= named
            if not ok:
                failures.append((name, response.status_code, response.text[:400]))
    assert not failures, "\n".join(map(str, failures))
    assert _count_jobs(api_only) == before, "a bad request created a job"


def test_problem_types_are_documented(api_only: Service) -> None:
    with api_only.client("alice") as client:
        problem = client.get(f"/jobs/{uuid.uuid4()}").json()
        described = httpx.get(api_only.url + problem["type"])
        assert described.status_code == 200
        assert described.json()["title"] == problem["title"]


def test_health_ready_metrics(api_only: Service) -> None:
    for path in ("/healthz", "/api/v1/healthz"):
        assert httpx.get(api_only.url + path).json()["status"] == "ok"
    for path in ("/readyz", "/api/v1/readyz"):
        response = httpx.get(api_only.url + path)
        assert response.status_code == 200 and response.json()["status"] == "ready"
    key = {"Authorization": f"Bearer {api_only.keys['alice']}"}
    text = httpx.get(api_only.url + "/metrics", headers=key).text
    for name in (
        "patientgen_jobs{",
        "patientgen_job_duration_seconds_bucket",
        "patientgen_patients_generated_total",
        "patientgen_http_request_duration_seconds_bucket",
    ):
        assert name in text, name


def test_presets_and_validate(api_only: Service) -> None:
    with api_only.client("alice") as client:
        presets = client.get("/presets").json()["items"]
        assert {"training-exercise", "urban-assault"} <= {p["name"] for p in presets}
        one = client.get("/presets/urban-assault").json()
        assert one["scenario"]["total_patients"] == 3000
        resolved = client.post(
            "/scenarios/validate",
            json={"preset": "urban-assault", "overrides": {"total_patients": 7, "warfare": {}}},
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["scenario"]["total_patients"] == 7
        assert resolved.json()["scenario"]["warfare"]["urban"] == 0.7  # deep merge


def test_openapi_document_is_valid_and_complete(api_only: Service) -> None:
    from openapi_spec_validator import validate

    document = httpx.get(api_only.api + "/openapi.json").json()
    validate(document)
    paths = document["paths"]
    expected = {
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/{job_id}"),
        ("post", "/api/v1/jobs/{job_id}/cancel"),
        ("post", "/api/v1/jobs/{job_id}/retry"),
        ("delete", "/api/v1/jobs/{job_id}"),
        ("get", "/api/v1/jobs/{job_id}/events"),
        ("get", "/api/v1/jobs/{job_id}/files"),
        ("get", "/api/v1/jobs/{job_id}/files/{name}"),
        ("get", "/api/v1/jobs/{job_id}/archive"),
        ("get", "/api/v1/jobs/{job_id}/patients"),
        ("get", "/api/v1/presets"),
        ("get", "/api/v1/presets/{name}"),
        ("post", "/api/v1/scenarios/validate"),
        ("get", "/api/v1/healthz"),
        ("get", "/api/v1/readyz"),
        ("get", "/api/v1/metrics"),
    }
    present = {(m, p) for p, ops in paths.items() for m in ops}
    assert expected <= present, expected - present
    submit = paths["/api/v1/jobs"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["examples"]
    assert "application/problem+json" in submit["responses"]["422"]["content"]
    schemes = document["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)


def test_oversized_chunked_body_is_refused(api_only: Service) -> None:
    """Without a Content-Length the body is counted while it arrives."""
    before = _count_jobs(api_only)

    def body():
        yield b'{"preset": "peacekeeping", "overrides": {"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}}'

    with api_only.client("alice") as client:
        response = client.post(
            "/jobs", content=body(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    assert _count_jobs(api_only) == before
