"""Status webhooks in the core: the URL rule, the dispatcher's decisions (on fakes of its ports)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from notify.app.webhooks import WebhookDispatcher, WebhookPolicy
from notify.domain.webhooks import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    check_webhook_url,
    new_signing_secret,
)
from tests.fakes import FakeBreaker, FakeClock, FakeWebhookQueue, FakeWebhookSender


@pytest.mark.parametrize(
    ("url", "allow_private", "code"),
    [
        ("https://hooks.example.com/notify", False, None),
        ("http://hooks.example.com/notify", False, "insecure_url"),
        ("https://127.0.0.1/x", False, "private_url"),
        ("https://10.1.2.3/x", False, "private_url"),
        ("https://[::1]/x", False, "private_url"),
        ("https://169.254.169.254/latest/meta-data", False, "private_url"),  # cloud metadata
        ("https://localhost:8443/x", False, "private_url"),
        ("https://db.internal/x", False, "private_url"),
        ("https://user:pw@hooks.example.com/x", False, "invalid_url"),
        ("ftp://hooks.example.com/x", False, "invalid_url"),
        ("https://hooks.example.com:99999/x", False, "invalid_url"),
        ("not a url", False, "invalid_url"),
        ("http://127.0.0.1:9000/hook", True, None),  # development and tests
        ("https://8.8.8.8/hook", False, None),
    ],
)
def test_an_endpoint_url_is_https_to_a_public_host_unless_private_ones_are_allowed(
    url: str, allow_private: bool, code: str | None
) -> None:
    problem = check_webhook_url(url, allow_private=allow_private)
    assert (problem.code if problem else None) == code


def test_a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends() -> None:
    clock = FakeClock()
    now = clock.now()
    old, new = new_signing_secret(), new_signing_secret()
    assert old != new and old.startswith("whsec_")
    endpoint = _endpoint(secret=new, previous_secret=old, previous_secret_until=now + timedelta(hours=1))
    assert endpoint.secrets_at(now) == [new, old]
    assert endpoint.secrets_at(now + timedelta(hours=1)) == [new]


def _endpoint(**fields: object) -> WebhookEndpoint:
    now = FakeClock().now()
    base: dict[str, object] = dict(
        id=uuid4(),
        tenant_id="t1",
        url="https://hooks.example.com/x",
        statuses=frozenset(),
        channels=frozenset(),
        enabled=True,
        secret=new_signing_secret(),
        created_at=now,
        updated_at=now,
    )
    return WebhookEndpoint(**{**base, **fields})  # type: ignore[arg-type]


def _delivery(endpoint: WebhookEndpoint, id: int = 1, attempts: int = 0) -> WebhookDelivery:
    return WebhookDelivery(
        id=id,
        endpoint_id=endpoint.id,
        notification_id=uuid4(),
        event_id=100 + id,
        payload={"status": "delivered"},
        status=DeliveryStatus.PENDING,
        attempts=attempts,
        created_at=FakeClock().now(),
    )


def _dispatcher(
    queue: FakeWebhookQueue,
    sender: FakeWebhookSender,
    clock: FakeClock,
    breaker: FakeBreaker,
    **policy: float,
) -> WebhookDispatcher:
    return WebhookDispatcher(
        queue,
        sender,
        clock,
        lambda endpoint_id: breaker,
        owner="w1",
        policy=WebhookPolicy(retry_base_s=2.0, retry_cap_s=60.0, **policy),  # type: ignore[arg-type]
    )


async def test_a_2xx_is_delivered_and_ends_the_endpoints_failing_streak() -> None:
    clock = FakeClock()
    endpoint = _endpoint(failing_since=clock.now() - timedelta(minutes=5))
    queue = FakeWebhookQueue([(_delivery(endpoint), endpoint)])
    sender = FakeWebhookSender(clock, [204])
    assert await _dispatcher(queue, sender, clock, FakeBreaker()).round() == 1
    assert [(i, s, at) for i, s, at, _ in queue.recorded] == [(1, DeliveryStatus.DELIVERED, None)]
    assert queue.succeeded == [endpoint.id]


async def test_a_failure_is_retried_after_a_jittered_backoff_until_attempts_run_out() -> None:
    clock = FakeClock()
    endpoint = _endpoint()
    queue = FakeWebhookQueue(
        [(_delivery(endpoint, 1, attempts=2), endpoint), (_delivery(endpoint, 2, 4), endpoint)]
    )
    sender = FakeWebhookSender(clock, [503, None])
    await _dispatcher(queue, sender, clock, FakeBreaker(), max_attempts=5).round()
    (first, second) = sorted(queue.recorded, key=lambda r: r[0])
    assert first[1] is DeliveryStatus.PENDING and first[2] is not None
    # The third attempt failed: the next waits up to base * 2**2 = 8 s.
    assert timedelta(0) <= first[2] - clock.now() <= timedelta(seconds=8)
    assert (second[1], second[2]) == (DeliveryStatus.FAILED, None)  # the fifth: no attempts left
    assert second[3].http_status is None and first[3].http_status == 503


async def test_an_open_breaker_postpones_without_using_an_attempt() -> None:
    clock = FakeClock()
    endpoint = _endpoint()
    queue = FakeWebhookQueue([(_delivery(endpoint), endpoint)])
    sender = FakeWebhookSender(clock, [])
    await _dispatcher(queue, sender, clock, FakeBreaker(open_for_s=7.0)).round()
    assert sender.sent == [] and queue.recorded == []
    assert queue.postponed == [(1, clock.now() + timedelta(seconds=7))]


async def test_an_endpoint_failing_longer_than_allowed_is_disabled() -> None:
    clock = FakeClock()
    endpoint = _endpoint()
    queue = FakeWebhookQueue()
    sender = FakeWebhookSender(clock, [500, 500])
    dispatcher = _dispatcher(queue, sender, clock, FakeBreaker(), disable_after_s=60.0)
    queue.due = [(_delivery(endpoint, 1), endpoint)]
    await dispatcher.round()
    assert queue.disabled == {}
    clock.advance(61)
    queue.due = [(_delivery(endpoint, 2), endpoint)]
    await dispatcher.round()
    assert "refused" in queue.disabled[endpoint.id]
