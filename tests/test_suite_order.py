"""How `make test` runs the suite: the order of its files (tests/conftest.py: every file
SLOW_FILES names exists, so a renamed or removed file does not silently fall back to running
last), and its xdist options (a crashed worker ends the run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SLOW_FILES

ROOT = Path(__file__).resolve().parents[1]


def test_every_slow_file_exists() -> None:
    missing = [name for name in SLOW_FILES if not (ROOT / name).is_file()]
    assert missing == []


def _makefile_xdist_options() -> list[str]:
    """The pytest-xdist options `make test` runs the suite with (the Makefile's XDIST_OPTIONS)."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("XDIST_OPTIONS"):
            value = line.split("=", 1)[1].replace("$(TEST_PROCESSES)", "2")
            return value.split()
    raise AssertionError("the Makefile sets no XDIST_OPTIONS")


def test_a_crashed_worker_ends_the_run_instead_of_hanging(tmp_path: Path) -> None:
    """With `make test`'s options, a test that kills its process fails by name and the run ends
    (xdist's replacement worker under --dist loadfile waited forever, and CI hit its limit)."""
    for name in "abcd":
        crash = "os.kill(os.getpid(), signal.SIGSEGV)" if name == "b" else "pass"
        (tmp_path / f"test_{name}.py").write_text(
            "import os, signal, time\n\n\n"
            "def test_1():\n    time.sleep(0.3)\n\n\n"
            f"def test_2():\n    {crash}\n\n\n"
            "def test_3():\n    pass\n"
        )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xdist", "-p", "no:cacheprovider", "-q",
         *_makefile_xdist_options()],
        cwd=tmp_path,
        # xdist alone: the suite's other plugins (hypothesis, schemathesis) would load in every
        # process for nothing
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-2000:]
    assert "crashed while running 'test_b.py::test_2'" in run.stdout
