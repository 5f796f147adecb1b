"""A cancel accepted while a job is being finalized cancels it (finding 8 of the hostile review:
it was answered 200 and the job completed anyway), on SQLite and PostgreSQL.

The cancel arrives at the worst moment: while `bundle.finalize` joins the files, after the last
chunk boundary. The runner's completion is refused by the store and the job ends cancelled, its
files removed. The real finalize runs; only the moment of the cancel is arranged.
"""

from __future__ import annotations

import threading

import pytest

from patientgen.formats import bundle
from patientgen.jobs.model import JobStatus
from patientgen.jobs.runner import run_job
from patientgen.scenario import Scenario


@pytest.mark.parametrize("chunks", [1, 3])
def test_cancel_during_finalize_cancels(service, settings, monkeypatch, chunks) -> None:
    job, _ = service.submit(Scenario(name="late", total_patients=5 * chunks, seed=4), ["csv"])
    real_finalize = bundle.finalize
    answers = []

    def finalize_with_a_cancel(*args, **kwargs):
        answers.append(service.cancel(job.job_id))  # a user's cancel, accepted
        return real_finalize(*args, **kwargs)

    monkeypatch.setattr(bundle, "finalize", finalize_with_a_cancel)
    (claimed,) = service.store.claim("w", settings.lease_seconds)
    outcome = run_job(service.store, settings, "w", claimed, threading.Event())

    assert answers and answers[0].status == JobStatus.RUNNING
    assert answers[0].cancel_requested_at is not None
    assert outcome == "cancelled"  # RunOutcome.CANCELLED
    final = service.get(job.job_id)
    assert final.status == JobStatus.CANCELLED
    assert final.output_files == [] and final.summary is None
    assert not service.job_dir(job.job_id).exists()
    assert service.chunks(job.job_id) == []


def test_a_failed_job_error_names_no_server_path(service, settings, tmp_path) -> None:
    """Finding 11 (part): a job's `error` is shown to API users; absolute server paths stay out."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the output folder should be")
    job, _ = service.submit(
        Scenario(name="blocked", total_patients=3, seed=1), ["csv"], output_dir=blocked
    )
    (claimed,) = service.store.claim("w", settings.lease_seconds)
    assert run_job(service.store, settings, "w", claimed, threading.Event()) == "failed"
    failed = service.get(job.job_id)
    assert failed.status == JobStatus.FAILED
    assert failed.error and "not-a-folder" in failed.error, failed.error
    assert str(tmp_path) not in failed.error and "/tmp" not in failed.error, failed.error


def test_a_job_error_keeps_urls_and_lists_each_invalid_field() -> None:
    """Found by probing: a job stored before a validation rule, which the rule now refuses, failed
    with pydantic's whole text, its URLs cut by the path filter ("https:/value_error"). The error
    names each invalid field and its problem, one after the other, without URLs; a URL in any
    other error is kept whole, a server path is still removed."""
    from pydantic import ValidationError

    from patientgen.jobs.runner import describe_error

    data = {
        "fronts": [{"name": "=OLD", "share": 1.0, "nationalities": {"POL": 1.0}}],
        "calibration": {"evacuation_delays": {"role3_to_role4": 5000.0}},
    }
    with pytest.raises(ValidationError) as invalid:
        Scenario.model_validate(data)
    text = describe_error(invalid.value)
    assert text.startswith("invalid Scenario: "), text
    assert "fronts.0.name: " in text and "calibration.evacuation_delays.role3_to_role4: " in text
    assert "http" not in text and "\n" not in text, text
    other = describe_error(OSError("see https://example.org/a/b/c for /srv/data/jobs/x.csv"))
    assert other == "OSError: see https://example.org/a/b/c for x.csv", other
