"""A channel's tokens go to the highest priority waiting (notify.app.priority_limiter)."""

from __future__ import annotations

import asyncio

import pytest

from notify.app.priority_limiter import PriorityRateLimiter
from notify.domain.model import Priority
from tests.fakes import FakeLimiter, MeteredLimiter

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Queue:
    """Callers of one limiter, each recording its name when it got its token."""

    def __init__(self, limiter: PriorityRateLimiter) -> None:
        self.limiter = limiter
        self.served: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def add(self, name: str, priority: Priority, key: str = "sms") -> None:
        async def caller() -> None:
            await self.limiter.acquire(key, priority)
            self.served.append(name)

        self.tasks[name] = asyncio.create_task(caller())
        await settle()


async def test_each_token_goes_to_the_highest_priority_waiting_then_in_arrival_order() -> None:
    bucket = MeteredLimiter()
    queue = Queue(PriorityRateLimiter(bucket))
    arrivals = [("low-1", LOW), ("low-2", LOW), ("normal", NORMAL), ("low-3", LOW), ("high", HIGH)]
    for name, priority in arrivals:
        await queue.add(name, priority)
    assert bucket.asking == 2  # the first, and the hand-out task on behalf of those waiting
    for _ in range(5):
        bucket.grant()
        await settle()
    # low-1 was already asking when the others came: it keeps its token.
    assert queue.served == ["low-1", "high", "normal", "low-2", "low-3"]


async def test_a_cancelled_waiter_is_passed_over_and_its_turn_is_not_lost() -> None:
    bucket = MeteredLimiter()
    queue = Queue(PriorityRateLimiter(bucket))
    await queue.add("asking", LOW)
    await queue.add("high", HIGH)
    await queue.add("low", LOW)
    queue.tasks["high"].cancel()
    bucket.grant(2)
    await settle()
    assert queue.served == ["asking", "low"]


async def test_a_waiter_cancelled_while_asking_the_bucket_passes_the_turn_on() -> None:
    bucket = MeteredLimiter()
    queue = Queue(PriorityRateLimiter(bucket))
    await queue.add("asking", LOW)
    await queue.add("next", LOW)
    queue.tasks["asking"].cancel()
    await settle()
    assert bucket.asking == 1  # the hand-out task, for "next"
    bucket.grant()
    await settle()
    assert queue.served == ["next"]
    with pytest.raises(asyncio.CancelledError):
        await queue.tasks["asking"]


async def test_a_waiter_cancelled_just_as_its_turn_came_passes_it_on() -> None:
    bucket = MeteredLimiter()
    queue = Queue(PriorityRateLimiter(bucket))
    await queue.add("asking", LOW)
    await queue.add("handed", HIGH)
    await queue.add("after", LOW)
    bucket.grant()
    await settle()
    assert queue.served == ["asking"]
    asked = len(bucket.acquired)
    bucket.grant()
    # In one step the hand-out task takes the token, gives it to "handed" and asks again (for "after").
    while len(bucket.acquired) == asked:
        await asyncio.sleep(0)
    queue.tasks["handed"].cancel()  # before it could run
    await settle()
    assert queue.served == ["asking", "after"]


async def test_keys_do_not_wait_for_each_other() -> None:
    bucket = MeteredLimiter()
    queue = Queue(PriorityRateLimiter(bucket))
    await queue.add("sms-1", LOW, key="sms")
    await queue.add("sms-2", HIGH, key="sms")
    await queue.add("email", LOW, key="email")
    assert bucket.asking == 3  # sms-1, the hand-out for sms-2, and email: each key asks its own bucket
    bucket.grant(3)
    await settle()
    assert set(queue.served) == {"sms-1", "sms-2", "email"}


async def test_tokens_the_bucket_has_at_once_are_handed_out_together() -> None:
    bucket = MeteredLimiter()
    queue = Queue(PriorityRateLimiter(bucket))
    for i in range(10):
        await queue.add(f"low-{i}", LOW)
    bucket.grant(10)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # One step of the hand-out task gave every waiter its token; they all run in the next step.
    await asyncio.sleep(0)
    assert len(queue.served) == 10


async def test_a_failing_bucket_fails_every_caller_waiting() -> None:
    class Broken(MeteredLimiter):
        async def acquire(self, key: str) -> float:
            if self.acquired:
                raise RuntimeError("bucket unreadable")
            return await super().acquire(key)

    queue = Queue(PriorityRateLimiter(Broken()))
    await queue.add("asking", LOW)
    await queue.add("waiting", HIGH)
    with pytest.raises(RuntimeError, match="unreadable"):
        await queue.tasks["waiting"]


async def test_a_bucket_with_tokens_costs_no_turn() -> None:
    limiter = PriorityRateLimiter(FakeLimiter())
    # Nobody waits: every caller gets its token at once, in one go, and no turn is left taken.
    done = await asyncio.gather(*(limiter.acquire("sms", LOW) for _ in range(100)))
    assert len(done) == 100
    queue = Queue(limiter)
    await queue.add("later", HIGH)
    assert queue.served == ["later"]
