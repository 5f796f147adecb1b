"""A delivery's credentials are sealed at rest (delivery/sealed.py).

Before, the Authorization header a push was given (a FHIR server's bearer token) sat in the job's
config in the database as plain text, for backups, replicas and anyone who reads the database.
Now the database holds it sealed; the worker that sends unseals it; a worker with another key
fails the delivery with a sentence saying so and sends nothing; a repeat of the same push (its
idempotency key) is still the same delivery. Real SQLite file, the validating FHIR test server
requiring the token.
"""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from patientgen.delivery.sealed import KEY_FILE, new_key
from patientgen.jobs.model import IdempotencyConflict, JobStatus
from patientgen.jobs.service import JobService
from tests.support import delivery_settings
from tests.test_push import fhir_server, server_counts

pytestmark = pytest.mark.timeout(180)
TOKEN = "s3cret-token-of-the-test-server"


def _source(settings) -> str:
    with JobService.open(settings) as service:
        job, _ = service.submit({"total_patients": 20, "seed": 5}, ["ndjson"])
        job, _ = service.run_here(job.job_id, threading.Event())
        assert job.status == JobStatus.COMPLETED
    return str(job.job_id)


def _stored_configs(folder: Path) -> str:
    with sqlite3.connect(folder / "patientgen.db") as db:
        return "\n".join(str(row[0]) for row in db.execute("SELECT config FROM jobs"))


def test_the_token_is_sealed_in_the_database_and_the_push_loads(tmp_path: Path) -> None:
    settings = delivery_settings(tmp_path)
    source = _source(settings)
    with fhir_server("--token", TOKEN) as url, JobService.open(settings) as service:
        target = {"target": "fhir", "url": url, "authorization": f"Bearer {TOKEN}"}
        delivery, created = service.push(source, target, idempotency_key="k1")
        assert created
        stored = _stored_configs(tmp_path)
        assert TOKEN not in stored and "sealed:v1:" in stored
        ended, _ = service.run_here(delivery.job_id, threading.Event())
        assert ended.status == JobStatus.COMPLETED, ended.error
        assert server_counts(url)["Patient"] == 20
        # the same push again is the same delivery; another token under that key is not
        again, created = service.push(source, target, idempotency_key="k1")
        assert again.job_id == delivery.job_id and not created
        with pytest.raises(IdempotencyConflict):
            service.push(source, {**target, "authorization": "Bearer other"}, idempotency_key="k1")
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_worker_with_another_key_sends_nothing_and_says_why(tmp_path: Path) -> None:
    first = delivery_settings(tmp_path, secret_key=SecretStr(new_key()))
    source = _source(first)
    with fhir_server("--token", TOKEN) as url:
        with JobService.open(first) as service:
            target = {"target": "fhir", "url": url, "authorization": f"Bearer {TOKEN}"}
            delivery, _ = service.push(source, target)
        other = delivery_settings(tmp_path, secret_key=SecretStr(new_key()))
        with JobService.open(other) as service:
            failed, _ = service.run_here(delivery.job_id, threading.Event())
        assert failed.status == JobStatus.FAILED
        assert "PATIENTGEN_SECRET_KEY" in (failed.error or "")
        assert not any(server_counts(url).values())
        with JobService.open(first) as service:  # the right key: the retry loads
            service.retry(delivery.job_id)
            ended, _ = service.run_here(delivery.job_id, threading.Event())
        assert ended.status == JobStatus.COMPLETED, ended.error
        assert server_counts(url)["Patient"] == 20


def test_a_malformed_secret_key_is_refused_where_settings_are_read(tmp_path: Path) -> None:
    """Not at the first push (which answered 500): the setting itself is refused, saying how
    to make a key."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="patientgen keys secret"):
        delivery_settings(tmp_path, secret_key=SecretStr("not-a-key"))
    assert delivery_settings(tmp_path, secret_key=SecretStr(new_key())).secret_key is not None
