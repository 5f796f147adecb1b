"""The order the suite runs its files in (tests/conftest.py): every file SLOW_FILES names exists,
so a renamed or removed file does not silently fall back to running last."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_FILES

ROOT = Path(__file__).resolve().parents[1]


def test_every_slow_file_exists() -> None:
    missing = [name for name in SLOW_FILES if not (ROOT / name).is_file()]
    assert missing == []
