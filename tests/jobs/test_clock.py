"""A worker whose clock is wrong by minutes can neither steal a live job nor lose its own
(finding 7 of the hostile review), on SQLite and PostgreSQL.

The wrong clock is a real worker process under libfaketime (Debian package `faketime`, which
`make test` installs): its wall clock (time(), gettimeofday, CLOCK_REALTIME) reads ten minutes
ahead or behind, as after a clock step. Its monotonic and boot clocks are left alone
(DONT_FAKE_MONOTONIC): no clock step moves them, and the SQLite store's leases run on the boot
clock.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import pytest

from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from patientgen.settings import Settings
from tests.jobs.helpers import WorkerProcess
from tests.support import wait_until

LIBFAKETIME = next(iter(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        LIBFAKETIME is None, reason="libfaketime is missing (Debian package faketime)"
    ),
]


def _skewed_worker(settings, tmp_path: Path, name: str, skew: str, **env) -> WorkerProcess:
    """`patientgen worker` whose wall clock reads `skew` (e.g. "+10m") off."""
    environ = {"DONT_FAKE_MONOTONIC": "1"}
    if skew:
        environ |= {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": skew}
    return WorkerProcess(settings, tmp_path / f"{name}.log", environ=environ, **env)


@pytest.mark.parametrize(
    ("holder_skew", "other_skew"),
    [("", "+10m"), ("-10m", "")],
    ids=["other-ahead-cannot-steal", "holder-behind-cannot-lose"],
)
def test_a_wrong_clock_neither_steals_nor_loses_a_live_job(
    service: JobService, settings, tmp_path: Path, holder_skew: str, other_skew: str
) -> None:
    settings = settings.model_copy(update={"lease_seconds": 4.0})  # margin for a busy machine
    job, _ = service.submit(Scenario(name="clock", total_patients=30, seed=5), ["ndjson"])
    with _skewed_worker(settings, tmp_path, "holder", holder_skew, chunk_delay=0.7) as holder:
        running = wait_until(
            lambda: (j := service.get(job.job_id)).status == JobStatus.RUNNING and j, timeout=30
        )
        owner = running.lease_owner
        with _skewed_worker(settings, tmp_path, "other", other_skew) as other:
            wait_until(lambda: "started" in other.text(), timeout=30)
            deadline = time.monotonic() + 3 * settings.lease_seconds
            while time.monotonic() < deadline:
                now = service.get(job.job_id)
                if now.status == JobStatus.COMPLETED:
                    break
                assert now.status == JobStatus.RUNNING, (now, other.text()[-2000:])
                assert now.lease_owner == owner, (now, other.text()[-2000:])
                assert now.attempts == 1, now
                time.sleep(0.1)
            done = wait_until(
                lambda: (j := service.get(job.job_id)).status == JobStatus.COMPLETED and j,
                timeout=60,
            )
        assert done.attempts == 1, (done, holder.text()[-2000:])
        assert "reaper" not in other.text(), other.text()[-2000:]


def test_an_event_stream_ends_when_the_worker_clock_is_behind(tmp_path: Path) -> None:
    """The other half of finding 7: a worker whose clock is ten minutes behind wrote `updated_at`
    values earlier than the one the stream had seen, and the stream (which waited for a newer
    one) never sent `end`. Streams now wait for the row's version to change."""
    import httpx

    from tests.api.conftest import make_service
    from tests.support import running

    svc = make_service(tmp_path, None, workers=0, auth="off")
    with running(svc):
        svc.start()
        settings = Settings(
            data_dir=svc.data_dir, database_url=svc.database_url, lease_seconds=4, chunk_size=5
        )
        with httpx.Client(base_url=svc.api, timeout=30) as client:
            job = client.post(
                "/jobs", json={"preset": "peacekeeping", "overrides": {"total_patients": 20}}
            ).json()
            events: list[str] = []
            deadline = time.monotonic() + 40
            with (
                _skewed_worker(settings, tmp_path, "behind", "-10m", chunk_delay=0.3),
                client.stream(
                    "GET", f"/jobs/{job['job_id']}/events", timeout=httpx.Timeout(10, read=30)
                ) as stream,
            ):
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        events.append(line.split(":", 1)[1].strip())
                        if events[-1] == "end":
                            break
                    assert time.monotonic() < deadline, f"no end event, only {events}"
            final = client.get(f"/jobs/{job['job_id']}").json()
    assert events[-1] == "end" and final["status"] == "completed", (events, final["status"])
    assert events.count("progress") >= 2  # it saw the job run, not only its start and end
