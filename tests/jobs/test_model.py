"""The transition table, walked whole: every (status, action) pair either moves along an edge of
the graph in model.py's docstring or is refused with InvalidTransition, and the sets and rules
derived from it (allowed actions, reap decisions) agree with it."""

from __future__ import annotations

import itertools

import pytest

from patientgen.jobs.model import (
    ACTIVE_STATUSES,
    RULES,
    TERMINAL_STATUSES,
    Action,
    InvalidTransition,
    JobStatus,
    allowed_actions,
    reap_action,
    transition,
)

P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
GONE = None

#: The whole table, written out independently of model.RULES: (status, action) -> target.
EXPECTED = {
    (P, Action.CLAIM): R,
    (R, Action.COMPLETE): C,
    (R, Action.FAIL): F,
    (P, Action.CANCEL): X,
    (R, Action.CANCEL): R,  # asked to stop; its worker ends it
    (R, Action.CANCELLED): X,
    (R, Action.RELEASE): P,
    (R, Action.REQUEUE): P,
    (F, Action.RETRY): P,
    (X, Action.RETRY): P,
    (P, Action.DELETE): GONE,
    (C, Action.DELETE): GONE,
    (F, Action.DELETE): GONE,
    (X, Action.DELETE): GONE,
}


@pytest.mark.parametrize(("status", "action"), list(itertools.product(JobStatus, Action)))
def test_every_pair_of_the_table(status: JobStatus, action: Action) -> None:
    if (status, action) in EXPECTED:
        assert transition("j", status, action) == EXPECTED[(status, action)]
    else:
        with pytest.raises(InvalidTransition) as caught:
            transition("j", status, action)
        assert caught.value.current == status.value and caught.value.action == action.value


def test_table_is_complete_and_sets_partition_the_statuses() -> None:
    assert {(s, a) for a, rule in RULES.items() for s in rule} == set(EXPECTED)
    assert set(JobStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    # nothing leaves completed but a delete; a terminal status is only left by a user's action
    for (status, action), _target in EXPECTED.items():
        if status in TERMINAL_STATUSES:
            assert action in (Action.RETRY, Action.DELETE)


def test_allowed_actions_follow_the_table() -> None:
    assert allowed_actions("pending") == ["cancel", "delete"]
    assert allowed_actions("running") == ["cancel"]
    assert allowed_actions("running", cancel_requested=True) == []
    assert allowed_actions("completed") == ["delete"]
    assert allowed_actions("failed") == ["retry", "delete"]
    assert allowed_actions("cancelled") == ["retry", "delete"]


def test_reap_decisions() -> None:
    assert reap_action(1, 3, cancel_requested=True) == Action.CANCELLED
    assert reap_action(3, 3, cancel_requested=True) == Action.CANCELLED
    assert reap_action(1, 3, cancel_requested=False) == Action.REQUEUE
    assert reap_action(3, 3, cancel_requested=False) == Action.FAIL
    for action in (Action.CANCELLED, Action.REQUEUE, Action.FAIL):
        assert transition("j", R, action) is not None


def test_text_timestamps_read_back_exactly() -> None:
    """SQLite keeps timestamps as text (`_codec.ts`); `parse_ts` reads each back to the same
    instant in UTC, whatever its microseconds, and a fraction of fewer digits too."""
    import random
    from datetime import UTC, datetime, timedelta

    from patientgen.jobs._codec import parse_ts, ts

    rng = random.Random(5)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        moment = start + timedelta(microseconds=rng.randrange(10**16))
        assert parse_ts(ts(moment)) == moment
    assert parse_ts("2026-12-06 21:30:01.5") == datetime(2026, 12, 6, 21, 30, 1, 500000, UTC)
    assert parse_ts(None) is None
