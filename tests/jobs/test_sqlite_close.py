"""Closing a SQLite store never closes a connection another thread is using.

CI saw a test process die of a segmentation fault in `SqliteDialect.change_counter`, called by
the store's watcher thread while the store was being closed: `close()` closed the watcher's
connection under a `PRAGMA data_version` in flight, and Python's sqlite3 module does not guard
one connection shared by threads. The crash took pytest-xdist's worker with it, and xdist's
replacement of a crashed worker under `--dist loadfile` then hung the run until CI's limit.

The reproduction runs in a child process: a crash there fails the test instead of killing the
test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from patientgen.jobs.dialects import SqliteDialect
from patientgen.jobs.model import StoreUnavailable

#: Each round opens a dialect, starts a thread polling its change counter as the store's watcher
#: does, and closes the dialect under it. Before the fix, 50 rounds crashed every try.
_CLOSE_UNDER_THE_WATCHER = """
import sys, threading
from pathlib import Path
from patientgen.jobs.dialects import SqliteDialect
from patientgen.jobs.model import StoreUnavailable

def poll(dialect):
    while True:
        try:
            dialect.change_counter()
        except StoreUnavailable:
            return

folder = Path(sys.argv[1])
for i in range(int(sys.argv[2])):
    dialect = SqliteDialect(folder / f"jobs-{i}.db")
    dialect.change_counter()
    watcher = threading.Thread(target=poll, args=(dialect,))
    watcher.start()
    dialect.close()
    watcher.join(10)
    assert not watcher.is_alive(), "the watcher did not see the store closed"
print("closed", sys.argv[2], "times")
"""


def test_closing_under_the_watcher_does_not_crash(tmp_path: Path) -> None:
    rounds = 300
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            _CLOSE_UNDER_THE_WATCHER,
            str(tmp_path),
            str(rounds),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"closed {rounds} times"


def _descriptors_on(path: Path) -> list[str]:
    """This process's open files that are the database or its -wal/-shm files."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since listed
            continue
        if target.startswith(str(path)):
            names.append(target)
    return names


def test_a_connection_in_use_at_close_is_closed_when_its_user_is_done(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    dialect = SqliteDialect(path)
    with dialect.transaction(write=False) as t:  # a second connection opens beside the first
        t.one("ping")
    dialect.change_counter()
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with dialect.transaction(write=True) as t:
            t.one("ping")
            inside.set()
            release.wait(10)

    user = threading.Thread(target=hold)
    user.start()
    assert inside.wait(10)
    dialect.close()
    assert _descriptors_on(path), "the connection in use was closed under its user"
    release.set()
    user.join(10)
    assert _descriptors_on(path) == []


def test_a_thread_waiting_for_a_connection_is_told_at_close(tmp_path: Path) -> None:
    """Every connection is in use and one more thread waits for one when the store closes: it
    gets StoreUnavailable when the store closes, not when its wait (the busy timeout) ends."""
    dialect = SqliteDialect(tmp_path / "jobs.db", busy_timeout=60.0, size=1)
    inside, release = threading.Event(), threading.Event()
    told: list[BaseException] = []

    def hold() -> None:
        with dialect.transaction(write=False) as t:
            t.one("ping")
            inside.set()
            release.wait(60)

    def wait_for_one() -> None:
        try:
            with dialect.transaction(write=False) as t:
                t.one("ping")
        except StoreUnavailable as exc:
            told.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    waiter = threading.Thread(target=wait_for_one)
    waiter.start()
    waiter.join(0.5)  # still there: it waits for the one connection (not told before the close)
    assert waiter.is_alive() and told == []
    dialect.close()
    waiter.join(20)  # a third of the busy timeout: it must not wait that out
    alive = waiter.is_alive()
    release.set()
    holder.join(10)
    waiter.join(60)
    assert not alive, "the waiting thread was not told that the store closed"
    assert len(told) == 1 and "closed" in str(told[0])
