"""Group commit (notify.adapters.postgres.grouping.Coalescer): who is flushed with whom, who hears what."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from notify.adapters.postgres.grouping import Coalescer


def counted(what: str, group: str) -> float:
    return REGISTRY.get_sample_value(f"notify_group_{what}_total", {"group": group}) or 0.0


def isolated(group: str) -> float:
    return counted("isolated", group)


class BadItem(Exception):
    pass


class Recorder:
    """A flush that records each group it was given; it waits on ``gate`` so callers can pile up meanwhile."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if any(i < 0 for i in items):
                raise BadItem(f"negative in {list(items)}")
            return [i * 10 for i in items]
        finally:
            self.in_flight -= 1


async def test_a_lone_caller_is_flushed_at_once_without_waiting_for_company() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush, name="test")
    assert await asyncio.wait_for(coalescer.submit(7), 1) == 70
    assert recorder.groups == [[7]]


async def test_callers_arriving_while_a_flush_runs_share_the_next_one_and_get_their_own_results() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(recorder.flush, name="sharing", parallel=1)
    before = (counted("statements", "sharing"), counted("items", "sharing"))
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0)  # the first flush starts and holds the gate
    rest = [asyncio.ensure_future(coalescer.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 12)]
    assert recorder.groups == [[1], list(range(2, 12))]
    after = (counted("statements", "sharing"), counted("items", "sharing"))
    assert (after[0] - before[0], after[1] - before[1]) == (2, 11)  # the metrics operators read


async def test_groups_are_bounded_in_size_and_in_how_many_run_at_once() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(recorder.flush, name="test", max_size=4, parallel=2)
    calls = [asyncio.ensure_future(coalescer.submit(i)) for i in range(20)]
    await asyncio.sleep(0.01)
    assert len(recorder.groups) == 2  # two flushes in flight, the rest waiting
    recorder.gate.set()
    assert await asyncio.gather(*calls) == [i * 10 for i in range(20)]
    assert all(len(g) <= 4 for g in recorder.groups)
    assert sorted(i for g in recorder.groups for i in g) == list(range(20))
    assert recorder.most_in_flight == 2


async def test_a_failed_group_fails_each_of_its_callers() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush, name="test", parallel=1)
    with pytest.raises(BadItem):
        await coalescer.submit(-1)
    recorder.gate.clear()
    blocker = asyncio.ensure_future(coalescer.submit(0))
    await asyncio.sleep(0)
    group = [asyncio.ensure_future(coalescer.submit(i)) for i in (5, -5)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await blocker == 0
    outcomes = await asyncio.gather(*group, return_exceptions=True)
    assert all(isinstance(o, BadItem) for o in outcomes)  # no isolate_on: the whole group shares the error


async def test_an_item_that_fails_its_group_is_found_and_fails_alone() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(recorder.flush, name="isolating", parallel=1, isolate_on=(BadItem,))
    isolated_before = isolated("isolating")
    blocker = asyncio.ensure_future(coalescer.submit(0))
    await asyncio.sleep(0)
    group = [asyncio.ensure_future(coalescer.submit(i)) for i in (3, -3, 4)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await blocker == 0
    outcomes = await asyncio.gather(*group, return_exceptions=True)
    assert outcomes[0] == 30 and outcomes[2] == 40
    assert isinstance(outcomes[1], BadItem)
    assert recorder.groups[1:] == [[3, -3, 4], [3], [-3], [4]]
    assert isolated("isolating") == isolated_before + 1  # counted for operators


async def test_a_caller_that_gives_up_does_not_cancel_the_statement_the_others_share() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    coalescer = Coalescer(recorder.flush, name="test", parallel=1)
    blocker = asyncio.ensure_future(coalescer.submit(0))
    await asyncio.sleep(0)
    quitter = asyncio.ensure_future(coalescer.submit(1))
    stayer = asyncio.ensure_future(coalescer.submit(2))
    await asyncio.sleep(0)
    quitter.cancel()
    recorder.gate.set()
    assert await blocker == 0
    assert await stayer == 20
    assert quitter.cancelled()
    assert recorder.groups == [[0], [1, 2]]  # the quitter's item was handed over: written
