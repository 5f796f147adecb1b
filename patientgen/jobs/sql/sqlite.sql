-- The named queries of the SQLite store whose SQL differs from PostgreSQL's: each has the same
-- name, parameters and columns in postgres.sql (the queries both run as written are in
-- common.sql); `sql_store.py` holds the logic once and looks each query up by name.
--
-- Differences from PostgreSQL, each by necessity:
-- * The clock. SQLite has no server: the store passes the database clock in as parameters.
--   :now is the wall time (UTC text, for display and ordering only); every lease is decided on
--   :mono, the host's boot clock (CLOCK_BOOTTIME: one clock shared by every process of the one
--   host a SQLite file can live on, never stepped), with :boot, the boot id, so a lease taken
--   before a reboot is expired by definition.
-- * Timestamps are fixed-width UTC text ('YYYY-MM-DD HH:MM:SS.ffffff'), JSON is text.
-- * No row locks: every write runs in BEGIN IMMEDIATE, which takes the database's write lock
--   first, so "lock" queries are plain reads and the per-owner lock is a no-op.
-- * No NOTIFY: waiters poll PRAGMA data_version (dialects.py).
-- * Parameters are :name (sqlite3's own style).

-- name: get_job
SELECT * FROM jobs WHERE job_id = :job_id;

-- name: lock_job
-- BEGIN IMMEDIATE already holds the write lock.
SELECT * FROM jobs WHERE job_id = :job_id;

-- name: lock_owner
-- BEGIN IMMEDIATE already serialises every writer.
SELECT 1;

-- name: insert_job
-- Nothing when the owner used the idempotency key already; else its created_at (the rest of the
-- row is what was inserted, and the columns' defaults).
INSERT INTO jobs (job_id, owner, status, config, created_at, updated_at, max_attempts,
                  idempotency_key, priority)
VALUES (:job_id, :owner, :status, :config, :now, :now, :max_attempts, :idempotency_key, :priority)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING created_at;

-- name: insert_jobs
-- Rows in bulk (Tx.insert_rows): this INSERT once per row, in one transaction.
INSERT INTO jobs (job_id, owner, status, config, created_at, updated_at, max_attempts, priority)
VALUES (:job_id, :owner, :status, :config, :now, :now, :max_attempts, :priority);

-- name: list_jobs
-- A page of every owner's jobs. :statuses is a JSON array of distinct statuses (every status
-- when the caller filters none); the keyset cursor (:after_created, :after_id) is always given
-- (the first page's lies after every job). By necessity one statement, not a LATERAL join as in
-- postgres.sql (SQLite has none): its planner searches jobs_status_created once per status in
-- order and stops after the page (migration 0009).
SELECT * FROM jobs
WHERE status IN (SELECT value FROM json_each(:statuses))
  AND (created_at, job_id) < (:after_created, :after_id)
ORDER BY created_at DESC, job_id DESC
LIMIT :limit;

-- name: list_owner_jobs
-- A page of one owner's jobs, as list_jobs, from jobs_owner_status_created.
SELECT * FROM jobs
WHERE owner = :owner
  AND status IN (SELECT value FROM json_each(:statuses))
  AND (created_at, job_id) < (:after_created, :after_id)
ORDER BY created_at DESC, job_id DESC
LIMIT :limit;

-- name: claim
-- The subquery's ORDER BY is the partial index jobs_pending.
-- With :max_patients, only small generation jobs never tried (see sql_store.claim).
UPDATE jobs SET status = :status, attempts = attempts + 1, lease_owner = :worker_id,
       lease_expires_at = :lease_until, lease_deadline = :mono + :lease_seconds,
       lease_boot = :boot, started_at = coalesce(started_at, :now), updated_at = :now,
       version = version + 1
WHERE job_id IN (SELECT job_id FROM jobs
                 WHERE status = :from_status AND (:only_id IS NULL OR job_id = :only_id)
                   AND (:max_patients IS NULL
                        OR (attempts = 0 AND config ->> '$.output_dir' IS NULL
                            AND config -> '$.delivery' IS NULL
                            AND config ->> '$.scenario.total_patients'
                                BETWEEN 1 AND min(:max_patients, config ->> '$.chunk_size')))
                 ORDER BY priority DESC, created_at, job_id
                 LIMIT :limit)
RETURNING *;

-- name: heartbeat
-- :keep_counts (a job whose chunks any worker records, see count_chunk): the snapshot's
-- chunks_done and patients_done give way to the stored ones.
UPDATE jobs SET lease_expires_at = :lease_until, lease_deadline = :mono + :lease_seconds,
       lease_boot = :boot, updated_at = :now, version = version + 1,
       progress = coalesce(:progress, progress),
       progress_details = CASE
           WHEN :keep_counts AND :progress_details IS NOT NULL
           THEN json_set(:progress_details,
                         '$.chunks_done', coalesce(progress_details ->> '$.chunks_done', 0),
                         '$.patients_done', coalesce(progress_details ->> '$.patients_done', 0))
           ELSE coalesce(:progress_details, progress_details) END
WHERE job_id = :job_id AND status = 'running' AND lease_owner = :worker_id
RETURNING *;

-- name: heartbeat_many
-- A batch's leases (runner.run_small_jobs); :job_ids is a JSON array.
UPDATE jobs SET lease_expires_at = :lease_until, lease_deadline = :mono + :lease_seconds,
       lease_boot = :boot, updated_at = :now, version = version + 1
WHERE job_id IN (SELECT value FROM json_each(:job_ids)) AND status = 'running'
  AND lease_owner = :worker_id;

-- name: record_chunk
INSERT INTO job_chunks (job_id, chunk, summary, worker_id, finished_at)
VALUES (:job_id, :chunk, :summary, :worker_id, :now)
ON CONFLICT (job_id, chunk) DO UPDATE SET
    summary = excluded.summary, worker_id = excluded.worker_id, finished_at = excluded.finished_at;

-- name: chunks
SELECT chunk, summary, worker_id, finished_at FROM job_chunks WHERE job_id = :job_id ORDER BY chunk;

-- name: delete_chunks
DELETE FROM job_chunks WHERE job_id = :job_id;

-- name: open_chunks
-- The owner opens its running job's chunk phase to helpers (sql_store.open_chunks holds the row).
INSERT INTO chunk_phases (job_id, attempt, chunks_total, opened_at)
VALUES (:job_id, :attempt, :chunks_total, :now)
ON CONFLICT (job_id) DO UPDATE SET
    attempt = excluded.attempt, chunks_total = excluded.chunks_total, opened_at = excluded.opened_at;

-- name: chunk_phase
SELECT attempt, chunks_total FROM chunk_phases WHERE job_id = :job_id;

-- name: open_phases
-- Running jobs whose chunk phase is open in their current attempt and that no one asked to
-- cancel, in the queue's order.
SELECT j.job_id FROM chunk_phases p JOIN jobs j ON j.job_id = p.job_id
WHERE j.status = 'running' AND j.attempts = p.attempt AND j.cancel_requested_at IS NULL
ORDER BY j.priority DESC, j.created_at, j.job_id
LIMIT :limit;

-- name: recorded_chunks
SELECT chunk FROM job_chunks WHERE job_id = :job_id;

-- name: chunk_claims
-- Each claim of the job and whether its lease ran out (on the boot clock, as jobs' leases).
SELECT chunk, worker_id, attempt,
       (lease_boot IS NOT :boot OR lease_deadline < :mono) AS expired
FROM chunk_claims WHERE job_id = :job_id;

-- name: claim_chunk
-- Under the job's lock (sql_store.claim_chunk): the chunk is free, or its claim expired.
INSERT INTO chunk_claims (job_id, chunk, attempt, worker_id, lease_expires_at, lease_deadline,
                          lease_boot)
VALUES (:job_id, :chunk, :attempt, :worker_id, :lease_until, :mono + :lease_seconds, :boot)
ON CONFLICT (job_id, chunk) DO UPDATE SET
    attempt = excluded.attempt, worker_id = excluded.worker_id,
    lease_expires_at = excluded.lease_expires_at, lease_deadline = excluded.lease_deadline,
    lease_boot = excluded.lease_boot;

-- name: extend_chunk
UPDATE chunk_claims SET lease_expires_at = :lease_until, lease_deadline = :mono + :lease_seconds,
       lease_boot = :boot
WHERE job_id = :job_id AND chunk = :chunk AND worker_id = :worker_id AND attempt = :attempt;

-- name: drop_chunk_claim
DELETE FROM chunk_claims
WHERE job_id = :job_id AND chunk = :chunk AND worker_id = :worker_id AND attempt = :attempt;

-- name: count_chunk
-- A chunk recorded by any worker counts in the job's progress (integer division in both);
-- :progress_details (the owner's snapshot, or NULL) replaces the rest of the details.
UPDATE jobs SET updated_at = :now, version = version + 1,
       progress = 99 * (coalesce(progress_details ->> '$.patients_done', 0) + :patients)
                  / :patients_total,
       progress_details = json_set(coalesce(:progress_details, progress_details),
           '$.chunks_done', coalesce(progress_details ->> '$.chunks_done', 0) + 1,
           '$.patients_done', coalesce(progress_details ->> '$.patients_done', 0) + :patients)
WHERE job_id = :job_id
RETURNING *;

-- name: delete_chunk_claims
DELETE FROM chunk_claims WHERE job_id = :job_id;

-- name: delete_chunk_phase
DELETE FROM chunk_phases WHERE job_id = :job_id;

-- name: finish
-- The one fenced write that ends a run (complete, fail, cancelled, released): the worker must
-- hold the lease, and a completion never lands once a cancel was asked for (:unless_cancelled).
UPDATE jobs SET status = :status, lease_owner = NULL, lease_expires_at = NULL,
       lease_deadline = NULL, lease_boot = NULL,
       attempts = max(attempts - :give_back, 0),
       progress = coalesce(:progress, progress),
       completed_at = CASE WHEN :terminal THEN :now END,
       updated_at = :now, version = version + 1,
       output_files = coalesce(:output_files, output_files),
       summary = CASE WHEN :set_summary THEN :summary ELSE summary END,
       error = :error,
       progress_details = json_set(progress_details, '$.phase', :phase)
WHERE job_id = :job_id AND status = 'running' AND lease_owner = :worker_id
  AND NOT (:unless_cancelled AND cancel_requested_at IS NOT NULL)
RETURNING *;

-- name: finish_many
-- :batch is a JSON array of {job_id, output_files, summary}; completes those still held, and
-- says which had recorded chunk checkpoints (a chunk is recorded with progress counting it).
UPDATE jobs SET status = :status, lease_owner = NULL, lease_expires_at = NULL,
       lease_deadline = NULL, lease_boot = NULL, progress = 100, completed_at = :now,
       updated_at = :now, version = version + 1, output_files = json(d.value -> 'output_files'),
       summary = json(d.value -> 'summary'), error = NULL,
       progress_details = json_set(progress_details, '$.phase', :phase)
FROM json_each(:batch) AS d
WHERE jobs.job_id = d.value ->> 'job_id' AND jobs.status = 'running'
  AND jobs.lease_owner = :worker_id AND jobs.cancel_requested_at IS NULL
RETURNING jobs.job_id, coalesce(json_extract(progress_details, '$.chunks_done'), 0) > 0 AS checkpoints;

-- name: delete_chunks_many
DELETE FROM job_chunks WHERE job_id IN (SELECT value FROM json_each(:job_ids));

-- name: expired
-- Running jobs whose lease ran out on the boot clock, or was taken before this boot.
SELECT * FROM jobs
WHERE status = 'running' AND (lease_boot IS NOT :boot OR lease_deadline < :mono);

-- name: reap_one
UPDATE jobs SET status = :status, lease_owner = NULL, lease_expires_at = NULL,
       lease_deadline = NULL, lease_boot = NULL, error = :error, updated_at = :now,
       version = version + 1, completed_at = CASE WHEN :terminal THEN :now END,
       progress_details = json_set(progress_details, '$.phase', :phase)
WHERE job_id = :job_id AND status = 'running' AND version = :version
RETURNING *;

-- name: cancel
-- A pending job ends at once (:status 'cancelled'); a running one keeps its status and its
-- worker sees cancel_requested_at at its next chunk boundary.
UPDATE jobs SET status = :status, updated_at = :now, version = version + 1,
       completed_at = CASE WHEN :terminal THEN :now ELSE completed_at END,
       progress_details = CASE WHEN :terminal
                               THEN json_set(progress_details, '$.phase', :phase)
                               ELSE progress_details END,
       cancel_requested_at = coalesce(cancel_requested_at, :now)
WHERE job_id = :job_id AND version = :version
RETURNING *;

-- name: retry
-- :keep_progress (a delivery, model.Job.retry_resumes): its cursor and report stay, without the
-- phase of the run that ended. By necessity json_remove where PostgreSQL has jsonb's `-`.
UPDATE jobs SET status = :status, attempts = 0, error = NULL,
       progress = CASE WHEN :keep_progress THEN progress ELSE 0 END,
       progress_details = CASE WHEN :keep_progress THEN json_remove(progress_details, '$.phase')
                               ELSE '{}' END,
       started_at = NULL, completed_at = NULL,
       cancel_requested_at = NULL, output_files = '[]', summary = NULL, updated_at = :now,
       version = version + 1
WHERE job_id = :job_id AND version = :version
RETURNING *;

-- name: delete_job
DELETE FROM jobs WHERE job_id = :job_id AND version = :version;

-- name: insert_key
INSERT INTO api_keys (key_id, name, secret_sha256, admin, max_patients, max_active_jobs,
                      created_at)
VALUES (:key_id, :name, :secret_sha256, :admin, :max_patients, :max_active_jobs, :created_at);

-- name: revoke_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, :now) WHERE key_id = :key_id
RETURNING key_id, name, admin, max_patients, max_active_jobs, created_at, revoked_at;

-- name: schema_table
SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name = :table;

-- name: versions
-- :job_ids is a JSON array; the poller compares these to what its waiters last saw.
SELECT job_id, version FROM jobs WHERE job_id IN (SELECT value FROM json_each(:job_ids));

-- name: statuses
-- :job_ids is a JSON array; the jobs that exist among them (the bucket sweep's one read).
SELECT job_id, status FROM jobs WHERE job_id IN (SELECT value FROM json_each(:job_ids));

-- name: put_scenario
-- Create or replace; a replacement bumps the version (version 1: just created). With :only_new
-- true an existing scenario is left alone and no row comes back.
INSERT INTO scenarios (owner, name, scenario, created_at, updated_at)
VALUES (:owner, :name, :scenario, :now, :now)
ON CONFLICT (owner, name) DO UPDATE SET
    scenario = excluded.scenario, version = scenarios.version + 1, updated_at = excluded.updated_at
    WHERE NOT :only_new
RETURNING *;

-- name: replace_scenario
-- Replace only the version the caller read; no row: it is gone or someone replaced it since.
UPDATE scenarios SET scenario = :scenario, version = version + 1, updated_at = :now
WHERE owner = :owner AND name = :name AND version = :version
RETURNING *;

-- name: record_fact
-- Only if none is recorded: the first value stays (sql_store.record_fact reads back the winner).
INSERT INTO service_facts (name, value, recorded_at) VALUES (:name, :value, :now)
ON CONFLICT (name) DO NOTHING;

-- name: put_fact
INSERT INTO service_facts (name, value, recorded_at) VALUES (:name, :value, :now)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at;

-- name: lock_jobs
-- BEGIN IMMEDIATE already keeps every other writer out until the transaction ends.
SELECT 1;

-- name: take_turn
-- As postgres.sql, on this process's clock (:now) by necessity: SQLite has no server clock. A
-- turn only paces a periodic task, so a clock that is wrong only makes it run more or less often.
INSERT INTO service_facts (name, value, recorded_at) VALUES (:name, '', :now)
ON CONFLICT (name) DO UPDATE SET recorded_at = excluded.recorded_at
WHERE julianday(service_facts.recorded_at) <= julianday(:now) - :every / 86400.0
RETURNING name;

-- name: record_removal
-- As postgres.sql, on this process's clock (:now) by necessity: it only paces the sweep.
INSERT INTO object_removals (job_id, recorded_at) VALUES (:job_id, :now)
ON CONFLICT (job_id) DO UPDATE SET recorded_at = excluded.recorded_at;

-- name: removals_due
SELECT job_id, recorded_at FROM object_removals
WHERE julianday(recorded_at) < julianday(:now) - :older_than / 86400.0
ORDER BY recorded_at, job_id
LIMIT :limit;

-- name: forget_removals
DELETE FROM object_removals
WHERE (job_id, recorded_at) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:rows)
);
