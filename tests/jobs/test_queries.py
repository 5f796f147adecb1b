"""The named queries of the two dialects (jobs/sql/): each query is written once where the two
databases run the same SQL (common.sql), and twice only where they differ, each dialect's file
holding its own form of the same name. Both stores see the same names (the contract suite then
runs every one of them on both)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patientgen.jobs.dialects import SQL_DIR, load_queries

DIALECT_FILES = ("sqlite.sql", "postgres.sql")


def _texts(name: str) -> dict[str, str]:
    """The queries of one file as written (comments and spacing aside, placeholders as
    written): what a reader would see twice."""
    return {
        query: re.sub(r"\s+", " ", sql)
        for query, sql in load_queries(SQL_DIR / name, shared=()).items()
    }


def test_no_query_is_written_in_both_dialects_the_same():
    sqlite, postgres = (_texts(name) for name in DIALECT_FILES)
    same = sorted(q for q in sqlite.keys() & postgres.keys() if sqlite[q] == postgres[q])
    assert not same, f"the same SQL in both dialects' files (belongs in common.sql): {same}"


def test_both_dialects_load_the_same_names():
    sqlite, postgres = (set(load_queries(SQL_DIR / name)) for name in DIALECT_FILES)
    assert sqlite == postgres, (sorted(sqlite - postgres), sorted(postgres - sqlite))
    common = set(load_queries(SQL_DIR / "common.sql", shared=()))
    assert common and common <= sqlite


def test_a_name_in_common_and_in_a_dialect_is_refused(tmp_path: Path):
    common = tmp_path / "common.sql"
    common.write_text("-- name: ping\nSELECT 1;\n")
    dialect = tmp_path / "dialect.sql"
    dialect.write_text("-- name: get_job\nSELECT 2;\n\n-- name: ping\nSELECT 3;\n")
    with pytest.raises(ValueError, match="ping"):
        load_queries(dialect, shared=(common,))
    dialect.write_text("-- name: get_job\nSELECT 2;\n")
    assert load_queries(dialect, shared=(common,)) == {"get_job": "SELECT 2", "ping": "SELECT 1"}


def test_a_name_written_twice_in_one_file_is_refused(tmp_path: Path):
    dialect = tmp_path / "dialect.sql"
    dialect.write_text("-- name: ping\nSELECT 1;\n\n-- name: ping\nSELECT 2;\n")
    with pytest.raises(ValueError, match="ping"):
        load_queries(dialect, shared=())
