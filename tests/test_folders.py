"""folders.folder_problem: the one check of a writable folder, made by several processes at once.

A fresh-clone run of the suite (58aa27c) saw one of two `patientgen worker` processes started
together on a new data folder exit 2 with "cannot write to ...: File exists": both found the
folder missing, the other made it first, and this one's mkdir failed.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from patientgen.folders import folder_problem

PROCESSES = 6
ROUNDS = 40


def _check(barrier, path: str, out) -> None:
    barrier.wait()
    out.put(folder_problem(Path(path), keep=True))


def test_processes_making_one_folder_at_once_all_find_it_writable(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    out = context.Queue()
    problems: list[str] = []
    for n in range(ROUNDS):
        path = tmp_path / f"round{n}" / "a" / "b" / "data"  # four folders to make, four races
        procs = [
            context.Process(target=_check, args=(barrier, str(path), out)) for _ in range(PROCESSES)
        ]
        for proc in procs:
            proc.start()
        problems += [p for p in (out.get(timeout=30) for _ in procs) if p is not None]
        for proc in procs:
            proc.join(timeout=30)
        assert path.is_dir()
    assert problems == []


def test_a_file_in_the_way_is_a_problem_and_nothing_is_left(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    assert folder_problem(tmp_path / "taken" / "data", keep=False) is not None
    assert folder_problem(tmp_path / "new" / "data", keep=False) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
