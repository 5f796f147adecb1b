"""Fixtures of the fault tests (issue 6, items 1-3): every test here is marked `faults`, so
`pytest -m faults` runs them alone; a plain `pytest` runs them with the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.support import References

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def refs(tmp_path_factory: pytest.TempPathFactory) -> References:
    """Reference outputs of clean runs, one per distinct scenario, shared by the fault tests."""
    return References(tmp_path_factory.mktemp("fault-references"))
