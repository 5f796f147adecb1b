"""What a user reads before running anything: the CLI's help, the scenario template, `make run`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from patientgen.cli import _register, app
from patientgen.scenario import PRESETS, Scenario

REPO = Path(__file__).resolve().parents[1]
ENV = {"NO_COLOR": "1", "COLUMNS": "120"}


def _commands() -> list[list[str]]:
    """The path of every command and group, the root included."""
    _register()
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return found


def test_help_shows_no_type_after_a_flag() -> None:
    runner = CliRunner()
    paths = _commands()
    assert ["jobs", "show"] in paths and ["scenario", "template"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env=ENV)
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
        assert "--help" in result.output


@pytest.mark.parametrize("command", ["show", "cancel", "retry", "delete"])
def test_a_job_id_argument_is_shown_as_required(command: str) -> None:
    _register()
    result = CliRunner().invoke(app, ["jobs", command, "--help"], env=ENV)
    usage = result.output.splitlines()[0]
    assert usage.endswith(" JOB_ID"), usage  # not [JOB_ID]
    assert "required" in result.output


def test_scenario_template_is_a_complete_valid_scenario(tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    result = runner.invoke(app, ["scenario", "template"], env=ENV)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == set(Scenario.model_fields)  # every field, to edit in place
    assert Scenario.model_validate_json(result.output) == Scenario()
    for name, preset in PRESETS.items():
        got = runner.invoke(app, ["scenario", "template", "--preset", name], env=ENV)
        assert Scenario.model_validate_json(got.output) == preset.scenario, name
    bad = runner.invoke(app, ["scenario", "template", "--preset", "nope"], env=ENV)
    assert bad.exit_code == 2 and "unknown preset" in bad.output


def _make(*args: str) -> str:
    return subprocess.run(
        ["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_make_run_says_what_it_does_and_takes_the_port() -> None:
    assert "--port 8000" in _make("run")
    assert "--port 8080" in _make("run", "PORT=8080")
    install = _make("-B", "install")  # -B: as on a machine without the venv yet
    assert "echo" in install
    step = next(line for line in install.splitlines() if "install" in line and "-e ." in line)
    assert "--quiet" not in step, step


def _run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """`patientgen ARGV` through the console script's entry point: (exit status, stderr)."""
    from patientgen.cli import main

    monkeypatch.setattr("sys.argv", ["patientgen", *argv])
    monkeypatch.setenv("NO_COLOR", "1")
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def test_every_usage_error_is_one_line_and_exit_2(monkeypatch, capsys) -> None:
    """Found by probing: an unknown option, a missing argument or an unknown command gave Click's
    usage block (four lines) for most commands, against the one line of all other bad input."""
    cases = [[*path, "--no-such-option"] for path in _commands()]
    cases += [["jobs", "no-such-command"], ["no-such-command"], ["keys", "create"], ["replay"]]
    failures = []
    for argv in cases:
        code, err = _run_main(argv, monkeypatch, capsys)
        if code != 2 or len(err.strip().splitlines()) != 1 or not err.startswith("error: "):
            failures.append((argv, code, err))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize("group", [[], ["jobs"], ["keys"]])
def test_a_group_alone_prints_its_help(group: list[str], monkeypatch, capsys) -> None:
    code, err = _run_main(group, monkeypatch, capsys)
    assert code == 2 and err.startswith(f"Usage: {' '.join(['patientgen', *group])} ")
    assert "Commands" in err
