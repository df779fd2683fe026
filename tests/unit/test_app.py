from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from notify.app.auth import Authenticator, KeyService
from notify.app.delivery import Deliverer, DeliveryOutcome, PauseCache, Route
from notify.app.dispatcher import Partition, PriorityDispatcher, Work
from notify.app.notifications import NewNotification, NotificationService
from notify.app.operations import Operations, PauseScope, pause_target
from notify.app.recovery import Recovery
from notify.app.relay import OutboxRelay
from notify.domain.delivery import AttemptOutcome, Claim
from notify.domain.errors import (
    Conflict,
    Forbidden,
    IllegalTransition,
    NotFound,
    OutcomeNotStored,
    PermanentProviderError,
    TransientProviderError,
    Unauthorized,
    ValidationFailed,
)
from notify.domain.ids import uuid7_at
from notify.domain.keys import ApiKey, KeyScope, new_secret
from notify.domain.model import Channel, Priority, Status
from notify.domain.outbox import OutboxKind
from notify.domain.retry import RetryPolicy
from tests.fakes import (
    FakeApiKeyStore,
    FakeBreaker,
    FakeClock,
    FakeLimiter,
    FakeProvider,
    FakePublisher,
    FakeStore,
    rejecting_provider,
)

SMS = NewNotification(channel=Channel.SMS, recipient="+14155550123", content="hello")


def service(store: FakeStore, clock: FakeClock, woken: list[int] | None = None) -> NotificationService:
    return NotificationService(
        store, clock, on_enqueued=(lambda: woken.append(1)) if woken is not None else None
    )


class TestCreate:
    async def test_pending_notification_gets_an_outbox_record_and_wakes_the_relay(self) -> None:
        store, clock, woken = FakeStore(), FakeClock(), []
        n = await service(store, clock, woken).create("t1", SMS, correlation_id="c-1")
        assert n.status is Status.PENDING
        assert n.max_retries == 3 and n.priority is Priority.NORMAL
        assert n.id.version == 7 and n.created_at == clock.now()
        assert [r.notification_id for r in store.outbox] == [n.id]
        assert store.outbox[0].correlation_id == "c-1"
        assert woken == [1]

    async def test_future_schedule_is_stored_without_dispatch(self) -> None:
        store, clock = FakeStore(), FakeClock()
        n = await service(store, clock).create(
            "t1",
            NewNotification(Channel.SMS, "+14155550123", "x", scheduled_at=clock.now() + timedelta(hours=1)),
        )
        assert n.status is Status.SCHEDULED
        assert store.outbox == []

    async def test_invalid_input_raises_with_every_field_and_stores_nothing(self) -> None:
        store = FakeStore()
        with pytest.raises(ValidationFailed) as info:
            await service(store, FakeClock()).create("t1", NewNotification(Channel.EMAIL, "nope", None))
        assert [d.field for d in info.value.details] == ["recipient", "content"]
        assert store.rows == {} and store.outbox == []

    async def test_max_retries_follow_priority(self) -> None:
        svc = service(FakeStore(), FakeClock())
        high = await svc.create("t", NewNotification(Channel.PUSH, "tok", "x", priority=Priority.HIGH))
        low = await svc.create("t", NewNotification(Channel.PUSH, "tok", "x", priority=Priority.LOW))
        assert (high.max_retries, low.max_retries) == (5, 2)

    async def test_idempotency_key_replays_the_same_request_and_refuses_another(self) -> None:
        store = FakeStore()
        svc = service(store, FakeClock())
        first = await svc.accept("t", NewNotification(Channel.PUSH, "tok", "x", idempotency_key="k"))
        again = await svc.accept("t", NewNotification(Channel.PUSH, "tok", "x", idempotency_key="k"))
        assert (first.replayed, again.replayed) == (False, True)
        assert again.notification.id == first.notification.id
        assert len(store.rows) == 1 and len(store.outbox) == 1
        with pytest.raises(Conflict, match="different request"):
            await svc.accept("t", NewNotification(Channel.PUSH, "tok", "other", idempotency_key="k"))
        other_tenant = await svc.accept("t2", NewNotification(Channel.PUSH, "tok", "x", idempotency_key="k"))
        assert not other_tenant.replayed


class TestBatch:
    async def test_all_or_nothing_with_every_failing_item_named(self) -> None:
        store = FakeStore()
        svc = service(store, FakeClock())
        items = [
            SMS,
            NewNotification(Channel.SMS, "nope", "x"),
            SMS,
            NewNotification(Channel.EMAIL, "a@b.co", None),
        ]
        with pytest.raises(ValidationFailed) as info:
            await svc.accept_batch("t", items)
        assert [d.field for d in info.value.details] == [
            "notifications[1].recipient",
            "notifications[3].content",
        ]
        assert store.rows == {} and store.outbox == []

    async def test_batch_is_stored_in_order_and_counted(self) -> None:
        store, woken = FakeStore(), []
        svc = service(store, FakeClock(), woken)
        accepted = await svc.accept_batch("t", [SMS] * 5, correlation_id="c")
        assert accepted.batch.total == 5
        ids = [n.id for n in accepted.notifications]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert all(n.batch_id == accepted.batch.id for n in accepted.notifications)
        assert len(store.outbox) == 5 and woken == [1]
        _batch, counts = await svc.batch("t", accepted.batch.id)
        assert counts == {Status.PENDING: 5}
        with pytest.raises(NotFound):
            await svc.batch("other", accepted.batch.id)

    async def test_size_bounds_and_duplicate_keys_inside_a_batch(self) -> None:
        svc = service(FakeStore(), FakeClock())
        with pytest.raises(ValidationFailed, match="notifications"):
            await svc.accept_batch("t", [])
        with pytest.raises(ValidationFailed):
            await svc.accept_batch("t", [SMS] * 1001)
        keyed = NewNotification(Channel.SMS, "+14155550123", "x", idempotency_key="k")
        with pytest.raises(ValidationFailed) as info:
            await svc.accept_batch("t", [keyed, SMS, keyed])
        assert [d.field for d in info.value.details] == ["notifications[2].idempotency_key"]

    async def test_batch_key_replays_or_conflicts_and_item_keys_conflict_across_batches(self) -> None:
        store = FakeStore()
        svc = service(store, FakeClock())
        keyed = NewNotification(Channel.SMS, "+14155550123", "x", idempotency_key="item-1")
        first = await svc.accept_batch("t", [keyed, SMS], idempotency_key="b1")
        again = await svc.accept_batch("t", [keyed, SMS], idempotency_key="b1")
        assert again.replayed and [n.id for n in again.notifications] == [n.id for n in first.notifications]
        with pytest.raises(Conflict, match="different batch"):
            await svc.accept_batch("t", [SMS], idempotency_key="b1")
        with pytest.raises(Conflict) as info:
            await svc.accept_batch("t", [SMS, keyed])
        assert [d.field for d in info.value.details] == ["notifications[1].idempotency_key"]


class TestReadAndCancel:
    async def test_other_tenants_do_not_see_it(self) -> None:
        svc = service(FakeStore(), FakeClock())
        n = await svc.create("t1", SMS)
        assert (await svc.get("t1", n.id)).id == n.id
        with pytest.raises(NotFound):
            await svc.get("t2", n.id)

    async def test_cancel_pending_then_cancel_again_conflicts(self) -> None:
        svc = service(FakeStore(), FakeClock())
        n = await svc.create("t1", SMS)
        assert (await svc.cancel("t1", n.id)).status is Status.CANCELLED
        with pytest.raises(IllegalTransition):
            await svc.cancel("t1", n.id)


def deliverer(
    store: FakeStore,
    provider: FakeProvider,
    clock: FakeClock,
    *extra: Route,
    policy: RetryPolicy | None = None,
    pauses: PauseCache | None = None,
    limiter: FakeLimiter | None = None,
) -> Deliverer:
    routes = {c: [Route(provider, FakeBreaker(provider.name)), *extra] for c in Channel}
    return Deliverer(
        store,
        routes,
        clock,
        worker_id="w1",
        lease=timedelta(seconds=30),
        policy=policy,
        pauses=pauses,
        limiter=limiter,
    )


class TestDelivery:
    async def test_success_stores_receipt(self) -> None:
        store, clock, provider = FakeStore(), FakeClock(), FakeProvider("gw")
        n = await service(store, clock).create("t", SMS, correlation_id="corr")
        assert await deliverer(store, provider, clock).deliver(n.id) is DeliveryOutcome.DELIVERED
        stored = store.rows[n.id]
        assert stored.status is Status.DELIVERED and stored.provider_message_id == "msg-1"
        assert stored.sent_at == clock.now() and stored.attempts == 1
        sent = provider.sent[0]
        assert (sent.to, sent.content, sent.attempt, sent.correlation_id) == (
            "+14155550123",
            "hello",
            1,
            "corr",
        )

    async def test_duplicate_record_is_skipped_and_not_sent_twice(self) -> None:
        store, clock, provider = FakeStore(), FakeClock(), FakeProvider()
        n = await service(store, clock).create("t", SMS)
        d = deliverer(store, provider, clock)
        await d.deliver(n.id)
        assert await d.deliver(n.id) is DeliveryOutcome.SKIPPED
        assert len(provider.sent) == 1

    async def test_cancelled_is_never_sent(self) -> None:
        store, clock, provider = FakeStore(), FakeClock(), FakeProvider()
        svc = service(store, clock)
        n = await svc.create("t", SMS)
        await svc.cancel("t", n.id)
        assert await deliverer(store, provider, clock).deliver(n.id) is DeliveryOutcome.SKIPPED
        assert provider.sent == []

    async def test_expired_is_never_sent(self) -> None:
        store, clock, provider = FakeStore(), FakeClock(), FakeProvider()
        n = await service(store, clock).create(
            "t",
            NewNotification(Channel.SMS, "+14155550123", "x", expires_at=clock.now() + timedelta(seconds=5)),
        )
        clock.advance(10)
        assert await deliverer(store, provider, clock).deliver(n.id) is DeliveryOutcome.EXPIRED
        assert store.rows[n.id].status is Status.EXPIRED and provider.sent == []

    async def test_provider_refusal_is_stored_as_failed(self) -> None:
        store, clock, provider = FakeStore(), FakeClock(), rejecting_provider()
        n = await service(store, clock).create("t", SMS)
        assert await deliverer(store, provider, clock).deliver(n.id) is DeliveryOutcome.FAILED
        assert store.rows[n.id].status is Status.FAILED
        assert "bad number" in (store.rows[n.id].error_message or "")

    async def test_result_is_not_stored_over_a_recovered_lease(self) -> None:
        store, clock = FakeStore(), FakeClock()
        n = await service(store, clock).create("t", SMS)

        class SlowProvider(FakeProvider):
            async def send(self, message):  # type: ignore[no-untyped-def]
                clock.advance(60)  # the lease (30 s) runs out while the provider answers
                await store.recover_expired_leases(clock.now(), 10)
                return await super().send(message)

        outcome = await deliverer(store, SlowProvider(), clock).deliver(n.id)
        assert outcome is DeliveryOutcome.CLAIM_LOST
        assert store.rows[n.id].status is Status.PENDING


class TestRelay:
    async def test_drain_publishes_everything_in_batches_once(self) -> None:
        store, clock, publisher = FakeStore(), FakeClock(), FakePublisher()
        svc = service(store, clock)
        for _ in range(7):
            await svc.create("t", SMS)
        relay = OutboxRelay(store, publisher, clock, batch_size=3, poll_interval_s=1, retention=timedelta(0))
        assert await relay.drain() == 7
        assert await relay.drain() == 0
        assert len(publisher.published) == 7 and await store.backlog() == 0

    async def test_failed_publish_leaves_records_for_the_next_pass(self) -> None:
        store, clock, publisher = FakeStore(), FakeClock(), FakePublisher()
        await service(store, clock).create("t", SMS)
        publisher.fail_times = 1
        relay = OutboxRelay(
            store, publisher, clock, batch_size=10, poll_interval_s=0.01, retention=timedelta(0)
        )
        with pytest.raises(ConnectionError):
            await relay.drain()
        assert await store.backlog() == 1
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        for _ in range(100):
            if publisher.published:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
        assert len(publisher.published) == 1 and await store.backlog() == 0


class TestRecovery:
    async def test_sweep_releases_due_schedules_and_dead_leases(self) -> None:
        store, clock = FakeStore(), FakeClock()
        svc = service(store, clock)
        scheduled = await svc.create(
            "t",
            NewNotification(
                Channel.SMS, "+14155550123", "x", scheduled_at=clock.now() + timedelta(seconds=5)
            ),
        )
        stuck = await svc.create("t", SMS)
        await deliverer(store, FakeProvider(), clock).deliver(stuck.id)  # delivered: not stuck
        crashed = await svc.create("t", SMS)
        await store.claim(crashed.id, Claim("dead-worker", clock.now() + timedelta(seconds=30)), clock.now())
        woken: list[int] = []
        recovery = Recovery(
            store,
            clock,
            stale_pending=timedelta(minutes=2),
            interval_s=1,
            on_enqueued=lambda: woken.append(1),
        )
        assert (await recovery.sweep()).enqueued == 0
        clock.advance(31)
        result = await recovery.sweep()
        assert (result.released, result.recovered) == (1, 1)
        assert store.rows[scheduled.id].status is Status.PENDING
        assert store.rows[crashed.id].status is Status.PENDING
        assert woken == [1]


def nid(i: int) -> UUID:
    return uuid7_at(FakeClock().now(), random_bits=i)


class TestDispatcher:
    async def test_high_is_taken_before_a_low_backlog(self) -> None:
        order: list[Priority] = []
        gate = asyncio.Event()

        async def handle(work: Work) -> None:
            order.append(work.priority)
            await gate.wait()

        d = PriorityDispatcher(handle, concurrency=1, buffer_limit=100)
        low, high = Partition("n.low", 0), Partition("n.high", 0)
        for i in range(50):
            d.offer(low, i, Priority.LOW, nid(i))
        task = asyncio.create_task(d.run())
        await asyncio.sleep(0.01)  # one low is now in flight, 49 wait
        d.offer(high, 0, Priority.HIGH, nid(1000))
        d.offer(Partition("n.normal", 0), 0, Priority.NORMAL, nid(1001))
        gate.set()
        while d.handled < 52:
            await asyncio.sleep(0.005)
        d.stop_taking()
        await task
        assert order[:3] == [Priority.LOW, Priority.HIGH, Priority.NORMAL]

    async def test_a_low_backlog_leaves_slots_free_for_higher_priorities(self) -> None:
        started: list[Priority] = []
        gate = asyncio.Event()

        async def handle(work: Work) -> None:
            started.append(work.priority)
            await gate.wait()

        # 16 slots, 16 per channel: low may hold 12, normal 14, high all 16.
        d = PriorityDispatcher(handle, concurrency=16, per_channel_limit=16, buffer_limit=1000)
        for i in range(100):
            d.offer(Partition("n.low", 0), i, Priority.LOW, nid(i), "sms")
        task = asyncio.create_task(d.run())
        await asyncio.sleep(0.01)
        assert started == [Priority.LOW] * 12  # no low finished, yet slots stay free
        for i in range(5):
            d.offer(Partition("n.normal", 0), i, Priority.NORMAL, nid(200 + i), "sms")
        await asyncio.sleep(0.01)
        assert started[12:] == [Priority.NORMAL] * 2
        for i in range(5):
            d.offer(Partition("n.high", 0), i, Priority.HIGH, nid(300 + i), "sms")
        await asyncio.sleep(0.01)
        assert started[14:] == [Priority.HIGH] * 2  # taken at once, without waiting for a low to finish
        gate.set()
        while d.handled < 110:
            await asyncio.sleep(0.005)
        d.stop_taking()
        await task

    async def test_concurrency_is_bounded(self) -> None:
        running, peak = 0, 0

        async def handle(work: Work) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.005)
            running -= 1

        d = PriorityDispatcher(handle, concurrency=4, buffer_limit=1000)
        for i in range(40):
            d.offer(Partition("t", i % 3), i, Priority.NORMAL, nid(i))
        task = asyncio.create_task(d.run())
        while d.handled < 40:
            await asyncio.sleep(0.005)
        d.stop_taking()
        await task
        assert peak == 4

    async def test_commit_never_passes_an_unfinished_offset(self) -> None:
        release: dict[int, asyncio.Event] = {i: asyncio.Event() for i in range(3)}

        async def handle(work: Work) -> None:
            await release[work.offset].wait()

        d = PriorityDispatcher(handle, concurrency=3, buffer_limit=10)
        p = Partition("t", 0)
        for i in range(3):
            d.offer(p, i, Priority.NORMAL, nid(i))
        task = asyncio.create_task(d.run())
        await asyncio.sleep(0.01)
        assert d.commit_offsets() == {p: 0}
        release[1].set()
        release[2].set()
        await asyncio.sleep(0.01)
        assert d.commit_offsets() == {p: 0}  # offset 0 still in flight
        release[0].set()
        await asyncio.sleep(0.01)
        offsets = d.commit_offsets()
        assert offsets == {p: 3}
        d.mark_committed(offsets)
        assert d.commit_offsets() == {}
        d.stop_taking()
        await task

    async def test_a_failing_handler_is_retried_until_it_stores(self) -> None:
        calls = 0

        async def handle(work: Work) -> None:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ConnectionError("database down")

        d = PriorityDispatcher(handle, concurrency=1, buffer_limit=10, retry_delay_s=0.001)
        p = Partition("t", 0)
        d.offer(p, 0, Priority.NORMAL, nid(0))
        task = asyncio.create_task(d.run())
        while d.handled < 1:
            await asyncio.sleep(0.005)
        assert calls == 3 and d.commit_offsets() == {p: 1}
        d.stop_taking()
        await task

    async def test_unreadable_records_are_acknowledged_without_handling(self) -> None:
        handled: list[Work] = []

        async def handle(work: Work) -> None:
            handled.append(work)

        d = PriorityDispatcher(handle, concurrency=1, buffer_limit=10)
        p = Partition("t", 0)
        d.offer(p, 0, Priority.NORMAL, None)
        task = asyncio.create_task(d.run())
        while d.handled < 1:
            await asyncio.sleep(0.005)
        assert handled == [] and d.commit_offsets() == {p: 1}
        d.stop_taking()
        await task

    async def test_revoked_partitions_drop_buffered_work(self) -> None:
        async def handle(work: Work) -> None:
            await asyncio.sleep(1)

        d = PriorityDispatcher(handle, concurrency=1, buffer_limit=10)
        a, b = Partition("t", 0), Partition("t", 1)
        for i in range(3):
            d.offer(a, i, Priority.LOW, nid(i))
            d.offer(b, i, Priority.LOW, nid(10 + i))
        d.revoke([a])
        assert d.buffered(Priority.LOW) == 3
        assert set(d.commit_offsets()) == {b}
        assert d.is_full(Priority.LOW) is False

    async def test_drain_cancels_what_outlives_the_grace(self) -> None:
        async def handle(work: Work) -> None:
            await asyncio.sleep(10)

        d = PriorityDispatcher(handle, concurrency=2, buffer_limit=10)
        p = Partition("t", 0)
        d.offer(p, 0, Priority.NORMAL, nid(0))
        task = asyncio.create_task(d.run())
        await asyncio.sleep(0.01)
        d.stop_taking()
        assert await d.drain(0.05) == 1
        await task
        assert d.commit_offsets() == {p: 0}  # the cut delivery is read again by the next owner


async def test_transient_errors_are_retriable_and_permanent_are_not() -> None:
    assert TransientProviderError("x").retriable is True
    assert rejecting_provider().script[0].retriable is False  # type: ignore[union-attr]


async def test_no_delivery_starts_after_stop_taking() -> None:
    started: list[int] = []
    gate = asyncio.Event()

    async def handle(work: Work) -> None:
        started.append(work.offset)
        await gate.wait()

    d = PriorityDispatcher(handle, concurrency=2, buffer_limit=10)
    p = Partition("t", 0)
    for i in range(6):
        d.offer(p, i, Priority.NORMAL, nid(i))
    task = asyncio.create_task(d.run())
    await asyncio.sleep(0.01)
    assert started == [0, 1]
    d.stop_taking()
    gate.set()  # the two in flight finish and free their slots
    assert await d.drain(1.0) == 0
    await asyncio.wait_for(task, 1.0)
    assert started == [0, 1]
    assert d.commit_offsets() == {p: 2}


def transient(status: int = 503, retry_after_s: float | None = None) -> TransientProviderError:
    return TransientProviderError(f"HTTP {status}", status=status, retry_after_s=retry_after_s)


class TestRetriesAndFailover:
    async def test_transient_then_success_retries_inside_the_jitter_bounds(self) -> None:
        store, clock = FakeStore(), FakeClock()
        provider = FakeProvider("gw", [transient(), transient(), None])
        n = await service(store, clock).create("t", SMS)
        d = deliverer(store, provider, clock, policy=RetryPolicy(base_s=1, cap_s=300))
        for retry in range(2):
            failed_at = clock.now()
            assert await d.deliver(n.id, "sms") is DeliveryOutcome.RETRYING
            waiting = store.rows[n.id]
            assert waiting.status is Status.RETRYING
            assert waiting.next_attempt_at is not None
            assert failed_at <= waiting.next_attempt_at <= failed_at + timedelta(seconds=2**retry)
            assert await d.deliver(n.id, "sms") is DeliveryOutcome.SKIPPED  # a record that came early
            clock.current = waiting.next_attempt_at
        assert await d.deliver(n.id, "sms") is DeliveryOutcome.DELIVERED
        assert store.rows[n.id].attempts == 3
        assert [c.outcome for c in store.ledger[n.id]] == [
            AttemptOutcome.TRANSIENT,
            AttemptOutcome.TRANSIENT,
            AttemptOutcome.DELIVERED,
        ]
        assert [m.attempt for m in provider.sent] == [1, 2, 3]

    async def test_retry_after_wins_when_longer_than_the_jitter(self) -> None:
        store, clock = FakeStore(), FakeClock()
        n = await service(store, clock).create("t", SMS)
        await deliverer(store, FakeProvider("gw", [transient(429, retry_after_s=30)]), clock).deliver(n.id)
        assert store.rows[n.id].next_attempt_at == clock.now() + timedelta(seconds=30)

    async def test_exhausted_retries_fail_and_dead_letter(self) -> None:
        store, clock = FakeStore(), FakeClock()
        provider = FakeProvider("gw", [transient()] * 4)
        n = await service(store, clock).create("t", SMS)  # normal: 3 retries after the first attempt
        d = deliverer(store, provider, clock)
        outcomes = []
        for _ in range(4):
            outcomes.append(await d.deliver(n.id))
            clock.advance(600)
        assert outcomes == [DeliveryOutcome.RETRYING] * 3 + [DeliveryOutcome.FAILED]
        failed = store.rows[n.id]
        assert failed.status is Status.FAILED and "retries exhausted after 4 attempts" in (
            failed.error_message or ""
        )
        assert [r.kind for r in store.dispatches] == [OutboxKind.DISPATCH, OutboxKind.DEAD_LETTER]

    async def test_replay_brings_fresh_retries_and_keeps_history(self) -> None:
        store, clock = FakeStore(), FakeClock()
        provider = FakeProvider("gw", [PermanentProviderError("HTTP 400", status=400), transient(), None])
        svc = service(store, clock)
        n = await svc.create("t", NewNotification(Channel.SMS, "+14155550123", "x", priority=Priority.LOW))
        d = deliverer(store, provider, clock)
        assert await d.deliver(n.id) is DeliveryOutcome.FAILED
        await store.replay("t", n.id, clock.now())
        assert await d.deliver(n.id) is DeliveryOutcome.RETRYING
        clock.advance(600)
        assert await d.deliver(n.id) is DeliveryOutcome.DELIVERED
        assert len(store.ledger[n.id]) == 3

    async def test_primary_failure_fails_over_to_the_secondary_in_the_same_attempt(self) -> None:
        store, clock = FakeStore(), FakeClock()
        primary, secondary = FakeProvider("primary", [transient()]), FakeProvider("secondary")
        n = await service(store, clock).create("t", SMS)
        d = deliverer(store, primary, clock, Route(secondary, FakeBreaker("secondary")))
        assert await d.deliver(n.id) is DeliveryOutcome.DELIVERED
        assert store.rows[n.id].provider == "secondary"
        assert [(c.attempt, c.provider, c.outcome) for c in store.ledger[n.id]] == [
            (1, "primary", AttemptOutcome.TRANSIENT),
            (1, "secondary", AttemptOutcome.DELIVERED),
        ]

    async def test_open_breaker_skips_to_the_secondary_without_a_call(self) -> None:
        store, clock = FakeStore(), FakeClock()
        primary, secondary = FakeProvider("primary"), FakeProvider("secondary")
        n = await service(store, clock).create("t", SMS)
        routes = {
            c: [Route(primary, FakeBreaker("p", open_for_s=10)), Route(secondary, FakeBreaker("s"))]
            for c in Channel
        }
        d = Deliverer(store, routes, clock, worker_id="w", lease=timedelta(seconds=30))
        assert await d.deliver(n.id) is DeliveryOutcome.DELIVERED
        assert primary.sent == [] and len(secondary.sent) == 1
        assert [c.provider for c in store.ledger[n.id]] == ["secondary"]

    async def test_every_breaker_open_waits_without_using_a_retry(self) -> None:
        store, clock = FakeStore(), FakeClock()
        provider = FakeProvider("gw")
        n = await service(store, clock).create("t", SMS)
        routes = {c: [Route(provider, FakeBreaker("gw", open_for_s=7))] for c in Channel}
        d = Deliverer(store, routes, clock, worker_id="w", lease=timedelta(seconds=30))
        for _ in range(10):  # far more than the retry budget: never fails
            assert await d.deliver(n.id) is DeliveryOutcome.RETRYING
            waiting = store.rows[n.id]
            assert waiting.next_attempt_at == clock.now() + timedelta(seconds=7)
            clock.advance(7)
        assert store.rows[n.id].attempts == 0 and provider.sent == []

    async def test_a_failed_breaker_trial_is_recorded_but_uses_no_retry(self) -> None:
        store, clock = FakeStore(), FakeClock()
        provider = FakeProvider("gw", [transient()] * 10)  # down for ten calls
        breaker = FakeBreaker("gw", half_open_for_s=5)
        n = await service(store, clock).create("t", SMS)  # normal: 3 retries
        d = Deliverer(
            store,
            {c: [Route(provider, breaker)] for c in Channel},
            clock,
            worker_id="w",
            lease=timedelta(seconds=30),
        )
        for trial in range(10):  # each round is a trial that fails: far more than the retry budget
            breaker.open_for_s = None  # the cooldown is over: half-open, one trial
            assert await d.deliver(n.id) is DeliveryOutcome.RETRYING
            waiting = store.rows[n.id]
            assert waiting.attempts == 0, trial  # no retry used up
            assert waiting.next_attempt_at == clock.now() + timedelta(seconds=5)  # the breaker's cooldown
            assert "trial call failed" in (waiting.error_message or "")
            clock.advance(5)
        ledger = store.ledger[n.id]
        assert [(c.attempt, c.outcome, c.breaker_trial) for c in ledger] == [
            (1, AttemptOutcome.TRANSIENT, True)
        ] * 10
        breaker.open_for_s = None
        assert await d.deliver(n.id) is DeliveryOutcome.DELIVERED  # the provider is back
        assert store.rows[n.id].attempts == 1

    async def test_paused_channel_parks_without_claiming(self) -> None:
        store, clock = FakeStore(), FakeClock()
        provider, limiter = FakeProvider("gw"), FakeLimiter()
        n = await service(store, clock).create("t", SMS)
        other = await service(store, clock).create("u", SMS)
        await store.set_paused("t", Channel.SMS, True, clock.now())  # tenant t's own pause
        pauses = PauseCache(store.pauses, clock, ttl_s=0.5)
        d = deliverer(store, provider, clock, pauses=pauses, limiter=limiter)
        assert await d.deliver(n.id, "sms", "t") is DeliveryOutcome.PAUSED
        assert store.rows[n.id].status is Status.PENDING and n.id in store.parked
        assert provider.sent == [] and limiter.acquired == []
        assert await d.deliver(other.id, "sms", "u") is DeliveryOutcome.DELIVERED  # another tenant
        await store.set_paused("t", Channel.SMS, False, clock.now())
        assert await d.deliver(n.id, "sms", "t") is DeliveryOutcome.PAUSED  # the cache is still fresh
        clock.advance(0.5)
        assert await store.requeue_parked(clock.now(), 10) == 1
        assert await d.deliver(n.id, "sms", "t") is DeliveryOutcome.DELIVERED
        assert limiter.acquired == ["sms", "sms"]


async def test_dispatcher_keeps_a_slow_channel_from_taking_every_slot() -> None:
    release_sms = asyncio.Event()
    done: list[str] = []

    async def handle(work: Work) -> None:
        if work.channel == "sms":
            await release_sms.wait()
        done.append(str(work.channel))

    d = PriorityDispatcher(handle, concurrency=4, per_channel_limit=2, buffer_limit=100)
    p = Partition("t", 0)
    for i in range(6):
        d.offer(p, i, Priority.HIGH, nid(i), "sms")
    for i in range(6, 9):
        d.offer(p, i, Priority.LOW, nid(i), "email")
    task = asyncio.create_task(d.run())
    while done.count("email") < 3:
        await asyncio.sleep(0.005)
    assert d.in_flight == 2  # the two sms stuck waiting hold only their channel's share
    release_sms.set()
    while d.handled < 9:
        await asyncio.sleep(0.005)
    d.stop_taking()
    await task


class TestPauseScope:
    """Who may pause what: a tenant key its own traffic; everyone else's needs an admin key."""

    def key(self, tenant: str, scope: KeyScope = KeyScope.TENANT) -> ApiKey:
        return ApiKey(uuid4(), tenant, "k", "ntf_", "h", datetime(2026, 1, 1, tzinfo=UTC), scope=scope)

    def test_a_tenant_key_acts_on_its_own_tenant_by_default_and_on_request(self) -> None:
        assert pause_target(self.key("b"), None, None) == "b"
        assert pause_target(self.key("b"), PauseScope.TENANT, None) == "b"
        assert pause_target(self.key("b"), None, "b") == "b"

    def test_a_tenant_key_may_not_touch_the_global_switch_or_another_tenant(self) -> None:
        for scope, tenant in [(PauseScope.GLOBAL, None), (None, "a"), (PauseScope.TENANT, "a")]:
            with pytest.raises(Forbidden):
                pause_target(self.key("b"), scope, tenant)

    def test_an_admin_key_holds_the_global_switch_and_reaches_any_tenant(self) -> None:
        admin = self.key("ops", KeyScope.ADMIN)
        assert pause_target(admin, None, None) is None
        assert pause_target(admin, PauseScope.GLOBAL, None) is None
        assert pause_target(admin, None, "a") == "a"
        assert pause_target(admin, PauseScope.TENANT, None) == "ops"
        with pytest.raises(Forbidden):  # contradictory: global names no tenant
            pause_target(admin, PauseScope.GLOBAL, "a")

    async def test_operations_pause_one_tenant_and_report_both_scopes(self) -> None:
        store, clock = FakeStore(), FakeClock()
        ops = Operations(store, clock)
        state = await ops.set_paused(self.key("b"), True, Channel.SMS)
        assert (state.tenant_id, state.is_paused(Channel.SMS), state.is_paused(Channel.EMAIL)) == (
            "b",
            True,
            False,
        )
        assert not (await ops.delivery_state("a")).is_paused(Channel.SMS)
        await ops.set_paused(self.key("ops", KeyScope.ADMIN), True)
        a = await ops.delivery_state("a")
        assert a.paused_all and a.everyone.all_channels and not a.tenant.all_channels


class FlakyStore(FakeStore):
    """A FakeStore whose database is unreachable for the next ``failures`` attempts to store an outcome."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.store_calls = 0

    async def record_result(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.store_calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database is unreachable")
        return await super().record_result(*args, **kwargs)


class ClockSleep:
    """``sleep`` for the Deliverer that moves a FakeClock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)


class TestStoringTheOutcome:
    def make(
        self, store: FakeStore, provider: FakeProvider, clock: FakeClock, lease_s: float = 30
    ) -> Deliverer:
        return Deliverer(
            store,
            {c: [Route(provider, FakeBreaker(provider.name))] for c in Channel},
            clock,
            worker_id="w",
            lease=timedelta(seconds=lease_s),
            round_budget=timedelta(seconds=5),
            sleep=ClockSleep(clock),
        )

    async def test_an_outcome_the_database_refused_is_stored_again_without_calling_the_provider(self) -> None:
        store, clock, provider = FlakyStore(failures=4), FakeClock(), FakeProvider("gw")
        n = await service(store, clock).create("t", SMS)
        assert await self.make(store, provider, clock).deliver(n.id) is DeliveryOutcome.DELIVERED
        assert len(provider.sent) == 1 and store.store_calls == 5
        assert store.rows[n.id].status is Status.DELIVERED

    async def test_past_its_lease_the_outcome_is_given_up_and_never_sent_again_by_this_worker(self) -> None:
        store, clock, provider = FlakyStore(failures=10_000), FakeClock(), FakeProvider("gw")
        n = await service(store, clock).create("t", SMS)
        with pytest.raises(OutcomeNotStored):
            await self.make(store, provider, clock, lease_s=10).deliver(n.id)
        assert len(provider.sent) == 1
        assert store.rows[n.id].status is Status.PROCESSING  # recovered once the lease has run out
        clock.advance(10)
        assert await store.recover_expired_leases(clock.now(), 10) == 1

    async def test_a_token_wait_that_ate_into_the_lease_extends_it_before_the_round(self) -> None:
        store, clock, provider = FakeStore(), FakeClock(), FakeProvider("gw")
        n = await service(store, clock).create("t", SMS)

        class SlowTokens(FakeLimiter):
            async def acquire(self, key: str) -> float:
                clock.advance(20)  # a long wait for a token
                return 20.0

        d = Deliverer(
            store,
            {c: [Route(provider, FakeBreaker("gw"))] for c in Channel},
            clock,
            worker_id="w",
            lease=timedelta(seconds=25),
            round_budget=timedelta(seconds=10),
            limiter=SlowTokens(),
        )

        class Watching(FakeProvider):
            async def send(self, message):  # type: ignore[no-untyped-def]
                lease_left = store.leases[message.notification_id].lease_until - clock.now()
                assert lease_left >= timedelta(seconds=10), lease_left  # a whole round fits
                return await super().send(message)

        d._routes = {c: [Route(Watching("gw"), FakeBreaker("gw"))] for c in Channel}
        assert await d.deliver(n.id) is DeliveryOutcome.DELIVERED

    def test_a_lease_shorter_than_a_round_is_refused(self) -> None:
        with pytest.raises(ValueError, match="must be longer than a delivery round"):
            Deliverer(
                FakeStore(),
                {},
                FakeClock(),
                worker_id="w",
                lease=timedelta(seconds=10),
                round_budget=timedelta(seconds=10),
            )


async def test_dispatcher_does_not_redeliver_when_the_outcome_could_not_be_stored() -> None:
    calls: list[int] = []

    async def handle(work: Work) -> None:
        calls.append(work.offset)
        raise OutcomeNotStored("the database stayed down")

    dispatcher = PriorityDispatcher(handle, concurrency=2, buffer_limit=10, retry_delay_s=0.01)
    p = Partition("t", 0)
    dispatcher.offer(p, 0, Priority.NORMAL, uuid7_at(datetime.now(UTC)))
    running = asyncio.create_task(dispatcher.run())
    for _ in range(100):
        if dispatcher.handled:
            break
        await asyncio.sleep(0.01)
    dispatcher.stop_taking()
    await running
    assert calls == [0]  # handled once: the provider is not called again
    assert dispatcher.commit_offsets() == {p: 1}  # lease recovery writes a new record; this one is done


class TestAuthenticator:
    async def keys(self) -> tuple[FakeApiKeyStore, FakeClock, str]:
        store, clock = FakeApiKeyStore(), FakeClock()
        _, secret = await KeyService(store, clock).create("real", "t")
        return store, clock, secret

    async def test_a_value_not_shaped_like_a_key_is_refused_without_a_lookup(self) -> None:
        store, clock, _ = await self.keys()
        auth = Authenticator(store, clock)
        for bogus in ("Bearer ntf_short", "Bearer " + "x" * 47, "Bearer ntf_" + "é" * 43, "Basic abc", ""):
            with pytest.raises(Unauthorized):
                await auth.authenticate(bogus)
        assert store.lookups == 0

    async def test_made_up_keys_never_evict_a_real_one_from_the_cache(self) -> None:
        store, clock, secret = await self.keys()
        auth = Authenticator(store, clock, cache_ttl_s=60, known_size=10, unknown_size=10)
        assert (await auth.authenticate(f"Bearer {secret}")).name == "real"
        for _ in range(1000):  # a flood of well-shaped, unknown keys
            with pytest.raises(Unauthorized):
                await auth.authenticate(f"Bearer {new_secret()}")
        lookups = store.lookups
        assert (await auth.authenticate(f"Bearer {secret}")).name == "real"
        assert store.lookups == lookups  # still cached: the flood only evicted other made-up keys

    async def test_a_revocation_is_seen_within_the_cache_time(self) -> None:
        store, clock, secret = await self.keys()
        auth = Authenticator(store, clock, cache_ttl_s=5)
        key = await auth.authenticate(f"Bearer {secret}")
        await KeyService(store, clock).revoke(key.id)
        assert await auth.still_valid(key)  # cached
        clock.advance(5)
        assert not await auth.still_valid(key)
        with pytest.raises(Unauthorized):
            await auth.authenticate(f"Bearer {secret}")
