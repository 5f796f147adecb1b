"""`patientgen jobs patients` and `patientgen jobs patient` on a job `generate` wrote (SQLite, in
process): filters and sort agree with the NDJSON parsed here; bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import orjson
import pytest
from typer.testing import CliRunner

from patientgen.cli import _register, app

_register()


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("cli-casualties")
    env = {
        "PATIENTGEN_DATABASE_URL": f"sqlite:///{data / 'jobs.db'}",
        "PATIENTGEN_DATA_DIR": str(data),
        "PATIENTGEN_CHUNK_SIZE": "400",
        "NO_COLOR": "1",
        "COLUMNS": "250",
    }
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), env=env)

    result = run("generate", "--preset", "urban-assault", "--patients", "1000", "--seed", "4",
                 "--format", "ndjson")  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = [f for f in (data / "jobs").iterdir() if (f / "patients.ndjson").is_file()]
    lines = (folder / "patients.ndjson").read_bytes().splitlines()
    return {
        "run": run,
        "job": folder.name,
        "lines": lines,
        "records": [orjson.loads(x) for x in lines],
    }


def test_patients_filtered_and_sorted(done: dict) -> None:
    records = done["records"]
    front = records[0]["front"]
    result = done["run"]("jobs", "patients", done["job"], "--triage", "T1,T2", "--front", front,
                         "--sort", "-injured_at", "--limit", "1000", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    got = [orjson.loads(line) for line in result.stdout.splitlines()]
    wanted = [
        r for r in records if r["triage"] in ("T1", "T2") and r["front"] == records[0]["front"]
    ]
    assert wanted and [r["id"] for r in got] == [
        r["id"] for r in sorted(wanted, key=lambda r: (r["injured_at"], r["index"]))[::-1]
    ]
    table = done["run"]("jobs", "patients", done["job"], "--outcome", "KIA", "--limit", "2")
    assert table.exit_code == 0, table.output
    kia = sum(1 for r in records if r["outcome"] == "KIA")
    assert (
        f"1-2 of {kia:,} matching patients" in table.stdout and "more: --offset 2" in table.stdout
    )


def test_one_patient_by_id(done: dict) -> None:
    k = 612
    result = done["run"]("jobs", "patient", done["job"], done["records"][k]["id"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == done["records"][k]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--triage", "T9", "--sort", "age"], "unknown triage 'T9'"),
        (["--nation", "XXX"], "unknown nation 'XXX'"),
        (["--sort", "-name"], "unknown sort key '-name'"),
    ],
)
def test_bad_filters_are_one_line(done: dict, args: list[str], message: str) -> None:
    result = done["run"]("jobs", "patients", done["job"], *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_bad_ids_are_one_line(done: dict) -> None:
    for args, message in [
        ([done["job"], str(uuid4())], "has no patient"),
        ([done["job"], "nope"], "not a patient id"),
        ([str(uuid4()), str(uuid4())], "job"),
    ]:
        result = done["run"]("jobs", "patient", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_no_internal_file_in_the_job(done: dict) -> None:
    shown = done["run"]("jobs", "show", done["job"])
    assert "patients.ndjson " in shown.stdout
    assert ".idx" not in shown.stdout and "patients.attrs" not in shown.stdout
    folder = Path(shown.stdout.split("files in", 1)[1].split()[0])
    assert (folder / "patients.ndjson.idx").is_file()  # there for the reads, not listed
