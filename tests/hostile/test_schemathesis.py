"""Schemathesis against the running service's own OpenAPI document: every operation, all four
phases (the documented examples, boundary and negative cases, random fuzzing, and stateful
sequences that follow links from a created job to every operation on it), every check.

The property: no answer is a 5xx, and every answer (status, content type, headers, body, each
event of the progress stream) conforms to the document; invalid input is refused and valid input
is accepted. The requests carry a real API key with small limits (20 patients, 10 active jobs),
so the auth paths, 422 for too many patients and 429 for too many active jobs are exercised too.

The seed is fixed so CI is repeatable; PATIENTGEN_HOSTILE_SEED=random (or a number) explores.
PATIENTGEN_HOSTILE_EXAMPLES sets the examples per operation (default 40).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.hostile.conftest import Service

PREFIX = "/api/v1"

#: Operations on one job, each reachable from a response that carries its `job_id`.
JOB_OPERATIONS = [
    ("/jobs/{job_id}", "get"),
    ("/jobs/{job_id}", "delete"),
    ("/jobs/{job_id}/cancel", "post"),
    ("/jobs/{job_id}/retry", "post"),
    ("/jobs/{job_id}/events", "get"),
    ("/jobs/{job_id}/files", "get"),
    ("/jobs/{job_id}/archive", "get"),
    ("/jobs/{job_id}/patients", "get"),
    ("/jobs/{job_id}/patients/facets", "get"),
]


def with_links(document: dict[str, Any]) -> dict[str, Any]:
    """The served document plus OpenAPI links (job id from a submit to every job operation, a
    file name from the file list to the download, `next_cursor` to the next page) and a tiny
    submit example, so the stateful phase reaches real jobs and real files."""
    paths = document["paths"]

    def operation_id(path: str, method: str) -> str:
        return paths[PREFIX + path][method]["operationId"]

    to_job = {
        f"{method}{path}".replace("/", "_").strip("_").replace("{", "").replace("}", ""): {
            "operationId": operation_id(path, method),
            "parameters": {"job_id": "$response.body#/job_id"},
        }
        for path, method in JOB_OPERATIONS
    }
    submit = paths[PREFIX + "/jobs"]["post"]
    for code in ("200", "202"):
        submit["responses"][code]["links"] = to_job
    for path, method in (
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}/cancel", "post"),
        ("/jobs/{job_id}/retry", "post"),
    ):
        paths[PREFIX + path][method]["responses"]["200"]["links"] = to_job
    paths[PREFIX + "/jobs/{job_id}/files"]["get"]["responses"]["200"]["links"] = {
        "download": {
            "operationId": operation_id("/jobs/{job_id}/files/{name}", "get"),
            "parameters": {
                "job_id": "$request.path.job_id",
                "name": "$response.body#/items/0/name",
            },
        }
    }
    paths[PREFIX + "/jobs/{job_id}/patients"]["get"]["responses"]["200"]["links"] = {
        "patient": {
            "operationId": operation_id("/jobs/{job_id}/patients/{patient_id}", "get"),
            "parameters": {
                "job_id": "$request.path.job_id",
                "patient_id": "$response.body#/items/0/id",
            },
        }
    }
    paths[PREFIX + "/jobs"]["get"]["responses"]["200"]["links"] = {
        "next_page": {
            "operationId": operation_id("/jobs", "get"),
            "parameters": {"cursor": "$response.body#/next_cursor"},
        }
    }
    examples = submit["requestBody"]["content"]["application/json"].setdefault("examples", {})
    examples["tiny"] = {
        "summary": "A tiny job",
        "value": {
            "preset": "urban-assault",
            "overrides": {"total_patients": 5},
            "formats": ["ndjson", "csv"],
        },
    }
    return document


def config(key: str, seed: str, examples: int) -> str:
    """schemathesis.toml: the key for both security schemes, every check, and 422 as an
    acceptable answer to schema-valid input only where the document cannot say everything
    (fractions summing to 1, the key's patient limit, what an opaque cursor holds; a saved
    scenario is a scenario too; the casualty filters take the job's own values, its fronts among
    them, and comma lists of them, which a string's schema cannot enumerate; the replay's
    times, RFC 3339 with a zone), and 412 where a
    conditional save names a version the fuzzer cannot know."""
    seed_line = "" if seed == "random" else f"seed = {int(seed)}\n"
    return f"""{seed_line}continue-on-failure = true
request-timeout = 30
max-stream-events = 50

[generation]
max-examples = {examples}
with-security-parameters = false

[auth.openapi.HTTPBearer]
bearer = "{key}"

[auth.openapi.APIKeyHeader]
api_key = "{key}"

[checks]
enabled = true

[[operations]]
include-path-regex = "^{PREFIX}/(jobs|scenarios/validate)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]

[[operations]]
include-path-regex = "^{PREFIX}/jobs/[{{]job_id[}}]/patients(/tracks|/counters)?$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-path-regex = "^{PREFIX}/saved-scenarios/[{{]name[}}]$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "412", "422"]
"""


def test_schemathesis_finds_nothing(hostile_service: Service, tmp_path: Path) -> None:
    svc = hostile_service
    document = httpx.get(f"{svc.api}/openapi.json", timeout=30).json()
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(json.dumps(with_links(document)))
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(
        config(
            svc.keys["fuzz"],
            os.environ.get("PATIENTGEN_HOSTILE_SEED", "1"),
            int(os.environ.get("PATIENTGEN_HOSTILE_EXAMPLES", "40")),
        )
    )
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config_file),
            "run",
            str(schema_file),
            "--url",
            svc.url,
            # one worker: schemathesis' generators are not safe across threads on Python 3.11
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    assert "Stateful" in report and "API Links" in report, report[-5000:]
    assert not svc.server_errors(), "\n".join(svc.server_errors()[:20])
