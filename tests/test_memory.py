"""When a BurstWatch gives memory back, in memory: its looks are driven by hand, and what it
calls is recorded instead of run."""

from __future__ import annotations

import pytest

from interpserve import memory
from interpserve.memory import BurstWatch


@pytest.mark.parametrize("trim", [True, False])
async def test_a_burst_that_has_fallen_to_a_quarter_gives_memory_back_once(
    monkeypatch: pytest.MonkeyPatch, trim: bool
) -> None:
    released: list[bool] = []
    monkeypatch.setattr(memory, "release_memory", released.append)
    in_use = [0]
    watch = BurstWatch(lambda: in_use[0], 100, trim=trim, quiet_looks=1)
    try:
        for count, expected in ((150, []), (40, []), (30, []), (30, [trim]), (30, [trim])):
            in_use[0] = count
            watch._look()
            assert released == expected, count
    finally:
        watch.stop()


async def test_no_burst_no_release(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[bool] = []
    monkeypatch.setattr(memory, "release_memory", released.append)
    in_use = [0]
    watch = BurstWatch(lambda: in_use[0], 100, trim=True)
    try:
        watch.note(99)  # a peak between two looks, short of a burst
        for _ in range(5):
            watch._look()
    finally:
        watch.stop()
    assert released == []


async def test_a_watch_is_quiet_until_a_burst_and_again_once_it_is_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quiet: no burst seen since the last release, and a quarter of one in use at most. Its
    release is told on (the serving process checks what is left: leftover.py)."""
    monkeypatch.setattr(memory, "release_memory", lambda trim: None)
    in_use = [0]
    told: list[int] = []
    watch = BurstWatch(lambda: in_use[0], 100, trim=False, quiet_looks=1)
    watch.on_release = lambda: told.append(in_use[0])
    try:
        in_use[0] = 25
        assert watch.quiet()
        in_use[0] = 26
        assert not watch.quiet()
        watch.note(150)  # a peak between two looks
        for count, quiet in ((30, False), (20, True), (20, True)):
            in_use[0] = count
            watch._look()
            assert watch.quiet() is quiet, count
    finally:
        watch.stop()
    assert told == [20]
