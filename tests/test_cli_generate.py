"""`patientgen generate` / `patientgen presets` as a user runs them: the console script."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from formats_support import digests

from patientgen.scenario import PRESETS

SCRIPT = Path(sys.executable).with_name("patientgen")  # the console script `make test` installs


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_presets_lists_every_preset(tmp_path) -> None:
    result = cli("presets", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in PRESETS:
        assert name in result.stdout


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    invalid = tmp_path / "invalid.json"
    invalid.write_text(
        json.dumps(
            {
                "total_patients": 0,
                "injury_mix": {"disease": 0.5, "non_battle_injury": 0.2, "battle_injury": 0.2},
                "colour": "blue",
            }
        )
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    return [
        (["--preset", "no-such-preset"], "unknown preset"),
        (["--preset", "peacekeeping", "--scenario", str(invalid)], "exactly one"),
        ([], "exactly one"),
        (["--scenario", str(tmp_path / "missing.json")], "cannot read"),
        (["--scenario", str(tmp_path)], "cannot read"),
        (["--scenario", str(broken)], "invalid scenario"),
        (["--scenario", str(invalid)], "total_patients"),
        (["--preset", "peacekeeping", "--format", "json,xml"], "xml"),
        (["--preset", "peacekeeping", "--format", ""], "format"),
        (["--preset", "peacekeeping", "--patients", "0"], "total_patients"),
        (["--preset", "peacekeeping", "--patients", "10000001"], "total_patients"),
        (["--preset", "peacekeeping", "--patients", "many"], "--patients"),
        (["--preset", "peacekeeping", "--seed", "-1"], "seed"),
        (["--preset", "peacekeeping", "--bogus"], "unexpected"),
    ]


def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for args, expected in _bad_inputs(tmp_path):
        out = tmp_path / "out"
        result = cli("generate", *args, "--out", str(out), cwd=work)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("error: ") and expected in lines[0], (args, lines)
        assert not out.exists(), args
        assert list(work.iterdir()) == [], args
    # every problem of one scenario file is reported at once, in one line
    result = cli("generate", "--scenario", str(tmp_path / "invalid.json"), cwd=work)
    line = result.stderr.strip()
    assert "total_patients" in line and "injury_mix" in line and "colour" in line


def test_out_that_is_a_file_is_bad_input(tmp_path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = cli("generate", "--preset", "peacekeeping", "--out", str(target / "x"), cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert target.read_text() == "x"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_that_cannot_be_made_is_bad_input(tmp_path) -> None:
    """An --out folder that cannot be made (here under /proc, where mkdir fails whoever runs
    it) is refused before any job exists: one line, exit 2, no store made. Before, the job was
    submitted and run, then failed at its join with a traceback, and stayed in the store."""
    work = tmp_path / "work"
    work.mkdir()
    out = Path("/proc") / f"patientgen-{os.getpid()}" / "out"
    result = cli("generate", "--preset", "peacekeeping", "--patients", "5", "--out", str(out),
                 cwd=work)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: --out: cannot write to {out}"), lines
    assert list(work.iterdir()) == []


def test_out_check_leaves_no_folder_behind(tmp_path) -> None:
    """The --out check makes the folder to see that it can, and removes what it made: a run
    refused afterwards for another reason leaves nothing."""
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "new" / "deeper" / "out"
    result = cli("generate", "--preset", "peacekeeping", "--chunk-size", "0", "--out", str(out),
                 cwd=work)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "new").exists()


def test_generate_writes_files_and_is_byte_identical_across_runs(tmp_path) -> None:
    args = ["--preset", "urban-assault", "--patients", "400", "--format", "json,ndjson,csv,fhir"]
    first = cli("generate", *args, "--out", "a", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "400" in first.stdout and "Summary" in first.stdout
    second = cli("generate", *args, "--out", "b", "--chunk-size", "77", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert a == b
    assert {"patients.json", "patients.csv", "fhir/Patient.ndjson", "manifest.json"} <= set(a)
    other = cli("generate", *args, "--seed", "1", "--format", "ndjson", "--out", "c", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert digests(tmp_path / "c")["patients.ndjson"] != a["patients.ndjson"]


def test_generate_transaction_bundles(tmp_path) -> None:
    """`--format fhir-bundle`: one bundle per casualty, the same bytes in one chunk or many."""
    args = ["--preset", "mass-casualty-drill", "--patients", "60", "--format", "fhir-bundle"]
    one = cli("generate", *args, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    many = cli("generate", *args, "--out", "many", "--chunk-size", "7", cwd=tmp_path)
    assert many.returncode == 0, many.stderr
    found = digests(tmp_path / "one")
    assert found == digests(tmp_path / "many")
    assert set(found) == {"fhir-bundles.ndjson", "summary.json", "manifest.json"}
    assert (tmp_path / "one" / "fhir-bundles.ndjson").read_bytes().count(b"\n") == 60


def test_generate_exercise_package(tmp_path) -> None:
    """`--format mel,cards`: the inject list and the cards, the same bytes in one chunk or many."""
    args = ["--preset", "urban-assault", "--patients", "50", "--format", "mel,cards"]
    one = cli("generate", *args, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    many = cli("generate", *args, "--out", "many", "--chunk-size", "9", cwd=tmp_path)
    assert many.returncode == 0, many.stderr
    found = digests(tmp_path / "one")
    assert found == digests(tmp_path / "many")
    assert set(found) == {"mel.csv", "cards.pdf", "summary.json", "manifest.json"}
    assert (tmp_path / "one" / "cards.pdf").read_bytes().startswith(b"%PDF-")
    refused = cli("generate", "--preset", "urban-assault", "--patients", "20001", "--format",
                  "cards", "--out", "big", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "20,000" in refused.stderr
    assert not (tmp_path / "big").exists()


def test_generate_from_scenario_file(tmp_path) -> None:
    scenario = PRESETS["training-exercise"].scenario.model_dump(mode="json")
    scenario["total_patients"] = 50
    (tmp_path / "s.json").write_text(json.dumps(scenario))
    result = cli("generate", "--scenario", "s.json", "--format", "csv", "--out", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(digests(tmp_path / "o")) == ["manifest.json", "patients.csv", "summary.json"]
    with open(tmp_path / "o" / "patients.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == 51


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")],
)
def test_a_scenario_file_with_a_byte_order_mark_is_read(tmp_path, encoding, bom) -> None:
    """Found by probing: the template saved by Windows Notepad (UTF-8 with a byte order mark) or
    redirected by Windows PowerShell 5 (UTF-16) was "Invalid JSON at line 1 column 1"."""
    scenario = PRESETS["training-exercise"].scenario.model_dump(mode="json")
    scenario["name"] = "Übung Nord"
    (tmp_path / "s.json").write_bytes(
        bom + json.dumps(scenario, ensure_ascii=False).encode(encoding)
    )
    result = cli("generate", "--scenario", "s.json", "--patients", "5", "--format", "csv",
                 "--out", "o", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_bytes())
    assert manifest["scenario"]["name"] == "Übung Nord"


# -- issue 9, finding 9: `generate --out DIR` removes only what the job itself wrote -------------

#: A user's own files in an output folder that look like outputs of formats not asked for (or like
#: temporary files of a writer): the job must leave every one of them as it was.
USER_FILES = {
    "patients.csv": b"my,own,table\r\n1,2,3\r\n",
    "patients.json": b'["not", "generated"]\n',
    "fhir/Patient.ndjson": b'{"resourceType": "Patient", "id": "mine"}\n',
    "fhir/Location.ndjson": b'{"resourceType": "Location", "id": "mine"}\n',
    "notes.tmp-1": b"a draft\n",
    "patients.ndjson.tmp-77-1": b"someone else's half file\n",
}
GENERATED = {
    "patients.ndjson", "patients.ndjson.idx", "patients.attrs", "patients.attrs.json",
    "summary.json", "manifest.json",
}  # fmt: skip


def _put_user_files(folder: Path) -> None:
    for name, data in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _assert_user_files_kept(folder: Path) -> None:
    for name, data in USER_FILES.items():
        assert (folder / name).is_file(), f"{name} was removed"
        assert (folder / name).read_bytes() == data, f"{name} was changed"


def _generate(settings, *args: str, cwd: Path, **env: object) -> subprocess.CompletedProcess[str]:
    from tests.jobs.helpers import env_for

    return subprocess.run(
        [str(SCRIPT), "generate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env_for(settings, **env),
    )


ARGS = ("--preset", "peacekeeping", "--patients", "20", "--format", "ndjson")


def _assert_same_as_a_clean_run(settings, out: Path, tmp_path: Path) -> None:
    """`out` holds the user's files and the job's, the latter identical to a clean run's."""
    reference = _generate(settings, *ARGS, "--out", str(tmp_path / "ref"), cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    written = digests(out)
    assert set(written) == GENERATED | set(USER_FILES)
    assert {name: written[name] for name in GENERATED} == digests(tmp_path / "ref")


def test_generate_out_keeps_files_it_did_not_write(settings, tmp_path) -> None:
    out = tmp_path / "out"
    _put_user_files(out)
    result = _generate(settings, *ARGS, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_user_files_kept(out)
    # the job's own files are there, and the same as in a folder of their own
    _assert_same_as_a_clean_run(settings, out, tmp_path)


def _interrupted(settings, out: Path, cwd: Path, chunk_size: int) -> str:
    """`generate --out out` stopped by Ctrl-C after its first chunk is written; the job id."""
    import signal
    import time

    from tests.jobs.helpers import env_for

    proc = subprocess.Popen(
        [str(SCRIPT), "generate", *ARGS, "--out", str(out)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(settings, chunk_size=chunk_size, chunk_delay=3),
    )
    try:
        deadline = time.monotonic() + 60
        parts = Path(settings.data_dir) / "jobs"
        while not [p for p in parts.glob("*/.parts/*") if ".tmp-" not in p.name]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    return stderr.strip().split()[-1]


@pytest.mark.parametrize("chunk_size", [5, 1000], ids=["four-chunks", "one-chunk"])
def test_resume_into_the_same_out_is_byte_identical(settings, tmp_path, chunk_size) -> None:
    out = tmp_path / "out"
    _put_user_files(out)
    job_id = _interrupted(settings, out, tmp_path, chunk_size)
    _assert_user_files_kept(out)
    resumed = _generate(settings, "--resume", job_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _assert_user_files_kept(out)
    _assert_same_as_a_clean_run(settings, out, tmp_path)
    assert not list((Path(settings.data_dir) / "jobs").glob("*/.parts"))


def test_out_inside_the_data_folder_is_refused(tmp_path) -> None:
    """Found by probing: `generate --out` naming another job's folder under the data folder
    overwrote that completed job's files with its own (the job still said completed, its
    downloads served the other job's patients). A folder inside the data folder is the
    service's: refused in one line, before any job exists."""
    first = cli("generate", "--preset", "peacekeeping", "--patients", "5", "--format", "csv",
                cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    data = tmp_path / "patientgen-data"
    (folder,) = [p for p in (data / "jobs").iterdir() if not p.name.startswith(".")]
    before = digests(folder)
    for out in (folder, data, data / "jobs" / "new"):
        refused = cli("generate", "--preset", "peacekeeping", "--patients", "7", "--seed", "99",
                      "--format", "csv", "--out", str(out), cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 2, (out, refused.stderr)
        assert refused.stderr.count("\n") == 1 and "data folder" in refused.stderr, refused.stderr
    assert digests(folder) == before
    made = [p.name for p in (data / "jobs").iterdir() if not p.name.startswith(".")]
    assert made == [folder.name]  # no job was made
    listed = cli("jobs", "list", "--json", cwd=tmp_path)
    assert len(json.loads(listed.stdout)["items"]) == 1, listed.stdout
