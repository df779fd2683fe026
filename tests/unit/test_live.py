"""Live status fan-out (notify.app.live) and the status event's public shape (notify.domain.events)."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import replace

import pytest

from notify.app.live import Filter, LiveHub, Subscriber
from notify.domain.events import StatusEvent
from tests.fakes import status_event

event = status_event


async def queued(subscriber: Subscriber) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while subscriber.pending:
        message = await subscriber.next()
        assert message is not None
        out.append(message)
    return out


async def ids(subscriber: Subscriber) -> list[object]:
    return [m["notification_id"] for m in await queued(subscriber)]


class TestStatusEvent:
    def test_public_has_exactly_the_documented_fields_and_keeps_tenant_and_seq_inside(self) -> None:
        e = StatusEvent(
            notification_id="n-1",
            tenant_id="secret-tenant",
            batch_id="b-1",
            channel="email",
            status="retrying",
            previous_status="processing",
            attempt=2,
            error="gw: HTTP 503",
            provider="gw",
            timestamp="2026-01-01T12:00:00Z",
            seq=987654,
            next_attempt_at="2026-01-01T12:00:03Z",
            priority="high",
            event_id=42,
        )
        public = e.public()
        assert public == {
            "event_id": 42,
            "notification_id": "n-1",
            "batch_id": "b-1",
            "channel": "email",
            "priority": "high",
            "status": "retrying",
            "previous_status": "processing",
            "attempt": 2,
            "error": "gw: HTTP 503",
            "provider": "gw",
            "next_attempt_at": "2026-01-01T12:00:03Z",
            "timestamp": "2026-01-01T12:00:00Z",
        }
        assert "tenant_id" not in public and "seq" not in public
        assert "secret-tenant" not in public.values() and 987654 not in public.values()


class TestFilter:
    def test_no_filter_matches_everything(self) -> None:
        f = Filter()
        assert f.matches(event("a", channel="sms"))
        assert f.matches(event("b", channel="email", batch_id="b1"))

    def test_notification_ids_or_batch_ids_select(self) -> None:
        f = Filter(notification_ids=frozenset({"a"}), batch_ids=frozenset({"b1"}))
        assert f.matches(event("a"))  # named by id
        assert f.matches(event("x", batch_id="b1"))  # not named, but its batch is
        assert f.matches(event("a", batch_id="other"))  # named by id, another batch
        assert not f.matches(event("x"))
        assert not f.matches(event("x", batch_id="b2"))

    def test_an_event_of_a_batch_is_matched_by_the_batch_id_alone(self) -> None:
        f = Filter(batch_ids=frozenset({"b1"}))
        assert f.matches(event("any", batch_id="b1"))
        assert not f.matches(event("any", batch_id="b2"))
        assert not f.matches(event("any", batch_id=None))

    def test_channels_narrow_the_ids(self) -> None:
        f = Filter(
            notification_ids=frozenset({"a"}), batch_ids=frozenset({"b1"}), channels=frozenset({"email"})
        )
        assert f.matches(event("a", channel="email"))
        assert not f.matches(event("a", channel="sms"))
        assert not f.matches(event("x", batch_id="b1", channel="push"))
        assert not f.matches(event("x", channel="email"))  # right channel, not selected

    def test_channels_alone_select_by_channel(self) -> None:
        f = Filter(channels=frozenset({"sms", "push"}))
        assert f.matches(event("a", channel="sms"))
        assert f.matches(event("b", channel="push", batch_id="b1"))
        assert not f.matches(event("c", channel="email"))

    def test_describe_lists_sorted(self) -> None:
        f = Filter(notification_ids=frozenset({"b", "a"}), channels=frozenset({"sms"}))
        assert f.describe() == {"notification_ids": ["a", "b"], "batch_ids": [], "channels": ["sms"]}


class TestSubscriber:
    async def test_next_returns_queued_messages_in_order_then_none_after_close(self) -> None:
        s = Subscriber("t1", capacity=5)
        for i in range(3):
            assert s.offer({"i": i})
        assert s.pending == 3
        assert [await s.next() for _ in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]
        s.offer({"i": 3})
        s.closed.set()
        assert await s.next() is None  # what was queued is abandoned once closed
        assert s.offer({"i": 4}) is False

    async def test_next_waits_for_a_message_and_wakes_on_close(self) -> None:
        s = Subscriber("t1", capacity=5)
        waiting = asyncio.create_task(s.next())
        await asyncio.sleep(0)
        assert not waiting.done()
        s.offer({"i": 1})
        assert await asyncio.wait_for(waiting, 1) == {"i": 1}

        waiting = asyncio.create_task(s.next())
        await asyncio.sleep(0)
        s.closed.set()
        assert await asyncio.wait_for(waiting, 1) is None

    async def test_offer_beyond_capacity_overflows_and_closes(self) -> None:
        s = Subscriber("t1", capacity=2)
        assert s.offer({"i": 0}) and s.offer({"i": 1})
        assert not s.overflowed and not s.closed.is_set()
        assert s.offer({"i": 2}) is False
        assert s.overflowed and s.closed.is_set()


class TestStatusHub:
    async def test_fan_out_to_every_subscriber_of_the_tenant_and_none_of_another(self) -> None:
        hub = LiveHub(capacity=10)
        a1, a2, b = hub.connect("t1"), hub.connect("t1"), hub.connect("t2")
        assert hub.subscribers == 3
        assert hub.publish(event("n1", tenant_id="t1")) == 2
        assert hub.publish(event("n2", tenant_id="t2")) == 1
        assert hub.publish(event("n3", tenant_id="nobody-listening")) == 0
        assert await ids(a1) == ["n1"]
        assert await ids(a2) == ["n1"]
        assert await ids(b) == ["n2"]

    async def test_subscribers_get_the_public_form(self) -> None:
        hub = LiveHub(capacity=10)
        s = hub.connect("t1")
        e = event("n1", batch_id="b1")
        hub.publish(e)
        assert await queued(s) == [e.public()]

    async def test_each_subscriber_gets_only_what_its_filter_selects(self) -> None:
        hub = LiveHub(capacity=10)
        everything, by_id, by_batch, by_channel = (hub.connect("t1") for _ in range(4))
        by_id.filter = Filter(notification_ids=frozenset({"n1"}))
        by_batch.filter = Filter(batch_ids=frozenset({"b1"}))
        by_channel.filter = Filter(channels=frozenset({"email"}))
        for published in [
            event("n1", channel="sms"),
            event("n2", channel="email", batch_id="b1"),
            event("n3", channel="push"),
        ]:
            hub.publish(published)
        assert await ids(everything) == ["n1", "n2", "n3"]
        assert await ids(by_id) == ["n1"]
        assert await ids(by_batch) == ["n2"]
        assert await ids(by_channel) == ["n2"]

    async def test_a_full_subscriber_is_dropped_while_another_keeps_receiving_everything(self) -> None:
        assert not inspect.iscoroutinefunction(LiveHub.publish)  # publish cannot wait on anyone
        hub = LiveHub(capacity=2)
        slow, fast = hub.connect("t1"), hub.connect("t1")
        got: list[object] = []
        delivered: list[int] = []
        for i in range(20):
            delivered.append(hub.publish(event(f"n{i}")))
            message = await fast.next()  # the fast one reads every event; the slow one never does
            assert message is not None
            got.append(message["notification_id"])
        assert got == [f"n{i}" for i in range(20)]
        assert delivered == [2, 2] + [1] * 18
        assert slow.overflowed and slow.closed.is_set()
        assert not fast.overflowed and not fast.closed.is_set()
        assert hub.subscribers == 1
        assert await slow.next() is None

    async def test_publish_to_subscribers_that_never_read_returns_at_once(self) -> None:
        hub = LiveHub(capacity=2)
        subscribers = [hub.connect("t1") for _ in range(3)]
        for i in range(1000):
            hub.publish(event(f"n{i}"))
        assert hub.subscribers == 0
        assert all(s.overflowed for s in subscribers)

    async def test_a_re_published_or_older_event_is_not_delivered_twice(self) -> None:
        hub = LiveHub(capacity=10)
        s = hub.connect("t1")
        first = event("n1", status="processing", seq=10)
        assert hub.publish(first) == 1
        assert hub.publish(first) == 0  # the same event again (a relay re-publishing)
        assert hub.publish(replace(first, status="pending", seq=9)) == 0  # older
        assert hub.publish(replace(first, status="delivered", seq=11)) == 1
        assert hub.publish(event("n2", seq=5)) == 1  # seqs are tracked per notification
        assert [m["status"] for m in await queued(s)] == ["processing", "delivered", "delivered"]

    async def test_the_memory_of_seqs_is_bounded(self) -> None:
        hub = LiveHub(capacity=100, remember=2)
        s = hub.connect("t1")
        n1, n2, n3 = event("n1", seq=1), event("n2", seq=2), event("n3", seq=3)
        for published in (n1, n2, n3):  # n1 is forgotten: only the last two notifications are kept
            hub.publish(published)
        assert hub.publish(n3) == 0  # remembered
        assert hub.publish(n2) == 0  # remembered
        # Bounded memory means the oldest one is forgotten: its repeat goes out again.
        assert hub.publish(n1) == 1
        assert len(hub._last_seq) <= 2
        await queued(s)
        for i in range(50):
            hub.publish(event(f"m{i}"))
        assert len(hub._last_seq) == 2

    async def test_disconnect_stops_delivery_and_closes(self) -> None:
        hub = LiveHub(capacity=10)
        s, other = hub.connect("t1"), hub.connect("t1")
        hub.disconnect(s)
        assert s.closed.is_set() and hub.subscribers == 1
        assert hub.publish(event("n1")) == 1
        assert s.pending == 0 and other.pending == 1
        assert not s.overflowed  # a disconnect is not a drop
        hub.disconnect(s)  # twice is harmless

    async def test_close_all_closes_everyone(self) -> None:
        hub = LiveHub(capacity=10)
        subscribers = [hub.connect(t) for t in ("t1", "t1", "t2")]
        waiting = asyncio.create_task(subscribers[0].next())
        await asyncio.sleep(0)
        hub.close_all()
        assert await asyncio.wait_for(waiting, 1) is None
        assert all(s.closed.is_set() for s in subscribers)
        assert not any(s.overflowed for s in subscribers)
        assert hub.subscribers == 0
        assert hub.publish(event("n1")) == 0


@pytest.mark.parametrize("capacity", [1, 3])
async def test_overflow_happens_exactly_past_capacity(capacity: int) -> None:
    hub = LiveHub(capacity=capacity)
    s = hub.connect("t1")
    for i in range(capacity):
        assert hub.publish(event(f"n{i}")) == 1
    assert not s.overflowed
    assert hub.publish(event("one-too-many")) == 0
    assert s.overflowed and s.closed.is_set() and hub.subscribers == 0
