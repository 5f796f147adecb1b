"""What a command says when its environment is wrong, as a user sees it (the console script):
one line on stderr, saying what is wrong.

- A data folder that cannot be made or written (PATIENTGEN_DATA_DIR) is bad configuration:
  every command that needs it says so and exits 2, before it opens a store or starts anything
  (`keys`, `jobs` and `db` on the SQLite default: when they open it).
  Before, `serve`, `worker`, `generate`, `jobs list` and `db upgrade` on the SQLite default
  each printed a Python traceback and exited 1 (`keys create`: one line, but exit 1).
- A PostgreSQL server that refuses the connection: the one line says why (the driver's reason),
  exit 1. Before, the pool's warnings came first (two lines per attempt) and the last line said
  only that no connection came within 5 s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("patientgen")  # the console script `make test` installs


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "PORT", "--workers", "0"],
        ["worker"],
        ["generate", "--preset", "peacekeeping", "--patients", "3"],
        ["jobs", "list"],
        ["db", "upgrade"],
        ["keys", "create", "someone"],
    ],
    ids=["serve", "worker", "generate", "jobs-list", "db-upgrade", "keys-create"],
)
@pytest.mark.parametrize("folder", ["cannot-be-made", "cannot-be-written"])
def test_a_data_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, args, folder) -> None:
    """Under /proc nobody can make a folder, and /proc/1 (there on every Linux host) exists but
    takes no file."""
    data = (
        Path("/proc") / f"patientgen-{os.getpid()}" / "data"
        if folder == "cannot-be-made"
        else Path("/proc/1")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update({"PATIENTGEN_DATA_DIR": str(data), "NO_COLOR": "1", "COLUMNS": "120"})
    args = [str(_port()) if a == "PORT" else a for a in args]
    result = subprocess.run(
        [str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert str(data) in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [["jobs", "list"], ["keys", "list"]], ids=["jobs-list", "keys-list"]
)
def test_a_database_that_refuses_says_why_in_one_line(tmp_path, args) -> None:
    """`keys` opens its store its own way: the same one line (the pool's warnings are silenced
    at the entry point, for every command)."""
    port = _port()  # nothing listens there once the socket is closed
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        {
            "PATIENTGEN_DATA_DIR": str(tmp_path / "data"),
            "PATIENTGEN_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x",
            "NO_COLOR": "1",
        }
    )
    result = subprocess.run(
        [str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "PostgreSQL unavailable: " in lines[0], lines
    assert "refused" in lines[0] and str(port) in lines[0], lines
