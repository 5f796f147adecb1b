"""`patientgen generate` / `patientgen presets` as a user runs them: the console script."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_generate_from_scenario_file(tmp_path) -> None:
    scenario = PRESETS["training-exercise"].scenario.model_dump(mode="json")
    scenario["total_patients"] = 50
    (tmp_path / "s.json").write_text(json.dumps(scenario))
    result = cli("generate", "--scenario", "s.json", "--format", "csv", "--out", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(digests(tmp_path / "o")) == ["manifest.json", "patients.csv", "summary.json"]
    with open(tmp_path / "o" / "patients.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == 51
