"""One job on three hosts (issue 13, item 4): network namespaces made by the test (tests/netns.py),
joined by a bridge, sharing one PostgreSQL and one S3 server that listen only on the bridge's
address (PostgreSQL through a relay to the suite's server; the S3 server is Ceph's gateway,
tests/s3_server.py).

Host b runs one worker process, which takes the job; host a runs two, which help; host c runs
the API (`serve --workers 0`), to which the test submits the job over HTTP. Once both worker
hosts have written chunks and host b holds a chunk, every process of host b is killed (-9).
Then:
- host a resumes the job (attempt 2) and completes it once;
- only the chunks host b held when it died are written twice: the chunks it had recorded are
  joined from the bucket (without the parts shared, host a wrote them all again);
- every output, downloaded over HTTP from host c (which ran nothing), has the sha256 of a clean
  in-process run on the local disk, as does every object in the bucket, where no part or
  unfinished upload is left.

Skipped, saying why, where namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from patientgen.formats import bundle
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from patientgen.settings import Settings
from tests import netns, s3_server
from tests.jobs.helpers import SCRIPT
from tests.support import free_port, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(bool(netns.skip_reason()), reason=str(netns.skip_reason())),
]

FORMATS = ["ndjson", "csv", "fhir"]
PATIENTS = 12_000
CHUNK = 1_000
SCENARIO = Scenario(name="three hosts", total_patients=PATIENTS, seed=34)


def _through(url: str, host: str, port: int) -> str:
    """The database URL with its server at host:port (the relay) instead."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}:{port}"))


def _writes(log: Path, job_id: str) -> list[int]:
    pattern = rf"job {job_id}: chunk (\d+) \[\d+, \d+\) written"
    return [int(m) for m in re.findall(pattern, log.read_text(errors="replace"))]


def _claims(url: str, job_id: str) -> dict[int, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT chunk, worker_id FROM chunk_claims WHERE job_id = %s::uuid", (job_id,)
        ).fetchall()
    return {int(chunk): str(worker) for chunk, worker in rows}


def test_three_hosts_one_host_killed(pg_database_factory, tmp_path):
    from patientgen.jobs import migrations

    url = pg_database_factory()
    migrations.upgrade(url)
    reference = {
        f.name: f.sha256
        for f in bundle.write_all(SCENARIO, FORMATS, tmp_path / "reference", chunk_size=CHUNK)
    }
    bucket = f"hosts-{uuid.uuid4().hex[:16]}"
    pg = urlsplit(url)
    with netns.Network.create(["a", "b", "c"]) as net:
        relay = s3_server.Gate(pg.port or 5432, target_host=pg.hostname or "", host=net.gateway)
        try:
            with s3_server.running(tmp_path / "ceph", host=net.gateway) as s3:
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")},
                    "PATIENTGEN_DATABASE_URL": _through(url, net.gateway, relay.port),
                    "PATIENTGEN_LEASE_SECONDS": "4",
                    "PATIENTGEN_CHUNK_SIZE": str(CHUNK),
                    "PATIENTGEN_POLL_INTERVAL": "0.1",
                    # paced chunks: host a's workers start while host b still writes (on a
                    # loaded machine host b alone wrote every chunk first; at 0.3 s it had
                    # written all 12 when host a wrote its first: a claim of b never came)
                    "PATIENTGEN_CHUNK_DELAY": "1.0",
                    "PATIENTGEN_STORAGE_URL": f"s3://{bucket}/pg",
                    "PATIENTGEN_STORAGE_ENDPOINT": s3.endpoint,
                    "PATIENTGEN_STORAGE_REGION": s3_server.REGION,
                    "PATIENTGEN_STORAGE_ACCESS_KEY": s3_server.ACCESS_KEY,
                    "PATIENTGEN_STORAGE_SECRET_KEY": s3_server.SECRET_KEY,
                    "PYTHONUNBUFFERED": "1",
                    "NO_COLOR": "1",
                }
                _run(net, env, tmp_path, url, reference, s3.endpoint, bucket)
        finally:
            relay.stop()


def _run(net, env, tmp_path: Path, url: str, reference, endpoint: str, bucket: str) -> None:
    logs = {host: tmp_path / f"{host}.log" for host in ("a", "b", "c")}

    def start(host: str, *argv: str) -> subprocess.Popen:
        with open(logs[host], "ab") as out:  # the child has its own copy of the descriptor
            return net.popen(
                host,
                [str(SCRIPT), *argv],
                env={**env, "PATIENTGEN_DATA_DIR": str(tmp_path / f"host-{host}")},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    port = free_port()
    api_host = net.address("c")
    start("c", "serve", "--host", api_host, "--port", str(port), "--workers", "0", "--auth", "off")
    api = f"http://{api_host}:{port}/api/v1"
    wait_until(lambda: _answers(f"http://{api_host}:{port}/healthz"), timeout=60, step=0.2)
    with httpx.Client(timeout=60) as http:
        submitted = http.post(
            f"{api}/jobs",
            json={"scenario": SCENARIO.model_dump(mode="json"), "formats": FORMATS},
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        # host b takes the job (its owner), then host a's two workers help
        workers = {"b": start("b", "worker")}
        wait_until(lambda: http.get(f"{api}/jobs/{job_id}").json()["status"] == "running")
        workers["a"] = start("a", "worker", "--concurrency", "2")

        victim, survivor = "b", "a"
        pids: set[int] = set()

        def mid_chunk() -> bool:  # both hosts wrote chunks, and host b holds one now
            pids.update(_pids(workers[victim].pid))  # the worker command and its slots
            claims = _claims(url, job_id)
            return all(_writes(logs[h], job_id) for h in workers) and any(
                _pid_of(w) in pids for w in claims.values()
            )

        wait_until(mid_chunk, timeout=180, step=0.05)
        # host b loses every process at once; the chunks it held then are read right after
        # (a dead worker's claims stay until their lease expires)
        os.killpg(workers[victim].pid, signal.SIGKILL)
        held = {c for c, w in _claims(url, job_id).items() if _pid_of(w) in pids}
        assert held
        written_before = {h: _writes(logs[h], job_id) for h in workers}

        def done():
            job = http.get(f"{api}/jobs/{job_id}").json()
            assert job["status"] not in ("failed", "cancelled"), job
            return job["status"] == "completed" and job

        job = wait_until(done, timeout=300, step=0.5)
        assert job["attempts"] == 2  # host a resumed the job of the owner it lost
        writes = written_before[victim] + _writes(logs[survivor], job_id)
        twice = {c for c in writes if writes.count(c) > 1}
        assert sorted(set(writes)) == list(range(PATIENTS // CHUNK))
        assert twice <= held, (twice, held)
        # every output over HTTP from host c, which ran nothing
        for listed in job["output_files"]:
            got = http.get(f"{api}/jobs/{job_id}/files/{listed['name']}")
            assert got.status_code == 200
            assert hashlib.sha256(got.content).hexdigest() == reference[listed["name"]]
    prefix = f"pg/jobs/{job_id}/"
    wait_until(lambda: not s3_server.keys(endpoint, bucket, prefix + ".parts/"), timeout=30)
    stored = s3_server.objects(endpoint, bucket, prefix)
    assert {k[len(prefix) :]: hashlib.sha256(v).hexdigest() for k, v in stored.items()} == reference
    assert s3_server.uploads(endpoint, bucket) == []
    # the dead owner's working folder on host b is its host's to sweep (no fenced write of
    # another host removes it); host a, which completed the job, keeps its whole copy
    dead_owner = tmp_path / "host-b" / "jobs" / job_id
    assert (dead_owner / ".parts").is_dir()
    for host in ("b", "a"):
        settings = Settings(
            database_url=url,
            data_dir=tmp_path / f"host-{host}",
            storage_url=f"s3://{bucket}/pg",
            storage_endpoint=endpoint,
            storage_region=s3_server.REGION,
            storage_access_key=s3_server.ACCESS_KEY,
            storage_secret_key=s3_server.SECRET_KEY,
        )
        with JobService.open(settings) as service:
            service.files.sweep(service.store)
    assert not dead_owner.exists()
    kept = tmp_path / "host-a" / "jobs" / job_id
    assert (kept / "manifest.json").is_file() and not (kept / ".parts").exists()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _pid_of(worker_id: str) -> int:
    """The process id in a worker id (host-pid-start)."""
    return int(worker_id.rsplit("-", 2)[1])


def _pids(leader: int) -> set[int]:
    """The processes of the group led by `leader` (a worker command and its slots)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == leader:  # the process group id
                found.add(int(entry.name))
    return found
