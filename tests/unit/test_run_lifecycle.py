"""The one rule every service applies to a run's status: forward only, never out of an end."""

from __future__ import annotations

import itertools

import pytest

from tidemark.errors import FailureKind
from tidemark.events import (
    ACTIVE,
    ERROR_KINDS,
    TERMINAL,
    TRIGGERS,
    RunError,
    RunRequested,
    RunStatus,
    may_move,
)

pytestmark = pytest.mark.unit

ORDER = [RunStatus.SCHEDULED, RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING]


def test_a_run_moves_forward_through_its_states_to_any_end() -> None:
    for earlier, later in itertools.combinations(ORDER, 2):
        assert may_move(earlier, later), (earlier, later)
    for state, end in itertools.product(ORDER, TERMINAL):
        assert may_move(state, end), (state, end)


def test_a_run_never_moves_backwards_or_to_where_it_is() -> None:
    for earlier, later in itertools.combinations(ORDER, 2):
        assert not may_move(later, earlier), (later, earlier)
    for state in RunStatus:
        assert not may_move(state, state), state


def test_nothing_moves_a_run_out_of_an_end_not_even_another_end() -> None:
    for end, other in itertools.product(TERMINAL, RunStatus):
        assert not may_move(end, other), (end, other)


def test_the_rule_takes_the_stored_text_as_well_as_the_enum() -> None:
    assert may_move("queued", "running")
    assert not may_move("failed", "succeeded")
    with pytest.raises(ValueError, match="paused"):
        may_move("paused", "running")


def test_every_state_is_active_terminal_or_scheduled() -> None:
    assert ACTIVE.isdisjoint(TERMINAL)
    assert set(RunStatus) == ACTIVE | TERMINAL | {RunStatus.SCHEDULED}
    assert {s for s in RunStatus if s.terminal} == TERMINAL


def test_the_vocabulary_is_the_one_the_events_carry() -> None:
    # The wire models take their Literals from the lifecycle: one list, no copy to drift.
    assert TRIGGERS == ("manual", "schedule", "dependency", "retry", "maintenance")
    assert RunRequested.model_json_schema()["properties"]["trigger"]["enum"] == list(TRIGGERS)
    assert RunError.model_json_schema()["properties"]["kind"]["enum"] == list(ERROR_KINDS)
    # An error's kind on the wire is the classification of the exception that caused it.
    assert set(ERROR_KINDS) == {k.value for k in FailureKind}
