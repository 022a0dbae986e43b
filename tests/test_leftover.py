"""When a serving process asks to be replaced for memory it keeps but no longer uses
(--limit-max-leftover), in memory: the tree's RSS is a number the test sets, the front end's
quiet and the pool's settled state are flags, and the looks are driven by hand. (Against a real
server under its supervisor: tests/e2e/test_process_model.py.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from interpserve.config import Config
from interpserve.leftover import Leftover, LeftoverWatch
from interpserve.serving import ServingProcess

MIB = 1 << 20
READY_MIB = 50
LIMIT_MIB = 8


class Tree:
    """What the watch reads and what it asks for."""

    def __init__(self) -> None:
        self.rss = READY_MIB * MIB
        self.quiet = True
        self.settled = True
        self.replaceable = True
        self.asked: list[tuple[Leftover, str]] = []

    def watch(self, limit_mib: int | None = LIMIT_MIB) -> LeftoverWatch:
        return LeftoverWatch(
            limit_mib,
            lambda: self.rss,
            quiet=lambda: self.quiet,
            settled=lambda: self.settled,
            replaceable=lambda: self.replaceable,
            replace=lambda leftover, why: self.asked.append((leftover, why)),
        )

    def burst(self, watch: LeftoverWatch, left_mib: int) -> None:
        """A burst comes (the front end is busy for a look), and leaves `left_mib` once over and
        released."""
        self.quiet = False
        self.rss += 40 * MIB
        watch._look()
        self.quiet = True
        self.rss -= (40 - left_mib) * MIB
        watch.released()


@pytest.fixture
def tree() -> Tree:
    return Tree()


@pytest.fixture
async def watch(tree: Tree) -> AsyncIterator[LeftoverWatch]:
    """A watch on `tree` (the default limit), its process ready; stopped after the test."""
    watch = tree.watch()
    watch.ready()
    yield watch
    watch.stop()


async def test_what_a_burst_left_past_the_limit_asks_for_a_fresh_process_a_look_later(
    tree: Tree,
    watch: LeftoverWatch,
) -> None:
    watch._look()
    tree.burst(watch, left_mib=12)
    watch._look()  # the first look after the release may come at once: the trim's turn
    assert tree.asked == []
    watch._look()
    assert tree.asked == [
        (
            Leftover.BURST,
            "a burst left it holding 12 MiB more than when it became ready (--limit-max-leftover)",
        )
    ]
    for _ in range(3):  # asked once: the next looks only read the tree
        watch._look()
    assert len(tree.asked) == 1


async def test_a_burst_that_left_less_than_the_limit_asks_nothing(
    tree: Tree, watch: LeftoverWatch
) -> None:
    tree.burst(watch, left_mib=LIMIT_MIB)
    for _ in range(3):
        watch._look()
    assert tree.asked == []


async def test_memory_the_app_kept_before_the_burst_is_not_the_bursts(
    tree: Tree, watch: LeftoverWatch
) -> None:
    """A cache its ordinary requests filled: a fresh process would fill it again, so no burst
    is blamed for it, however much the burst adds."""
    tree.rss += 20 * MIB
    watch._look()
    tree.burst(watch, left_mib=12)
    for _ in range(3):
        watch._look()
    assert tree.asked == []


async def test_the_check_waits_for_quiet_and_for_the_workers_passing(
    tree: Tree, watch: LeftoverWatch
) -> None:
    """Another burst before the check: that burst's own release calls for it. A worker starting
    or retiring: its memory is not left over, so the check waits until the pool has settled."""
    tree.burst(watch, left_mib=12)
    tree.quiet = False
    for _ in range(3):
        watch._look()
    assert tree.asked == []
    tree.quiet = True
    watch.released()
    tree.settled = False
    tree.rss += 30 * MIB  # a successor starting
    for _ in range(3):
        watch._look()
    assert tree.asked == []
    tree.settled = True
    tree.rss -= 30 * MIB
    watch._look()
    watch._look()
    assert [leftover for leftover, _ in tree.asked] == [Leftover.BURST]


async def test_the_check_waits_while_a_fresh_process_would_close_websockets(
    tree: Tree, watch: LeftoverWatch
) -> None:
    tree.replaceable = False
    tree.burst(watch, left_mib=12)
    for _ in range(3):
        watch._look()
    assert tree.asked == []
    tree.replaceable = True
    watch._look()
    assert [leftover for leftover, _ in tree.asked] == [Leftover.BURST]


async def test_what_the_app_kept_while_websockets_were_open_is_not_a_bursts(
    tree: Tree, watch: LeftoverWatch
) -> None:
    """Open WebSockets hold the check back, not the reading of what the tree holds before a
    burst: a cache filled meanwhile is the app's."""
    tree.replaceable = False
    tree.rss += 20 * MIB
    watch._look()
    tree.burst(watch, left_mib=12)
    tree.replaceable = True
    for _ in range(3):
        watch._look()
    assert tree.asked == []


async def test_no_burst_no_check(tree: Tree, watch: LeftoverWatch) -> None:
    """Steady traffic that holds memory while it runs: without a burst released, it is never
    checked."""
    tree.rss += 20 * MIB
    for _ in range(5):
        watch._look()
    assert tree.asked == []


async def test_destroyed_interpreters_past_the_limit_ask_at_the_destroy(tree: Tree) -> None:
    """Checked at once, in or out of a burst; nothing before the process is ready."""
    watch = tree.watch(limit_mib=None)  # a tenth of the 50 MiB at ready: 5 MiB
    watch.destroyed()
    watch.ready()
    try:
        tree.rss += 5 * MIB
        watch.destroyed()
        assert tree.asked == []
        tree.rss += 2 * MIB
        tree.quiet = False
        watch.destroyed()
    finally:
        watch.stop()
    assert tree.asked == [
        (
            Leftover.DESTROYED_INTERPRETERS,
            "destroyed interpreters left 7 MiB behind (--limit-max-leftover)",
        )
    ]


def test_without_the_supervisor_nothing_replaces_it_and_it_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serving = ServingProcess(Config(supervisor=False))
    why = "a burst left it holding 12 MiB more than when it became ready (--limit-max-leftover)"
    with caplog.at_level(logging.WARNING, logger="interpserve.error"):
        serving._replace_for(Leftover.BURST, why)
        serving._replace_for(Leftover.DESTROYED_INTERPRETERS, why)
    assert [record.getMessage() for record in caplog.records] == [
        f"{why}; without the supervisor, nothing replaces this process."
    ]
