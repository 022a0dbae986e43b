"""The front end's memory budget (frontend/budget.py) on its own: what it counts, when windows may
widen, and in what order the connections that waited for room are resumed."""

from __future__ import annotations

import logging

import pytest

from interpserve.frontend.budget import MemoryBudget


class Reader:
    def __init__(self, name: str, resumed: list[str]) -> None:
        self.name = name
        self._resumed = resumed

    def room_available(self) -> None:
        self._resumed.append(self.name)


def test_it_counts_what_is_reserved_and_released() -> None:
    budget = MemoryBudget(100, read_size=10)
    budget.reserve(60)
    budget.change(40)
    assert (budget.held, budget.spent) == (100, True)
    budget.release(30)
    budget.change(-20)
    assert (budget.held, budget.spent) == (50, False)
    assert budget.has_room(50) and not budget.has_room(51)


def test_a_window_doubles_only_within_the_budget_and_up_to_its_most() -> None:
    budget = MemoryBudget(100, read_size=10)
    assert budget.widen(16, most=64) == 32
    assert budget.held == 16  # the difference: the window's first 16 were counted by its owner
    assert budget.widen(32, most=48) == 48
    assert budget.held == 32
    budget.reserve(40)
    assert budget.widen(48, most=1000) == 48  # doubling needs 48 more: only 28 are free
    assert budget.widen(16, most=1000) == 32  # 16 more do fit
    assert budget.held == 88


def test_a_window_counts_only_beyond_what_its_owner_does_not() -> None:
    """A response's window below its first 16 (after it narrowed) widens at no cost up to
    them, and narrowing gives back only what was counted."""
    budget = MemoryBudget(100, read_size=10)
    assert budget.widen(4, most=64, free=16) == 8
    assert budget.widen(8, most=64, free=16) == 16
    assert budget.held == 0
    assert budget.widen(12, most=64, free=16) == 24
    assert budget.held == 8
    assert budget.narrow(24, 20, free=16) == 20
    assert budget.held == 4
    assert budget.narrow(20, 4, free=16) == 4
    assert budget.held == 0


def test_waiting_connections_resume_in_turn_as_room_allows() -> None:
    resumed: list[str] = []
    budget = MemoryBudget(100, read_size=30)
    budget.reserve(100)
    readers = {name: Reader(name, resumed) for name in "abcde"}
    for name in "abcde":
        budget.wait(readers[name])
    budget.forget(readers["c"])
    budget.release(10)
    assert resumed == ["a"]  # room for one read, given to the first that waited
    budget.release(50)
    assert resumed == ["a", "b", "d"]  # 60 free now: two reads of 30
    budget.release(40)
    assert resumed == ["a", "b", "d", "e"]
    budget.release(0)
    assert resumed == ["a", "b", "d", "e"]  # nobody waits any more


def test_a_reader_that_waits_again_goes_to_the_back() -> None:
    resumed: list[str] = []
    budget = MemoryBudget(100, read_size=30)
    budget.reserve(100)
    first, second = Reader("first", resumed), Reader("second", resumed)
    budget.wait(first)
    budget.wait(second)
    budget.release(5)
    assert resumed == ["first"]
    budget.wait(first)  # it found the room taken already
    budget.release(40)
    assert resumed == ["first", "second", "first"]


def test_the_operator_hears_once_that_it_is_spent(caplog: pytest.LogCaptureFixture) -> None:
    budget = MemoryBudget(100, read_size=10)
    with caplog.at_level(logging.WARNING, logger="interpserve.error"):
        budget.reserve(99)
        budget.reserve(1)
        budget.release(50)
        budget.reserve(60)  # spent again, within the minute: not said again
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "--limit-buffers" in lines[0] and "100 bytes" in lines[0]
