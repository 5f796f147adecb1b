-- The named queries of the PostgreSQL store whose SQL differs from SQLite's: the same names,
-- parameters and columns as sqlite.sql (the queries both run as written are in common.sql);
-- `sql_store.py` holds the logic once and looks each query up by name. Parameters are written
-- :name here and in common.sql, and turned into psycopg's %(name)s when the files are read.
--
-- Differences from SQLite, each by necessity:
-- * The clock is the server's now(): every worker on every host sees one clock, so :now, :mono
--   and :boot, which the SQLite store passes in, are ignored here.
-- * Native uuid, timestamptz and jsonb columns: text parameters are cast where the type matters.
-- * insert_jobs is a COPY (rows written by Tx.insert_rows), where SQLite runs its INSERT per row.
-- * list_jobs and list_owner_jobs merge one index scan per status (a LATERAL join, which SQLite
--   does not have): PostgreSQL's btree cannot return status IN (...) ordered by created_at.
-- * Row locks: lock_job is FOR UPDATE, claim and expired skip rows another transaction holds
--   (FOR UPDATE SKIP LOCKED), and lock_owner takes a transaction-level advisory lock per owner so
--   that the active-job count and the insert of a submit cannot interleave with another's;
--   lock_jobs holds off every write to jobs while a service fact that needs no active job
--   (the storage) is replaced.
-- * Waiters are woken by NOTIFY, sent by the trigger jobs_notify (migration 0003) on every change
--   of a job, not by statements here.

-- name: get_job
SELECT * FROM jobs WHERE job_id = :job_id::uuid;

-- name: lock_job
SELECT * FROM jobs WHERE job_id = :job_id::uuid FOR UPDATE;

-- name: lock_owner
SELECT pg_advisory_xact_lock(hashtextextended('patientgen-owner:' || :owner, 0));

-- name: insert_job
-- Nothing when the owner used the idempotency key already; else the one value the database
-- chose (the rest of the row is what was inserted, and the columns' defaults).
INSERT INTO jobs (job_id, owner, status, config, max_attempts, idempotency_key, priority)
VALUES (:job_id::uuid, :owner, :status, :config::jsonb, :max_attempts, :idempotency_key,
        :priority)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING created_at;

-- name: insert_jobs
-- Rows in bulk (Tx.insert_rows), by COPY, PostgreSQL's fastest way in: each row's values of
-- these columns, by name; the rest are the columns' defaults (the server's now()).
COPY jobs (job_id, owner, status, config, max_attempts, priority) FROM STDIN;

-- name: list_jobs
-- A page of every owner's jobs. :statuses is a JSON array of distinct statuses (every status
-- when the caller filters none); the keyset cursor (:after_created, :after_id) is always given
-- (the first page's lies after every job). One short scan of jobs_status_created per status,
-- each at most :limit rows, merged: a page of one status among millions of others reads only the
-- page. (A single scan ordered by created_at would walk past every job of the other statuses.)
SELECT j.* FROM jsonb_array_elements_text(:statuses::jsonb) AS s(status)
CROSS JOIN LATERAL (
    SELECT * FROM jobs
    WHERE status = s.status
      AND (created_at, job_id) < (:after_created::timestamptz, :after_id::uuid)
    ORDER BY created_at DESC, job_id DESC
    LIMIT :limit
) AS j
ORDER BY j.created_at DESC, j.job_id DESC
LIMIT :limit;

-- name: list_owner_jobs
-- A page of one owner's jobs, as list_jobs, from jobs_owner_status_created.
SELECT j.* FROM jsonb_array_elements_text(:statuses::jsonb) AS s(status)
CROSS JOIN LATERAL (
    SELECT * FROM jobs
    WHERE owner = :owner AND status = s.status
      AND (created_at, job_id) < (:after_created::timestamptz, :after_id::uuid)
    ORDER BY created_at DESC, job_id DESC
    LIMIT :limit
) AS j
ORDER BY j.created_at DESC, j.job_id DESC
LIMIT :limit;

-- name: claim
-- The ORDER BY is exactly the partial index jobs_pending, so a claim is a short index scan.
-- With :max_patients, only small generation jobs never tried (see sql_store.claim).
WITH next AS (
    SELECT job_id FROM jobs
    WHERE status = :from_status AND (:only_id::uuid IS NULL OR job_id = :only_id::uuid)
      AND (:max_patients::integer IS NULL
           OR (attempts = 0 AND config -> 'output_dir' IS NULL AND config -> 'delivery' IS NULL
               AND (config #>> '{scenario,total_patients}')::integer
                   BETWEEN 1 AND least(:max_patients::integer, (config ->> 'chunk_size')::integer)))
    ORDER BY priority DESC, created_at, job_id
    LIMIT :limit FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET status = :status, attempts = j.attempts + 1, lease_owner = :worker_id,
       lease_expires_at = now() + make_interval(secs => :lease_seconds),
       started_at = coalesce(j.started_at, now()), updated_at = now(), version = j.version + 1
FROM next WHERE j.job_id = next.job_id
RETURNING j.*;

-- name: heartbeat
-- :keep_counts (a job whose chunks any worker records, see count_chunk): the snapshot's
-- chunks_done and patients_done give way to the stored ones.
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease_seconds),
       updated_at = now(), version = version + 1,
       progress = coalesce(:progress, progress),
       progress_details = CASE
           WHEN :keep_counts::boolean AND :progress_details::jsonb IS NOT NULL
           THEN :progress_details::jsonb || jsonb_build_object(
               'chunks_done', coalesce((progress_details ->> 'chunks_done')::integer, 0),
               'patients_done', coalesce((progress_details ->> 'patients_done')::bigint, 0))
           ELSE coalesce(:progress_details::jsonb, progress_details) END
WHERE job_id = :job_id::uuid AND status = 'running' AND lease_owner = :worker_id
RETURNING *;

-- name: heartbeat_many
-- A batch's leases (runner.run_small_jobs); :job_ids is a JSON array.
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease_seconds),
       updated_at = now(), version = version + 1
WHERE job_id IN (SELECT jsonb_array_elements_text(:job_ids::jsonb)::uuid) AND status = 'running'
  AND lease_owner = :worker_id;

-- name: record_chunk
INSERT INTO job_chunks (job_id, chunk, summary, worker_id)
VALUES (:job_id::uuid, :chunk, :summary::jsonb, :worker_id)
ON CONFLICT (job_id, chunk) DO UPDATE SET
    summary = excluded.summary, worker_id = excluded.worker_id, finished_at = excluded.finished_at;

-- name: chunks
SELECT chunk, summary, worker_id, finished_at FROM job_chunks
WHERE job_id = :job_id::uuid ORDER BY chunk;

-- name: delete_chunks
DELETE FROM job_chunks WHERE job_id = :job_id::uuid;

-- name: open_chunks
-- The owner opens its running job's chunk phase to helpers (sql_store.open_chunks holds the row).
INSERT INTO chunk_phases (job_id, attempt, chunks_total)
VALUES (:job_id::uuid, :attempt, :chunks_total)
ON CONFLICT (job_id) DO UPDATE SET
    attempt = excluded.attempt, chunks_total = excluded.chunks_total, opened_at = now();

-- name: chunk_phase
SELECT attempt, chunks_total FROM chunk_phases WHERE job_id = :job_id::uuid;

-- name: open_phases
-- Running jobs whose chunk phase is open in their current attempt and that no one asked to
-- cancel, in the queue's order.
SELECT j.job_id::text AS job_id FROM chunk_phases p JOIN jobs j ON j.job_id = p.job_id
WHERE j.status = 'running' AND j.attempts = p.attempt AND j.cancel_requested_at IS NULL
ORDER BY j.priority DESC, j.created_at, j.job_id
LIMIT :limit;

-- name: recorded_chunks
SELECT chunk FROM job_chunks WHERE job_id = :job_id::uuid;

-- name: chunk_claims
-- Each claim of the job and whether its lease ran out (on the server's clock, as jobs' leases).
SELECT chunk, worker_id, attempt, lease_expires_at < now() AS expired
FROM chunk_claims WHERE job_id = :job_id::uuid;

-- name: claim_chunk
-- Under the job's lock (sql_store.claim_chunk): the chunk is free, or its claim expired.
INSERT INTO chunk_claims (job_id, chunk, attempt, worker_id, lease_expires_at)
VALUES (:job_id::uuid, :chunk, :attempt, :worker_id,
        now() + make_interval(secs => :lease_seconds))
ON CONFLICT (job_id, chunk) DO UPDATE SET
    attempt = excluded.attempt, worker_id = excluded.worker_id,
    lease_expires_at = excluded.lease_expires_at;

-- name: extend_chunk
UPDATE chunk_claims SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
WHERE job_id = :job_id::uuid AND chunk = :chunk AND worker_id = :worker_id
  AND attempt = :attempt;

-- name: drop_chunk_claim
DELETE FROM chunk_claims
WHERE job_id = :job_id::uuid AND chunk = :chunk AND worker_id = :worker_id
  AND attempt = :attempt;

-- name: count_chunk
-- A chunk recorded by any worker counts in the job's progress (integer division in both);
-- :progress_details (the owner's snapshot, or NULL) replaces the rest of the details.
UPDATE jobs SET updated_at = now(), version = version + 1,
       progress = 99 * (coalesce((progress_details ->> 'patients_done')::bigint, 0) + :patients)
                  / :patients_total,
       progress_details = coalesce(:progress_details::jsonb, progress_details)
                          || jsonb_build_object(
           'chunks_done', coalesce((progress_details ->> 'chunks_done')::integer, 0) + 1,
           'patients_done', coalesce((progress_details ->> 'patients_done')::bigint, 0)
                            + :patients)
WHERE job_id = :job_id::uuid
RETURNING *;

-- name: delete_chunk_claims
DELETE FROM chunk_claims WHERE job_id = :job_id::uuid;

-- name: delete_chunk_phase
DELETE FROM chunk_phases WHERE job_id = :job_id::uuid;

-- name: finish
-- The one fenced write that ends a run (complete, fail, cancelled, released): the worker must
-- hold the lease, and a completion never lands once a cancel was asked for (:unless_cancelled).
UPDATE jobs SET status = :status, lease_owner = NULL, lease_expires_at = NULL,
       attempts = greatest(attempts - :give_back, 0),
       progress = coalesce(:progress, progress),
       completed_at = CASE WHEN :terminal::boolean THEN now() END,
       updated_at = now(), version = version + 1,
       output_files = coalesce(:output_files::jsonb, output_files),
       summary = CASE WHEN :set_summary::boolean THEN :summary::jsonb ELSE summary END,
       error = :error::text,
       progress_details = jsonb_set(progress_details, '{phase}', to_jsonb(:phase::text))
WHERE job_id = :job_id::uuid AND status = 'running' AND lease_owner = :worker_id
  AND NOT (:unless_cancelled::boolean AND cancel_requested_at IS NOT NULL)
RETURNING *;

-- name: finish_many
-- :batch is a JSON array of {job_id, output_files, summary}; completes those still held, and
-- says which had recorded chunk checkpoints (a chunk is recorded with progress counting it).
UPDATE jobs j SET status = :status, lease_owner = NULL, lease_expires_at = NULL, progress = 100,
       completed_at = now(), updated_at = now(), version = j.version + 1,
       output_files = d.output_files, summary = d.summary, error = NULL,
       progress_details = jsonb_set(j.progress_details, '{phase}', to_jsonb(:phase::text))
FROM jsonb_to_recordset(:batch::jsonb) AS d(job_id uuid, output_files jsonb, summary jsonb)
WHERE j.job_id = d.job_id AND j.status = 'running' AND j.lease_owner = :worker_id
  AND j.cancel_requested_at IS NULL
RETURNING j.job_id, coalesce((j.progress_details ->> 'chunks_done')::integer, 0) > 0 AS checkpoints;

-- name: delete_chunks_many
DELETE FROM job_chunks
WHERE job_id IN (SELECT jsonb_array_elements_text(:job_ids::jsonb)::uuid);

-- name: expired
SELECT * FROM jobs WHERE status = 'running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED;

-- name: reap_one
UPDATE jobs SET status = :status, lease_owner = NULL, lease_expires_at = NULL,
       error = :error::text, updated_at = now(), version = version + 1,
       completed_at = CASE WHEN :terminal::boolean THEN now() END,
       progress_details = jsonb_set(progress_details, '{phase}', to_jsonb(:phase::text))
WHERE job_id = :job_id::uuid AND status = 'running' AND version = :version
RETURNING *;

-- name: cancel
-- A pending job ends at once (:status 'cancelled'); a running one keeps its status and its
-- worker sees cancel_requested_at at its next chunk boundary.
UPDATE jobs SET status = :status, updated_at = now(), version = version + 1,
       completed_at = CASE WHEN :terminal::boolean THEN now() ELSE completed_at END,
       progress_details = CASE WHEN :terminal::boolean
                               THEN jsonb_set(progress_details, '{phase}', to_jsonb(:phase::text))
                               ELSE progress_details END,
       cancel_requested_at = coalesce(cancel_requested_at, now())
WHERE job_id = :job_id::uuid AND version = :version
RETURNING *;

-- name: retry
-- :keep_progress (a delivery, model.Job.retry_resumes): its cursor and report stay, without the
-- phase of the run that ended.
UPDATE jobs SET status = :status, attempts = 0, error = NULL,
       progress = CASE WHEN :keep_progress::boolean THEN progress ELSE 0 END,
       progress_details = CASE WHEN :keep_progress::boolean THEN progress_details - 'phase'
                               ELSE '{}' END,
       started_at = NULL, completed_at = NULL,
       cancel_requested_at = NULL, output_files = '[]', summary = NULL, updated_at = now(),
       version = version + 1
WHERE job_id = :job_id::uuid AND version = :version
RETURNING *;

-- name: delete_job
DELETE FROM jobs WHERE job_id = :job_id::uuid AND version = :version;

-- name: insert_key
INSERT INTO api_keys (key_id, name, secret_sha256, admin, max_patients, max_active_jobs,
                      created_at)
VALUES (:key_id, :name, :secret_sha256, :admin, :max_patients, :max_active_jobs,
        :created_at::timestamptz);

-- name: revoke_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = :key_id
RETURNING key_id, name, admin, max_patients, max_active_jobs, created_at, revoked_at;

-- name: schema_table
SELECT to_regclass(:table) AS t;

-- name: versions
-- :job_ids is a JSON array (used where notifications are not, e.g. while the listener is down).
SELECT job_id::text AS job_id, version FROM jobs
WHERE job_id IN (SELECT jsonb_array_elements_text(:job_ids::jsonb)::uuid);

-- name: statuses
-- :job_ids is a JSON array; the jobs that exist among them (the bucket sweep's one read).
SELECT job_id::text AS job_id, status FROM jobs
WHERE job_id IN (SELECT jsonb_array_elements_text(:job_ids::jsonb)::uuid);

-- name: put_scenario
-- Create or replace; a replacement bumps the version (version 1: just created). With :only_new
-- true an existing scenario is left alone and no row comes back.
INSERT INTO scenarios (owner, name, scenario) VALUES (:owner, :name, :scenario::jsonb)
ON CONFLICT (owner, name) DO UPDATE SET
    scenario = excluded.scenario, version = scenarios.version + 1, updated_at = now()
    WHERE NOT :only_new::boolean
RETURNING *;

-- name: replace_scenario
-- Replace only the version the caller read; no row: it is gone or someone replaced it since.
UPDATE scenarios SET scenario = :scenario::jsonb, version = version + 1, updated_at = now()
WHERE owner = :owner AND name = :name AND version = :version
RETURNING *;

-- name: record_fact
-- Only if none is recorded: the first value stays (sql_store.record_fact reads back the winner;
-- a concurrent insert of the same name waits for the first to commit, then does nothing).
INSERT INTO service_facts (name, value, recorded_at) VALUES (:name, :value, now())
ON CONFLICT (name) DO NOTHING;

-- name: put_fact
INSERT INTO service_facts (name, value, recorded_at) VALUES (:name, :value, now())
ON CONFLICT (name) DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at;

-- name: lock_jobs
-- No job is inserted or changes status until the transaction ends (SHARE conflicts with every
-- write to the table, not with reads).
LOCK TABLE jobs IN SHARE MODE;

-- name: take_turn
-- A row back: the turn is the caller's (nobody took it within :every seconds by the server's
-- clock); none: not yet. The ON CONFLICT update waits for a concurrent caller's commit, then
-- sees its new time.
INSERT INTO service_facts (name, value, recorded_at) VALUES (:name, '', now())
ON CONFLICT (name) DO UPDATE SET recorded_at = now()
WHERE service_facts.recorded_at <= now() - :every * interval '1 second'
RETURNING name;

-- name: record_removal
-- A fenced write removed this job's files: the sweep checks its objects once the write's
-- process had time to delete them itself (migration 0010). Recorded again, the time moves.
INSERT INTO object_removals (job_id, recorded_at) VALUES (:job_id::uuid, now())
ON CONFLICT (job_id) DO UPDATE SET recorded_at = excluded.recorded_at;

-- name: removals_due
-- The jobs recorded more than :older_than seconds ago, oldest first, with the time recorded
-- (its text: what forget_removals is given back).
SELECT job_id::text AS job_id, recorded_at::text AS recorded_at FROM object_removals
WHERE recorded_at < now() - :older_than * interval '1 second'
ORDER BY recorded_at, job_id
LIMIT :limit;

-- name: forget_removals
-- :rows is a JSON array of [job_id, recorded_at] as removals_due read them: a job recorded
-- again since keeps its row.
DELETE FROM object_removals AS r
USING jsonb_array_elements(:rows::jsonb) AS x(pair)
WHERE r.job_id = (x.pair ->> 0)::uuid AND r.recorded_at = (x.pair ->> 1)::timestamptz;
