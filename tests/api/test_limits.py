"""Per-key limits under concurrency, through the real API on SQLite and PostgreSQL.

Finding 3 of the hostile review: 20 parallel submits against a limit of 1 active job were accepted
16 times (SQLite) and 13 times (PostgreSQL), because the count and the insert were separate
transactions. Finding 4: an identical repeat with the same Idempotency-Key got 429 instead of its
job once the key was at its limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import STORES, Service, per_store

BODY = {"preset": "peacekeeping", "overrides": {"total_patients": 5}, "formats": ["ndjson"]}


@pytest.fixture(scope="module", params=STORES)
def pending_only(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """No embedded worker: every accepted job stays pending (active)."""
    yield from per_store(request, tmp_path_factory, "limits", workers=0)


def _new_key(svc: Service, max_active_jobs: int) -> str:
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    settings = Settings(data_dir=svc.data_dir, database_url=svc.database_url)
    with JobService.open(settings) as service:
        return service.create_key("limited", False, None, max_active_jobs)[1]


def _client(svc: Service, key: str) -> httpx.Client:
    return httpx.Client(base_url=svc.api, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_parallel_submits_never_exceed_the_active_job_limit(pending_only: Service) -> None:
    key = _new_key(pending_only, max_active_jobs=1)
    barrier_count = 20

    def submit(i: int) -> int:
        with _client(pending_only, key) as client:
            body = {**BODY, "overrides": {"total_patients": 5 + i}}
            return client.post("/jobs", json=body).status_code

    with ThreadPoolExecutor(barrier_count) as pool:
        codes = list(pool.map(submit, range(barrier_count)))
    assert sorted(set(codes)) == [202, 429], codes
    assert codes.count(202) == 1, codes
    with _client(pending_only, key) as client:
        listed = client.get("/jobs").json()["items"]
    assert len(listed) == 1


def test_idempotent_repeat_at_the_limit_returns_its_job(pending_only: Service) -> None:
    key = _new_key(pending_only, max_active_jobs=1)
    with _client(pending_only, key) as client:
        headers = {"Idempotency-Key": "same-request"}
        first = client.post("/jobs", json=BODY, headers=headers)
        assert first.status_code == 202, first.text
        again = client.post("/jobs", json=BODY, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["job_id"] == first.json()["job_id"]
        other = client.post("/jobs", json=BODY, headers={"Idempotency-Key": "another"})
        assert other.status_code == 429, other.text
        assert other.headers["content-type"].startswith("application/problem+json")
        assert other.headers["retry-after"]
        assert "limit 1" in other.json()["detail"]
        # a different body under the used key is a conflict, not a second job
        changed = client.post("/jobs", json={**BODY, "formats": ["csv"]}, headers=headers)
        assert changed.status_code == 409, changed.text
