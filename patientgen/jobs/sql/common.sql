-- The named queries both stores run as written, on SQLite and on PostgreSQL alike (loaded with
-- each dialect's own file, sqlite.sql or postgres.sql, which hold only the queries whose SQL
-- differs). A name is written once: in this file, or in both dialect files.

-- name: find_idempotent
SELECT * FROM jobs WHERE owner = :owner AND idempotency_key = :idempotency_key;

-- name: active_count
SELECT count(*) AS n FROM jobs WHERE owner = :owner AND status IN ('pending', 'running');

-- name: ping
-- Whether the database answers (readiness): no table is read.
SELECT 1 AS ok;

-- name: counts
SELECT status, count(*) AS n FROM jobs GROUP BY status;

-- name: key_by_hash
SELECT key_id, name, admin, max_patients, max_active_jobs, created_at, revoked_at
FROM api_keys WHERE secret_sha256 = :secret_sha256;

-- name: list_keys
SELECT key_id, name, admin, max_patients, max_active_jobs, created_at, revoked_at
FROM api_keys ORDER BY created_at;

-- name: schema_version
SELECT version_num FROM patientgen_schema_version;

-- name: get_scenario
SELECT * FROM scenarios WHERE owner = :owner AND name = :name;

-- name: list_scenarios
SELECT owner, name, version, created_at, updated_at FROM scenarios WHERE owner = :owner
ORDER BY name;

-- name: delete_scenario
DELETE FROM scenarios WHERE owner = :owner AND name = :name;

-- name: fact
SELECT value FROM service_facts WHERE name = :name;

-- name: active_jobs
SELECT count(*) AS n FROM jobs WHERE status IN ('pending', 'running');
