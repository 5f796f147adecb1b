"""The shared contract suite: every test runs against a real SQLite file and real PostgreSQL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import pytest

from patientgen.jobs.model import (
    CancelRequested,
    ChunkLost,
    IdempotencyConflict,
    InvalidCursor,
    InvalidTransition,
    JobNotFound,
    JobStatus,
    KeyNotFound,
    LeaseLost,
)
from patientgen.scenario import Scenario

SCENARIO = Scenario(total_patients=12, seed=7)


def submit(service, owner="alice", **kw):
    job, created = service.submit(kw.pop("scenario", SCENARIO), ["ndjson"], owner, **kw)
    assert created
    return job


def test_submit_and_get(service):
    job = submit(service)
    assert job.status == JobStatus.PENDING
    assert job.progress == 0 and job.attempts == 0 and job.max_attempts == 3
    assert job.config["scenario"]["total_patients"] == 12
    assert job.config["formats"] == ["ndjson"]
    assert job.config["chunk_size"] == 5
    again = service.get(job.job_id)
    assert again == job
    assert service.get(str(job.job_id), owner="alice") == job
    with pytest.raises(JobNotFound):
        service.get(job.job_id, owner="bob")
    with pytest.raises(JobNotFound):
        service.get(uuid4())
    with pytest.raises(JobNotFound):
        service.get("not-a-uuid")


def test_a_submit_returns_the_job_as_stored(service, store):
    """create builds the job from what it inserted (it does not read the row back): with an
    idempotency key, a priority and attempts of its own, it equals the job read afterwards."""
    job, created = service.submit(
        SCENARIO, ["ndjson", "csv"], "alice", idempotency_key="k-as-stored", priority=7
    )
    assert created and job == service.get(job.job_id)
    assert (job.idempotency_key, job.priority, job.version) == ("k-as-stored", 7, 0)
    again, created = service.submit(
        SCENARIO, ["ndjson", "csv"], "alice", idempotency_key="k-as-stored", priority=7
    )
    assert not created and again == job


def test_idempotency(service):
    first, created = service.submit(SCENARIO, ["ndjson"], "alice", idempotency_key="k1")
    assert created
    same, created = service.submit(SCENARIO, ["ndjson"], "alice", idempotency_key="k1")
    assert not created and same.job_id == first.job_id
    other_owner, created = service.submit(SCENARIO, ["ndjson"], "bob", idempotency_key="k1")
    assert created and other_owner.job_id != first.job_id
    with pytest.raises(IdempotencyConflict):
        service.submit(SCENARIO, ["csv"], "alice", idempotency_key="k1")
    assert service.counts()["pending"] == 2


def test_parallel_repeats_of_one_submit_make_one_job(service):
    """Without a limit no lock is taken: the unique index alone decides a race between repeats,
    and every repeat gets the one job."""
    with ThreadPoolExecutor(16) as pool:  # an exception in a thread is raised here
        results = list(
            pool.map(
                lambda _: service.submit(SCENARIO, ["ndjson"], "alice", idempotency_key="race"),
                range(16),
            )
        )
    assert len({job.job_id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert service.counts()["pending"] == 1


def test_bad_submit_changes_nothing(service):
    with pytest.raises(ValueError):
        service.submit(SCENARIO, ["xml"], "alice")
    with pytest.raises(ValueError):
        service.submit(SCENARIO, [], "alice")
    with pytest.raises(ValueError):
        service.submit({"total_patients": -1}, ["ndjson"], "alice")
    assert sum(service.counts().values()) == 0


def test_list_newest_first_with_keyset_pages(service):
    ids = [submit(service, owner="alice" if i % 2 else "bob").job_id for i in range(11)]
    seen, cursor = [], None
    while True:
        page = service.list(limit=4, cursor=cursor)
        seen += [j.job_id for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    alice = service.list(owner="alice").items
    assert [j.job_id for j in alice] == [i for i in reversed(ids) if ids.index(i) % 2]
    assert service.list(statuses=["running"]).items == []
    with pytest.raises(InvalidCursor):
        service.list(cursor="garbage!")
    with pytest.raises(ValueError):
        service.list(limit=0)
    with pytest.raises(ValueError):
        service.list(statuses=["bogus"])


def test_pages_of_any_statuses_walk_every_job_once_in_order(service, settings):
    """Keyset pages for every owner and for one, of one status, of several and of all, at page
    sizes that split runs of jobs created at the same instant: each job comes once, newest first,
    ties by job id descending (the list queries differ by dialect: PostgreSQL merges one scan
    per status)."""
    from datetime import UTC, datetime, timedelta

    from patientgen.jobs._codec import ts

    statuses = [s.value for s in JobStatus]
    owners = ["alice", "bob", "carol"]
    jobs = [submit(service, owner=owners[i % 3]) for i in range(40)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    changes = [
        (statuses[(i * 7) % 5], start + timedelta(seconds=i // 5), str(job.job_id))
        for i, job in enumerate(jobs)
    ]  # 8 instants, 5 jobs created at each
    if settings.database_url.startswith("sqlite"):
        import sqlite3

        from patientgen.jobs.migrations import sqlite_path

        with sqlite3.connect(sqlite_path(settings.database_url)) as conn:
            conn.executemany(
                "UPDATE jobs SET status = ?, created_at = ? WHERE job_id = ?",
                [(status, ts(at), job_id) for status, at, job_id in changes],
            )
    else:
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            conn.cursor().executemany(
                "UPDATE jobs SET status = %s, created_at = %s WHERE job_id = %s", changes
            )
    everything = [service.get(job.job_id) for job in jobs]
    newest_first = sorted(everything, key=lambda j: (j.created_at, j.job_id), reverse=True)
    filters = (None, ["completed"], ["completed", "completed"], ["running", "failed"], statuses)
    for owner in (None, "alice"):
        for wanted in filters:
            expected = [
                j.job_id
                for j in newest_first
                if (owner is None or j.owner == owner) and (wanted is None or j.status in wanted)
            ]
            assert expected  # every combination has jobs
            for limit in (1, 3, 7, 50):
                seen, cursor = [], None
                while True:
                    page = service.list(owner, wanted, limit=limit, cursor=cursor)
                    assert len(page.items) <= limit
                    seen += [j.job_id for j in page.items]
                    assert len(seen) <= len(expected), (owner, wanted, limit)  # no job twice
                    if (cursor := page.next_cursor) is None:
                        break
                assert seen == expected, (owner, wanted, limit)


def test_claim_order_and_lease(service, store):
    low = submit(service, priority=0)
    high = submit(service, priority=5)
    later = submit(service, priority=0)
    claimed = store.claim("w1", 30, limit=2)
    assert [j.job_id for j in claimed] == [high.job_id, low.job_id]
    for job in claimed:
        assert job.status == JobStatus.RUNNING
        assert job.attempts == 1 and job.lease_owner == "w1"
        assert job.started_at is not None and job.lease_expires_at > job.started_at
    (last,) = store.claim("w2", 30)
    assert last.job_id == later.job_id
    assert store.claim("w3", 30) == []


def test_claim_is_exclusive_under_threads(service, store):
    for _ in range(40):
        submit(service)
    got: list = []
    lock = threading.Lock()

    def grab(worker):
        while jobs := store.claim(worker, 30, limit=3):
            with lock:
                got.extend(j.job_id for j in jobs)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 40 and len(set(got)) == 40


def test_heartbeat_progress_and_fencing(service, store):
    job = submit(service)
    (job,) = store.claim("w1", 30)
    beat = store.heartbeat(job.job_id, "w1", 60, 40, {"phase": "generating"})
    assert beat.progress == 40 and beat.progress_details == {"phase": "generating"}
    assert beat.lease_expires_at > job.lease_expires_at
    assert beat.updated_at > job.updated_at
    kept = store.heartbeat(job.job_id, "w1", 60)
    assert kept.progress == 40
    with pytest.raises(LeaseLost):
        store.heartbeat(job.job_id, "intruder", 60)


def test_fencing_after_takeover(service, store):
    job = submit(service)
    store.claim("old", 0.2)
    store.open_chunks(job.job_id, "old", 3)
    first = store.claim_chunk("old", 30, job_id=job.job_id)
    store.record_claimed_chunk(first, "old", {"patients": 5}, 5)
    time.sleep(0.3)
    assert store.reap() == [(job.job_id, JobStatus.PENDING)]
    (taken,) = store.claim("new", 30)
    assert taken.attempts == 2
    for late_write in (
        lambda: store.heartbeat(job.job_id, "old", 30),
        lambda: store.claim_chunk("old", 30, job_id=job.job_id),
        lambda: store.complete(job.job_id, "old", [], None),
        lambda: store.fail(job.job_id, "old", "boom"),
        lambda: store.mark_cancelled(job.job_id, "old"),
        lambda: store.release(job.job_id, "old"),
    ):
        with pytest.raises(LeaseLost):
            late_write()
    assert store.complete_many("old", [(job.job_id, [], None)]) == []
    now = store.get(job.job_id)
    assert now.status == JobStatus.RUNNING and now.lease_owner == "new"
    assert [c.chunk for c in store.chunks(job.job_id)] == [0]


def _open(service, store, patients=12, owner="owner", lease=30):
    """A running job of `patients` (chunks of 5) whose owner opened its chunk phase."""
    job = submit(service, scenario=Scenario(total_patients=patients, seed=7))
    (job,) = store.claim(owner, lease)
    chunks = -(-patients // 5)
    store.open_chunks(job.job_id, owner, chunks)
    return job, chunks


def test_chunk_claims_one_per_chunk_open_phase_only(service, store):
    job = submit(service)
    store.claim("owner", 30)
    assert store.claim_chunk("helper", 30) is None  # phase not open: no helper joins
    with pytest.raises(LeaseLost):
        store.claim_chunk("owner", 30, job_id=job.job_id)
    with pytest.raises(LeaseLost):
        store.open_chunks(job.job_id, "intruder", 3)
    store.open_chunks(job.job_id, "owner", 3)
    mine = store.claim_chunk("owner", 30, job_id=job.job_id)
    first, second = store.claim_chunk("h1", 30), store.claim_chunk("h2", 30)
    assert [mine.chunk, first.chunk, second.chunk] == [0, 1, 2]
    assert store.claim_chunk("h3", 30) is None
    waiting = store.claim_chunk("owner", 30, job_id=job.job_id)
    assert waiting.chunk is None and waiting.recorded == 0 and not waiting.finished
    # any worker's recorded chunk counts in the job's progress; the owner's heartbeat keeps it
    counted = store.record_claimed_chunk(first, "h1", {"patients": 5}, 5)
    assert counted.progress_details["chunks_done"] == 1
    assert counted.progress_details["patients_done"] == 5 and counted.progress == 41
    beat = store.heartbeat(
        job.job_id, "owner", 30, None, {"phase": "generating", "chunks_done": 0}, keep_counts=True
    )
    assert beat.progress_details == {"phase": "generating", "chunks_done": 1, "patients_done": 5}
    assert beat.progress == 41
    store.record_claimed_chunk(mine, "owner", {"patients": 5}, 5)
    store.record_claimed_chunk(second, "h2", {"patients": 2}, 2)
    done = store.claim_chunk("owner", 30, job_id=job.job_id)
    assert done.chunk is None and done.finished and done.recorded == 3
    assert [(c.chunk, c.worker_id) for c in store.chunks(job.job_id)] == [
        (0, "owner"),
        (1, "h1"),
        (2, "h2"),
    ]
    final = store.get(job.job_id)
    assert final.progress_details["patients_done"] == 12 and final.progress == 99


def test_chunk_claim_fencing(service, store):
    job, _ = _open(service, store, patients=15)
    slow = store.claim_chunk("slow", 0.1)
    assert slow.chunk == 0
    with pytest.raises(ChunkLost):  # another worker's claim
        store.record_claimed_chunk(slow, "other", {"patients": 5}, 5)
    time.sleep(0.2)  # the claim's lease runs out on the database's clock
    taken = store.claim_chunk("fast", 30)
    assert taken.chunk == 0  # an expired claim is free again
    assert not store.extend_chunk(slow, "slow", 30)
    with pytest.raises(ChunkLost):
        store.record_claimed_chunk(slow, "slow", {"patients": 5}, 5)
    assert store.extend_chunk(taken, "fast", 30)
    store.record_claimed_chunk(taken, "fast", {"patients": 5}, 5)
    # a cancel request: no helper joins, and nothing more is recorded
    late = store.claim_chunk("h", 30)
    service.cancel(job.job_id)
    assert store.claim_chunk("h2", 30) is None
    with pytest.raises(CancelRequested):
        store.record_claimed_chunk(late, "h", {"patients": 5}, 5)
    assert store.release_chunk(late, "h")
    assert [c.chunk for c in store.chunks(job.job_id)] == [0]


@pytest.mark.parametrize("leaves", ["release", "reap", "fail"])
def test_a_claim_never_outlives_its_run(service, store, leaves):
    """Every write that takes the job out of running drops its claims and closes its phase:
    a helper of that run records nothing afterwards, even once the job runs again."""
    job, _ = _open(service, store, lease=0.1 if leaves == "reap" else 30)
    helper = store.claim_chunk("h", 30)
    if leaves == "release":
        store.release(job.job_id, "owner")
    elif leaves == "reap":
        time.sleep(0.2)
        assert store.reap() == [(job.job_id, JobStatus.PENDING)]
    else:
        store.fail(job.job_id, "owner", "boom")
        service.retry(job.job_id)
    (again,) = store.claim("owner2", 30)
    assert again.job_id == job.job_id and again.status == JobStatus.RUNNING
    assert store.claim_chunk("h2", 30) is None  # closed until the new owner opens it
    with pytest.raises(ChunkLost):
        store.record_claimed_chunk(helper, "h", {"patients": 5}, 5)
    assert not store.extend_chunk(helper, "h", 30)
    store.open_chunks(job.job_id, "owner2", 3)
    assert store.claim_chunk("h2", 30).chunk == 0  # the old claim is gone
    with pytest.raises(ChunkLost):  # same attempt number after a release: still not its run
        store.record_claimed_chunk(helper, "h", {"patients": 5}, 5)
    assert store.chunks(job.job_id) == []


def test_chunk_claims_are_exclusive_under_threads(service, store):
    job, chunks = _open(service, store, patients=5 * 40)
    got: list = []
    lock = threading.Lock()

    def grab(worker):
        while (claim := store.claim_chunk(worker, 30)) is not None:
            store.record_claimed_chunk(claim, worker, {"patients": 5}, 5)
            with lock:
                got.append(claim.chunk)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(chunks))
    final = store.get(job.job_id)
    assert final.progress_details["chunks_done"] == chunks
    assert final.progress_details["patients_done"] == 200


def test_chunks_and_complete(service, store):
    job = submit(service)
    store.claim("w", 30)
    store.open_chunks(job.job_id, "w", 3)
    zero, one = (store.claim_chunk("w", 30, job_id=job.job_id) for _ in range(2))
    store.record_claimed_chunk(one, "w", {"patients": 5}, 5)  # in any order
    store.record_claimed_chunk(zero, "w", {"patients": 5}, 5)
    chunks = store.chunks(job.job_id)
    assert [(c.chunk, c.summary, c.worker_id) for c in chunks] == [
        (0, {"patients": 5}, "w"),
        (1, {"patients": 5}, "w"),
    ]
    files = [{"name": "patients.ndjson", "format": "ndjson", "bytes": 3, "sha256": "ab"}]
    done = store.complete(job.job_id, "w", files, {"patients": 12})
    assert done.status == JobStatus.COMPLETED and done.progress == 100
    assert done.output_files == files and done.summary == {"patients": 12}
    assert done.lease_owner is None and done.completed_at is not None
    assert store.chunks(job.job_id) == []
    with pytest.raises(InvalidTransition):
        service.retry(job.job_id)
    with pytest.raises(InvalidTransition):
        service.cancel(job.job_id)


def test_complete_many(service, store):
    jobs = [submit(service) for _ in range(5)]
    claimed = store.claim("w", 30, limit=5)
    assert len(claimed) == 5
    store.open_chunks(jobs[0].job_id, "w", 3)
    checkpoint = store.claim_chunk("w", 30, job_id=jobs[0].job_id)
    store.record_claimed_chunk(checkpoint, "w", {"patients": 5}, 5)
    done = store.complete_many("w", [(j.job_id, [], None) for j in claimed])
    assert sorted(done) == sorted(j.job_id for j in jobs)
    assert service.counts()["completed"] == 5
    assert store.chunks(jobs[0].job_id) == []  # checkpoints go with the completion


def test_fail_and_retry(service, store):
    job = submit(service)
    store.claim("w", 30)
    failed = store.fail(job.job_id, "w", "ValueError: broken")
    assert failed.status == JobStatus.FAILED and failed.error == "ValueError: broken"
    again = service.retry(job.job_id)
    assert again.status == JobStatus.PENDING and again.attempts == 0 and again.error is None
    (claimed,) = store.claim("w", 30)
    assert claimed.attempts == 1


def test_retry_keeps_a_deliverys_cursor_and_clears_a_generations_progress(service, store):
    """A delivery's retry goes on from its cursor (model.Job.retry_resumes); a generation's
    starts again. Both lose the phase of the run that ended."""
    source = submit(service)
    store.claim("w", 30)
    store.complete(source.job_id, "w", [], {"patients": 12})
    push = service.push(source.job_id, {"target": "mllp", "host": "127.0.0.1", "port": 2575})[0]
    details = {"phase": "delivering", "cursor": [4, 1], "delivered": 9, "rejected": 0}
    other = submit(service)
    for job in (push, other):
        (claimed,) = store.claim("w", 30)
        assert claimed.job_id == job.job_id
        store.heartbeat(job.job_id, "w", 30, 40, details)
        store.fail(job.job_id, "w", "TargetUnreachable: gone")
    resumed, again = service.retry(push.job_id), service.retry(other.job_id)
    assert resumed.progress == 40 and resumed.status == JobStatus.PENDING
    assert resumed.progress_details == {"cursor": [4, 1], "delivered": 9, "rejected": 0}
    assert again.progress == 0 and again.progress_details == {}


def test_release_gives_attempt_back(service, store):
    job = submit(service)
    store.claim("w", 30)
    released = store.release(job.job_id, "w")
    assert released.status == JobStatus.PENDING and released.attempts == 0
    assert released.lease_owner is None


def test_reaper_requeues_then_fails_exhausted(service, store):
    job = submit(service)
    for attempt in range(1, 4):
        (claimed,) = store.claim(f"w{attempt}", 0.1)
        assert claimed.attempts == attempt
        time.sleep(0.2)
        reaped = store.reap()
        expected = JobStatus.PENDING if attempt < 3 else JobStatus.FAILED
        assert reaped == [(job.job_id, expected)]
    final = service.get(job.job_id)
    assert final.status == JobStatus.FAILED
    assert "worker lost" in final.error and "3 attempts" in final.error and "w3" in final.error
    assert store.reap() == []


def test_cancel_pending_and_running(service, store):
    pending = submit(service)
    cancelled = service.cancel(pending.job_id)
    assert cancelled.status == JobStatus.CANCELLED and cancelled.cancel_requested_at
    with pytest.raises(InvalidTransition):
        service.cancel(pending.job_id)
    running = submit(service)
    store.claim("w", 30)
    flagged = service.cancel(running.job_id)
    assert flagged.status == JobStatus.RUNNING and flagged.cancel_requested_at is not None
    assert store.heartbeat(running.job_id, "w", 30).cancel_requested_at is not None
    done = store.mark_cancelled(running.job_id, "w")
    assert done.status == JobStatus.CANCELLED and done.lease_owner is None
    retried = service.retry(running.job_id)
    assert retried.status == JobStatus.PENDING and retried.cancel_requested_at is None


def test_reaper_cancels_when_cancel_was_requested(service, store):
    job = submit(service)
    store.claim("w", 0.1)
    service.cancel(job.job_id)
    time.sleep(0.2)
    assert store.reap() == [(job.job_id, JobStatus.CANCELLED)]


def test_delete(service, store):
    job = submit(service)
    folder = service.job_dir(job.job_id)
    folder.mkdir(parents=True)
    (folder / "patients.ndjson").write_text("{}\n")
    store.claim("w", 30)
    with pytest.raises(InvalidTransition):
        service.delete(job.job_id)
    store.fail(job.job_id, "w", "x")
    with pytest.raises(JobNotFound):
        service.delete(job.job_id, owner="bob")
    service.delete(job.job_id, owner="alice")
    assert not folder.exists()
    with pytest.raises(JobNotFound):
        service.get(job.job_id)


def test_writes_that_remove_files_record_the_job_when_asked(service, store):
    """With object storage (`record_removals`), each write whose `inside` removes a job's files
    records the job in that transaction, for the sweep; without, nothing is recorded. A job
    recorded again after it was read keeps its record when the read ones are forgotten."""
    removed: list[str] = []
    failed, cancelled, completed = (submit(service) for _ in range(3))
    store.claim("w", 30, limit=3)
    store.fail(failed.job_id, "w", "x")  # no inside: nothing removed, nothing recorded
    store.record_removals = True
    store.mark_cancelled(cancelled.job_id, "w", inside=lambda j: removed.append("cancel"))
    store.complete(completed.job_id, "w", [], None)  # no inside
    store.delete(failed.job_id, inside=lambda j: removed.append("delete"))
    assert removed == ["cancel", "delete"]
    time.sleep(0.01)  # "older than 0 s" is strict: a record is not due in its own instant
    due = store.removals_due(0.0, 10)
    assert {job_id for job_id, _ in due} == {cancelled.job_id, failed.job_id}
    assert store.removals_due(3600.0, 10) == []  # none is an hour old
    assert len(store.removals_due(0.0, 1)) == 1

    time.sleep(0.01)  # a later time than the one read
    store.retry(cancelled.job_id)
    store.claim("w", 30)
    store.mark_cancelled(cancelled.job_id, "w", inside=lambda j: None)  # recorded again
    time.sleep(0.01)
    store.forget_removals(due)
    assert [job_id for job_id, _ in store.removals_due(0.0, 10)] == [cancelled.job_id]
    store.forget_removals(store.removals_due(0.0, 10))
    assert store.removals_due(0.0, 10) == []


def test_the_reaper_removes_and_records_only_the_jobs_it_ends_and_only_when_asked(service, store):
    """The reaper's `inside` (it removes a job's files) runs for a job it ends (here cancelled),
    never for one it puts back in the queue, whose files the next attempt resumes from; the one
    it ends is recorded, the other is not. With `record_removals` off no write records anything,
    whatever its `inside` removed."""
    seen: list[object] = []
    requeued, ended, unrecorded = (submit(service) for _ in range(3))
    store.claim("w", 0.1, limit=2)
    service.cancel(ended.job_id)
    time.sleep(0.2)
    store.record_removals = True
    reaped = dict(store.reap(inside=lambda job: seen.append(job.job_id)))
    assert reaped == {requeued.job_id: JobStatus.PENDING, ended.job_id: JobStatus.CANCELLED}
    assert seen == [ended.job_id]
    time.sleep(0.01)
    assert [j for j, _ in store.removals_due(0.0, 10)] == [ended.job_id]
    store.heartbeat(store.claim("w", 30, job_id=requeued.job_id)[0].job_id, "w", 30,
                    inside=lambda job: None)  # fmt: skip
    time.sleep(0.01)
    assert {j for j, _ in store.removals_due(0.0, 10)} == {ended.job_id, requeued.job_id}

    store.forget_removals(store.removals_due(0.0, 10))
    store.record_removals = False
    store.claim("w", 30, job_id=unrecorded.job_id)
    store.fail(unrecorded.job_id, "w", "x", inside=lambda job: None)
    store.delete(unrecorded.job_id, inside=lambda job: None)
    time.sleep(0.01)
    assert store.removals_due(0.0, 10) == []


def test_counts_and_active(service, store):
    for owner in ("alice", "alice", "bob"):
        submit(service, owner=owner)
    store.claim("w", 30)
    counts = service.counts()
    assert counts == {"pending": 2, "running": 1, "completed": 0, "failed": 0, "cancelled": 0}
    assert service.active_count("alice") == 2 and service.active_count("bob") == 1
    assert service.active_count("nobody") == 0


def test_api_keys(service):
    key, secret = service.create_key("ci", admin=False, max_patients=1000, max_active_jobs=2)
    assert key.key_id.startswith("key_") and secret not in key.model_dump_json()
    assert service.authenticate(secret) == key
    assert service.authenticate(secret + "x") is None
    assert service.authenticate("") is None
    admin, _ = service.create_key("root", admin=True)
    assert [k.key_id for k in service.list_keys()] == [key.key_id, admin.key_id]
    revoked = service.revoke_key(key.key_id)
    assert revoked.revoked_at is not None
    assert service.authenticate(secret) is None
    with pytest.raises(KeyNotFound):
        service.revoke_key("key_nope")
    with pytest.raises(ValueError):
        service.create_key("")


def test_wait_for_update(service, store):
    job = submit(service)
    assert service.wait_for_update(job.job_id, None, 1).job_id == job.job_id
    t0 = time.monotonic()
    assert service.wait_for_update(job.job_id, job.version, 0.3) is None
    assert time.monotonic() - t0 >= 0.25

    def later():
        time.sleep(0.3)
        store.claim("w", 30)

    threading.Thread(target=later).start()
    t0 = time.monotonic()
    seen = service.wait_for_update(job.job_id, job.version, 10)
    assert seen is not None and seen.status == JobStatus.RUNNING
    assert time.monotonic() - t0 < 2
    with pytest.raises(JobNotFound):
        service.wait_for_update(uuid4(), None, 0.1)


def test_closing_the_store_ends_every_wait_for_an_update(service, settings):
    """A thread waiting for a job's update (an event stream's) gets None once its store is
    closed, not after its timeout: serve's exit does not wait for it."""
    from patientgen.jobs.sql_store import connect

    job = submit(service)
    other = connect(settings)
    got: list[object] = []
    waiter = threading.Thread(
        target=lambda: got.append(other.wait_for_update(job.job_id, job.version, 30))
    )
    waiter.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    other.close()
    waiter.join(10)
    assert not waiter.is_alive() and got == [None]
    assert time.monotonic() - t0 < 5


def test_statuses_of_many_jobs_in_one_read(service):
    """The status of each job that exists among those asked for; the others are left out."""
    pending = submit(service)
    running = submit(service)
    ended = submit(service)
    [claimed] = service.store.claim("w", 30, job_id=running.job_id)
    assert claimed.job_id == running.job_id
    service.cancel(ended.job_id, "alice")
    gone = uuid4()
    got = service.store.statuses([pending.job_id, running.job_id, ended.job_id, gone])
    assert got == {
        pending.job_id: JobStatus.PENDING,
        running.job_id: JobStatus.RUNNING,
        ended.job_id: JobStatus.CANCELLED,
    }
    assert service.store.statuses([]) == {}


def test_wait_for_work_wakes_on_submit(service, settings):
    from patientgen.jobs.sql_store import connect

    other = connect(settings)  # another process's view, like a worker
    try:
        other.wait_for_work(0.2)  # start listening
        threading.Timer(0.3, lambda: submit(service)).start()
        t0 = time.monotonic()
        other.wait_for_work(5)
        assert time.monotonic() - t0 < 1.5
        assert len(other.claim("w", 30)) == 1
    finally:
        other.close()


def test_wait_for_work_wakes_on_a_batch_insert(service, settings):
    """One statement inserting many pending jobs wakes a waiting worker (on PostgreSQL by the
    per-statement insert trigger), and every job it inserted can be claimed."""
    from patientgen.jobs.model import NewJob
    from patientgen.jobs.sql_store import connect

    config = {"scenario": SCENARIO.model_dump(mode="json"), "formats": ["ndjson"], "chunk_size": 5}
    news = [NewJob(job_id=uuid4(), owner="alice", config=config, max_attempts=3) for _ in range(50)]
    other = connect(settings)
    try:
        other.wait_for_work(0.2)  # start listening
        threading.Timer(0.3, lambda: service.store.create_many(news)).start()
        t0 = time.monotonic()
        other.wait_for_work(5)
        assert time.monotonic() - t0 < 1.5
        assert {j.job_id for j in other.claim("w", 30, limit=100)} == {n.job_id for n in news}
    finally:
        other.close()


# -- saved scenarios (issue 12) ------------------------------------------------------------------


def test_saved_scenarios_per_owner(service):
    from patientgen.jobs.model import ScenarioNotFound

    first = service.save_scenario("Exercise A", {"total_patients": 50, "seed": 3}, "alice")
    assert (first.name, first.version, first.owner) == ("Exercise A", 1, "alice")
    assert first.scenario == Scenario(total_patients=50, seed=3).model_dump(mode="json")
    time.sleep(0.01)
    again = service.save_scenario("Exercise A", SCENARIO, "alice")  # replaced
    assert again.version == 2 and again.created_at == first.created_at
    assert again.updated_at > first.updated_at
    assert service.scenario("Exercise A", "alice").scenario == SCENARIO.model_dump(mode="json")
    service.save_scenario("drill-2", SCENARIO, "alice")
    service.save_scenario("Exercise A", SCENARIO, "bob")  # another owner's, of the same name
    listed = service.scenarios("alice")
    assert [(s.name, s.version, s.scenario) for s in listed] == [
        ("Exercise A", 2, None),
        ("drill-2", 1, None),
    ]
    with pytest.raises(ScenarioNotFound):
        service.scenario("drill-2", "bob")
    service.delete_scenario("drill-2", "alice")
    with pytest.raises(ScenarioNotFound):
        service.delete_scenario("drill-2", "alice")
    assert [s.name for s in service.scenarios("alice")] == ["Exercise A"]
    assert [s.name for s in service.scenarios("bob")] == ["Exercise A"]


def test_a_bad_saved_scenario_changes_nothing(service):
    from pydantic import ValidationError

    service.save_scenario("keep", SCENARIO, "alice")
    with pytest.raises(ValidationError):
        service.save_scenario("keep", {"total_patients": -1}, "alice")
    for bad in ("", " lead", "trail ", "a/b", "x" * 101, "semi;colon"):
        with pytest.raises(ValueError, match="scenario name"):
            service.save_scenario(bad, SCENARIO, "alice")
    (kept,) = service.scenarios("alice")
    assert kept.version == 1 and service.scenario("keep", "alice").scenario == SCENARIO.model_dump(
        mode="json"
    )


def test_conditional_saves_replace_only_what_was_read(service):
    """A new-name-only save never replaces; a replace of version N holds only while N is there,
    also when two savers race with the same version: one wins, the other changes nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from patientgen.jobs.model import ScenarioChanged

    small = Scenario(total_patients=7, seed=1)
    made = service.save_scenario("drill", small, "alice", expected=0)
    assert made.version == 1
    with pytest.raises(ScenarioChanged) as taken:
        service.save_scenario("drill", SCENARIO, "alice", expected=0)
    assert taken.value.current is not None and taken.value.current.version == 1
    assert service.scenario("drill", "alice").scenario == small.model_dump(mode="json")
    assert service.save_scenario("drill", SCENARIO, "bob", expected=0).version == 1  # bob's own

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda n: _try_save(service, Scenario(total_patients=10 + n, seed=1), 1),
                range(8),
            )
        )
    winners = [o for o in outcomes if not isinstance(o, ScenarioChanged)]
    assert len(winners) == 1 and winners[0].version == 2
    assert all(o.current.version == 2 for o in outcomes if isinstance(o, ScenarioChanged))
    assert service.scenario("drill", "alice").scenario == winners[0].scenario

    with pytest.raises(ScenarioChanged):  # stale
        service.save_scenario("drill", small, "alice", expected=1)
    service.delete_scenario("drill", "alice")
    with pytest.raises(ScenarioChanged) as gone:  # deleted since it was read
        service.save_scenario("drill", small, "alice", expected=2)
    assert gone.value.current is None
    from patientgen.jobs.model import ScenarioNotFound

    with pytest.raises(ScenarioNotFound):
        service.scenario("drill", "alice")


def _try_save(service, scenario, expected):
    from patientgen.jobs.model import ScenarioChanged

    try:
        return service.save_scenario("drill", scenario, "alice", expected=expected)
    except ScenarioChanged as exc:
        return exc


def test_a_fact_is_recorded_once_and_replaced_only_when_no_job_is_active(service, store):
    from patientgen.jobs.model import JobsActive

    assert store.fact("storage") is None
    assert store.record_fact("storage", "s3://a/p") == "s3://a/p"
    assert store.record_fact("storage", "local") == "s3://a/p"  # the first value stays
    assert store.fact("storage") == "s3://a/p"
    assert store.fact("other") is None

    job = submit(service)
    with pytest.raises(JobsActive):
        store.replace_fact_when_idle("storage", "local")
    assert store.fact("storage") == "s3://a/p"
    (running,) = store.claim("w", 60)
    assert running.job_id == job.job_id
    with pytest.raises(JobsActive):
        store.replace_fact_when_idle("storage", "local")
    store.complete(job.job_id, "w", [], None)

    assert store.replace_fact_when_idle("storage", "local") == "s3://a/p"  # what it was
    assert store.fact("storage") == "local"
    assert store.replace_fact_when_idle("new", "x") is None
    assert store.fact("new") == "x"


def test_a_turn_is_taken_by_one_caller_per_interval(store):
    """A periodic task that any process may run but one run per interval is enough for (the
    bucket sweep): take_turn gives the turn to one caller per `every` seconds, by the
    database's clock, whoever asks and however many ask at once."""
    import threading
    import time

    assert store.take_turn("sweep", 60) is True
    assert store.take_turn("sweep", 60) is False  # taken a moment ago
    assert store.take_turn("other", 60) is True  # another task's turn is its own
    time.sleep(0.3)
    assert store.take_turn("sweep", 0.2) is True  # the last was more than 0.2 s ago
    assert store.take_turn("sweep", 0.2) is False
    results: list[bool] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        results.append(store.take_turn("race", 60))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
