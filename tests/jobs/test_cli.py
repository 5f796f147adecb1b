"""The job CLI: `jobs ...`, `db ...`, `worker`, `generate` (as a recorded, resumable job).

Every bad input to every command: exit code 2, one line on stderr starting with `error:`, and
nothing changed in the store. Run in-process (Typer's runner) against SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from patientgen.cli import _register, app
from patientgen.jobs.model import JobStatus
from patientgen.scenario import Scenario
from tests.jobs.helpers import SCRIPT, env_for, snapshot

_register()


@pytest.fixture
def cli(settings):
    runner = CliRunner()
    env = {
        "PATIENTGEN_DATABASE_URL": settings.database_url,
        "PATIENTGEN_DATA_DIR": str(settings.data_dir),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }

    def run(*args: str):
        return runner.invoke(app, list(args), env=env)

    return run


@pytest.fixture
def jobs(service, store):
    scenario = Scenario(total_patients=5)
    pending = service.submit(scenario, ["ndjson"], "local")[0]
    running = service.submit(scenario, ["ndjson"], "local")[0]
    completed = service.submit(scenario, ["ndjson"], "local")[0]
    claimed = store.claim("w", 60, limit=2)
    assert [j.job_id for j in claimed] == [pending.job_id, running.job_id]
    store.release(pending.job_id, "w")
    (c,) = store.claim("w2", 60, job_id=completed.job_id)
    store.complete(c.job_id, "w2", [], None)
    return {"pending": pending.job_id, "running": running.job_id, "completed": completed.job_id}


def bad_inputs(jobs, tmp_path):
    p, r, c, unknown = jobs["pending"], jobs["running"], jobs["completed"], uuid4()
    bad_scenario = tmp_path / "bad.json"
    bad_scenario.write_text('{"total_patients": 0}')
    return [
        (["jobs", "submit"], "exactly one"),
        (["jobs", "submit", "--preset", "nope"], "unknown preset"),
        (["jobs", "submit", "--scenario", str(bad_scenario)], "total_patients"),
        (["jobs", "submit", "--scenario", str(tmp_path / "missing.json")], "cannot read"),
        (["jobs", "submit", "--preset", "peacekeeping", "--patients", "many"], "--patients"),
        (["jobs", "submit", "--preset", "peacekeeping", "--format", "xml"], "xml"),
        (
            [
                "jobs",
                "submit",
                "--preset",
                "peacekeeping",
                "--format",
                "mel,cards",
                "--patients",
                "20001",
            ],
            "20,000",
        ),
        (["jobs", "submit", "--preset", "peacekeeping", "--priority", "high"], "--priority"),
        (["jobs", "submit", "--preset", "peacekeeping", "--priority", "5000"], "--priority"),
        (["jobs", "submit", "--preset", "peacekeeping", "--bogus"], "--bogus"),
        (["jobs", "submit", "--preset", "peacekeeping", "--database-url", "mysql://x"], "URL"),
        (["jobs", "list", "--limit", "ten"], "--limit"),
        (["jobs", "list", "--limit", "0"], "limit"),
        (["jobs", "list", "--status", "sleeping"], "status"),
        (["jobs", "list", "--cursor", "garbage!"], "cursor"),
        (["jobs", "list", "extra"], "extra"),
        (["jobs", "show"], "missing argument 'JOB_ID'"),
        (["jobs", "show", "not-a-uuid"], "not a job id"),
        (["jobs", "show", str(unknown)], "not found"),
        (["jobs", "show", str(p), "--bogus"], "--bogus"),
        (["jobs", "cancel", str(unknown)], "not found"),
        (["jobs", "cancel", str(c)], "cannot cancel a completed job"),
        (["jobs", "cancel"], "missing argument 'JOB_ID'"),
        (["jobs", "retry", str(p)], "cannot retry a pending job"),
        (["jobs", "retry", str(c)], "cannot retry a completed job"),
        (["jobs", "delete", str(r)], "cannot delete a running job"),
        (["jobs", "delete", "xyz"], "not a job id"),
        (["db", "upgrade", "--revision", "9999"], "unknown revision"),
        (["db", "status", "--bogus"], "--bogus"),
        (["worker", "--concurrency", "0"], "--concurrency"),
        (["worker", "--concurrency", "four"], "--concurrency"),
        (["worker", "--lease-seconds", "long"], "--lease-seconds"),
        (["worker", "--log-level", "loud"], "--log-level"),
        (["worker", "now"], "now"),
        (["generate", "--resume", "nope"], "not a job id"),
        (["generate", "--resume", str(p), "--preset", "peacekeeping"], "--preset"),
        (["generate", "--resume", str(unknown)], "not found"),
        (["generate", "--preset", "peacekeeping", "--chunk-size", "0"], "--chunk-size"),
        (
            ["generate", "--preset", "peacekeeping", "--format", "cards", "--patients", "20001"],
            "20,000",
        ),
    ]


def test_bad_input_exits_2_with_one_line_and_changes_nothing(cli, service, jobs, tmp_path):
    before = snapshot(service)
    for args, expected in bad_inputs(jobs, tmp_path):
        result = cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("error: ") and expected in lines[0], (args, lines)
        assert snapshot(service) == before, args


def test_jobs_commands(cli, service, jobs):
    submitted = cli(
        "jobs",
        "submit",
        "--preset",
        "peacekeeping",
        "--patients",
        "7",
        "--format",
        "ndjson,csv",
        "--priority",
        "3",
    )
    assert submitted.exit_code == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    job = service.get(job_id)
    assert job.status == JobStatus.PENDING and job.priority == 3
    assert job.config["scenario"]["total_patients"] == 7
    assert job.config["formats"] == ["ndjson", "csv"]

    shown = cli("jobs", "show", job_id, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["job_id"] == job_id
    assert job_id in cli("jobs", "show", job_id).stdout
    listed = json.loads(cli("jobs", "list", "--json", "--status", "pending").stdout)
    assert {j["job_id"] for j in listed["items"]} == {job_id, str(jobs["pending"])}
    assert job_id in cli("jobs", "list").stdout

    assert cli("jobs", "cancel", job_id).exit_code == 0
    assert service.get(job_id).status == JobStatus.CANCELLED
    assert cli("jobs", "retry", job_id).exit_code == 0
    assert service.get(job_id).status == JobStatus.PENDING
    assert cli("jobs", "delete", job_id).exit_code == 0
    assert cli("jobs", "show", job_id).exit_code == 2

    status = cli("db", "status")
    assert status.exit_code == 0 and "up to date" in status.stdout
    assert cli("db", "upgrade").exit_code == 0


def test_generate_records_a_resumable_job(settings, service, tmp_path):
    env = env_for(settings)

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        """The installed `patientgen COMMAND` in tmp_path, with the settings' environment."""
        return subprocess.run(
            [str(SCRIPT), *command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    args = ["--preset", "peacekeeping", "--patients", "12", "--format", "ndjson,csv"]
    result = run("generate", *args)
    assert result.returncode == 0, result.stderr
    (job,) = service.list().items
    assert job.status == JobStatus.COMPLETED and job.owner == "local"
    folder = service.job_dir(job.job_id)
    assert (folder / "patients.csv").is_file() and str(folder) in result.stdout.replace("\n", "")

    # a job submitted for workers elsewhere, run here with --resume, into --out
    queued = run("jobs", "submit", *args)
    job_id = queued.stdout.strip()
    resumed = run("generate", "--resume", job_id)
    assert resumed.returncode == 0, resumed.stderr
    second = service.get(job_id)
    assert second.status == JobStatus.COMPLETED
    assert {f["sha256"] for f in second.output_files} == {f["sha256"] for f in job.output_files}

    out = tmp_path / "elsewhere"
    elsewhere = run("generate", *args, "--out", str(out))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (out / "patients.ndjson").is_file() and (out / "manifest.json").is_file()
    again = run("generate", "--resume", job_id)
    assert again.returncode == 0 and "already completed" in again.stderr


def test_saved_scenario_commands(cli, service, tmp_path):
    made = cli("scenario", "save", "Exercise A", "--preset", "peacekeeping", "--patients", "40")
    assert made.exit_code == 0, made.output
    assert made.stdout.strip() == "Exercise A: version 1"
    template = cli("scenario", "template", "--preset", "urban-assault")
    path = tmp_path / "mine.json"
    path.write_text(template.stdout)
    again = cli("scenario", "save", "Exercise A", "--scenario", str(path), "--seed", "9")
    assert again.exit_code == 0 and again.stdout.strip() == "Exercise A: version 2"
    listed = cli("scenario", "list", "--json")
    assert [(s["name"], s["version"]) for s in json.loads(listed.stdout)] == [("Exercise A", 2)]
    shown = json.loads(cli("scenario", "show", "Exercise A").stdout)
    assert shown["seed"] == 9 and shown == service.scenario("Exercise A").scenario
    # bad input: one line, exit 2, nothing saved
    for args in (
        ("scenario", "save", "bad/name", "--preset", "peacekeeping"),
        ("scenario", "save", "Exercise A", "--preset", "nope"),
        ("scenario", "save", "Exercise A", "--preset", "peacekeeping", "--patients", "-3"),
        ("scenario", "save", "Exercise A", "--preset", "peacekeeping", "--new"),
        ("scenario", "show", "missing"),
        ("scenario", "delete", "missing"),
    ):
        bad = cli(*args)
        assert bad.exit_code == 2, (args, bad.output)
        assert bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    assert service.scenario("Exercise A").version == 2
    assert cli("scenario", "delete", "Exercise A").exit_code == 0
    assert service.scenarios() == []


def test_a_deliverys_credentials_are_never_printed(cli, service, jobs):
    """`jobs show --json` and `jobs list --json` print a delivery's config with its
    authorization hidden, as the API does."""
    target = {"target": "fhir", "url": "http://127.0.0.1:9/fhir", "authorization": "Bearer s3cret"}
    delivery, _ = service.push(jobs["completed"], target)
    shown = cli("jobs", "show", str(delivery.job_id), "--json")
    listed = cli("jobs", "list", "--json")
    assert shown.exit_code == 0 and listed.exit_code == 0, shown.output
    for output in (shown.stdout, listed.stdout):
        assert "s3cret" not in output and "(hidden)" in output
    kept = service.get(delivery.job_id).config["delivery"]["authorization"]  # sealed at rest
    assert kept.startswith("sealed:v1:") and "s3cret" not in kept
