"""The circuit breaker (on the real aiobreaker) and the per-channel rate limiter (on the real aiolimiter).

Cooldowns run on an injected clock, so the tests are exact and never sleep for them; one test uses the real
monotonic clock with a short timeout to prove the default wiring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from notify.adapters.resilience import AioCircuitBreaker, ChannelRateLimiter
from notify.domain.errors import (
    CircuitOpen,
    PermanentProviderError,
    TransientProviderError,
    TrialCallFailed,
)

FAIL_MAX = 3
COOLDOWN_S = 10.0


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Provider:
    """Stands in for a provider gateway: counts calls and answers as told."""

    def __init__(self) -> None:
        self.calls = 0

    def ok(self, value: str = "ok") -> Callable[[], Awaitable[str]]:
        async def fn() -> str:
            self.calls += 1
            return value

        return fn

    def fail(self, error: Exception | None = None) -> Callable[[], Awaitable[str]]:
        async def fn() -> str:
            self.calls += 1
            raise error or TransientProviderError("provider timed out")

        return fn


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> list[tuple[str, str]]:
    return []


def make_breaker(
    clock: FakeClock, transitions: list[tuple[str, str]] | None = None, *, trials: int = 1
) -> AioCircuitBreaker:
    return AioCircuitBreaker(
        "sms/acme",
        fail_max=FAIL_MAX,
        reset_timeout_s=COOLDOWN_S,
        half_open_max_calls=trials,
        half_open_retry_s=0.5,
        on_state_change=(lambda name, state: transitions.append((name, state)))
        if transitions is not None
        else None,
        clock=clock,
    )


async def trip(breaker: AioCircuitBreaker, provider: Provider) -> None:
    for _ in range(FAIL_MAX):
        with pytest.raises(TransientProviderError):
            await breaker.call(provider.fail())
    assert breaker.state == "open"


# -- opening ---------------------------------------------------------------------------------------------


async def test_opens_after_n_consecutive_transient_failures(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    for _ in range(FAIL_MAX - 1):
        with pytest.raises(TransientProviderError):
            await breaker.call(provider.fail())
        assert breaker.state == "closed"
        assert breaker.retry_after_s() == 0.0

    # The call that trips the breaker was made: the caller gets the provider's own error (aiobreaker wraps it
    # in CircuitBreakerError), so it can record the real failure.
    real = TransientProviderError("503 from provider", status=503)
    with pytest.raises(TransientProviderError) as raised:
        await breaker.call(provider.fail(real))
    assert raised.value is real
    assert not isinstance(raised.value, CircuitOpen)
    assert provider.calls == FAIL_MAX
    assert breaker.state == "open"
    assert breaker.retry_after_s() == pytest.approx(COOLDOWN_S)


async def test_a_success_in_between_resets_the_count(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    for _ in range(3):
        for _ in range(FAIL_MAX - 1):
            with pytest.raises(TransientProviderError):
                await breaker.call(provider.fail())
        assert await breaker.call(provider.ok("sent")) == "sent"
        assert breaker.state == "closed"
    assert provider.calls == 3 * FAIL_MAX


async def test_non_retriable_errors_propagate_unchanged_and_do_not_count(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    refused = PermanentProviderError("invalid number", status=400)
    bug = ValueError("not a provider error at all")
    for error in (refused, bug):
        for _ in range(FAIL_MAX - 1):
            with pytest.raises(TransientProviderError):
                await breaker.call(provider.fail())
        with pytest.raises(type(error)) as raised:
            await breaker.call(provider.fail(error))
        assert raised.value is error
        # It counted as a success (the provider answered), so the consecutive count starts over.
        assert breaker.state == "closed"
    # Even a long run of refusals never opens it.
    for _ in range(FAIL_MAX * 3):
        with pytest.raises(PermanentProviderError):
            await breaker.call(provider.fail(refused))
    assert breaker.state == "closed"


async def test_the_callers_traceback_points_at_the_provider_not_the_replay(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    with pytest.raises(TransientProviderError) as raised:
        await breaker.call(provider.fail())
    frames = [entry.name for entry in raised.traceback]
    assert frames[-1] == "fn"
    assert "replay" not in frames


# -- open ------------------------------------------------------------------------------------------------


async def test_while_open_calls_are_refused_without_calling_the_provider(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    await trip(breaker, provider)
    calls_before = provider.calls

    clock.advance(4.0)
    for _ in range(5):
        with pytest.raises(CircuitOpen) as raised:
            await breaker.call(provider.ok())
        assert raised.value.retry_after_s == pytest.approx(COOLDOWN_S - 4.0)
        assert "sms/acme" in raised.value.message
        assert raised.value.retriable
    assert provider.calls == calls_before
    assert breaker.state == "open"
    assert breaker.retry_after_s() == pytest.approx(COOLDOWN_S - 4.0)

    clock.advance(COOLDOWN_S - 4.0 - 0.001)
    with pytest.raises(CircuitOpen):
        await breaker.call(provider.ok())
    assert provider.calls == calls_before


async def test_cooldown_over_reports_half_open_with_a_trial_available(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    await trip(breaker, provider)
    clock.advance(COOLDOWN_S)
    assert breaker.state == "half_open"
    assert breaker.retry_after_s() == 0.0


# -- half-open -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [1, 3])
async def test_half_open_admits_exactly_the_bounded_number_of_concurrent_trials(
    clock: FakeClock, bound: int
) -> None:
    breaker, provider = make_breaker(clock, trials=bound), Provider()
    await trip(breaker, provider)
    clock.advance(COOLDOWN_S)

    release = asyncio.Event()
    invoked = 0

    async def slow_send() -> str:
        nonlocal invoked
        invoked += 1
        await release.wait()  # every trial is still in flight while the other callers arrive
        return "sent"

    callers = [asyncio.create_task(breaker.call(slow_send)) for _ in range(50)]
    for _ in range(5):
        await asyncio.sleep(0)

    assert invoked == bound
    refused = [task for task in callers if task.done()]
    assert len(refused) == 50 - bound
    for task in refused:
        error = task.exception()
        assert isinstance(error, CircuitOpen)
        assert error.retry_after_s == 0.5
        assert "sms/acme" in error.message
    assert breaker.state == "half_open"
    assert breaker.retry_after_s() == 0.5

    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert sum(result == "sent" for result in results) == bound
    assert sum(isinstance(result, CircuitOpen) for result in results) == 50 - bound
    assert invoked == bound
    assert breaker.state == "closed"


async def test_a_successful_trial_closes_it(clock: FakeClock, transitions: list[tuple[str, str]]) -> None:
    breaker, provider = make_breaker(clock, transitions), Provider()
    await trip(breaker, provider)
    clock.advance(COOLDOWN_S)

    assert await breaker.call(provider.ok("trial")) == "trial"
    assert breaker.state == "closed"
    assert breaker.retry_after_s() == 0.0
    calls_before = provider.calls
    results = await asyncio.gather(*(breaker.call(provider.ok()) for _ in range(20)))
    assert results == ["ok"] * 20
    assert provider.calls == calls_before + 20

    # The failure count started over: it takes a full run of failures again to open it.
    for _ in range(FAIL_MAX - 1):
        with pytest.raises(TransientProviderError):
            await breaker.call(provider.fail())
    assert breaker.state == "closed"
    assert transitions == [("sms/acme", "open"), ("sms/acme", "half_open"), ("sms/acme", "closed")]


async def test_a_failed_trial_reopens_it_for_a_full_cooldown(
    clock: FakeClock, transitions: list[tuple[str, str]]
) -> None:
    breaker, provider = make_breaker(clock, transitions), Provider()
    await trip(breaker, provider)
    clock.advance(COOLDOWN_S + 5.0)  # well past the first cooldown

    real = TransientProviderError("still down", status=503, retry_after_s=7.0)
    with pytest.raises(TrialCallFailed) as raised:
        await breaker.call(provider.fail(real))
    # The trial was made (not CircuitOpen), and the caller can tell it was the breaker's trial.
    assert raised.value.__cause__ is real and not isinstance(raised.value, CircuitOpen)
    assert (raised.value.message, raised.value.status, raised.value.retry_after_s) == ("still down", 503, 7.0)
    assert breaker.state == "open"
    assert breaker.retry_after_s() == pytest.approx(COOLDOWN_S)

    calls_before = provider.calls
    clock.advance(COOLDOWN_S - 0.01)
    with pytest.raises(CircuitOpen) as refused:
        await breaker.call(provider.ok())
    assert refused.value.retry_after_s == pytest.approx(0.01)
    assert provider.calls == calls_before

    clock.advance(0.01)
    assert await breaker.call(provider.ok("recovered")) == "recovered"
    assert breaker.state == "closed"
    assert [state for _, state in transitions] == ["open", "half_open", "open", "half_open", "closed"]


async def test_the_first_trial_to_finish_decides(clock: FakeClock) -> None:
    """aiobreaker alone would let a later successful trial close a breaker an earlier trial just re-opened."""
    breaker, provider = make_breaker(clock, trials=2), Provider()
    await trip(breaker, provider)
    clock.advance(COOLDOWN_S)

    first_done, second_done = asyncio.Event(), asyncio.Event()

    async def failing_trial() -> str:
        await first_done.wait()
        raise TransientProviderError("still down")

    async def succeeding_trial() -> str:
        await second_done.wait()
        return "sent"

    failing = asyncio.create_task(breaker.call(failing_trial))
    succeeding = asyncio.create_task(breaker.call(succeeding_trial))
    await asyncio.sleep(0)

    first_done.set()
    with pytest.raises(TransientProviderError):
        await failing
    assert breaker.state == "open"

    second_done.set()
    assert await succeeding == "sent"  # the caller still gets its result...
    assert breaker.state == "open"  # ...but the breaker stays open for its cooldown
    assert breaker.retry_after_s() == pytest.approx(COOLDOWN_S)


async def test_a_slow_call_failing_after_the_breaker_opened_does_not_extend_the_cooldown(
    clock: FakeClock,
) -> None:
    breaker, provider = make_breaker(clock), Provider()
    release = asyncio.Event()

    async def slow_failure() -> str:
        await release.wait()
        raise TransientProviderError("timed out")

    slow = asyncio.create_task(breaker.call(slow_failure))
    await asyncio.sleep(0)
    await trip(breaker, provider)

    clock.advance(COOLDOWN_S - 1.0)
    release.set()
    with pytest.raises(TransientProviderError):
        await slow
    assert breaker.retry_after_s() == pytest.approx(1.0)


async def test_a_cancelled_trial_gives_its_slot_back(clock: FakeClock) -> None:
    breaker, provider = make_breaker(clock), Provider()
    await trip(breaker, provider)
    clock.advance(COOLDOWN_S)

    hang = asyncio.Event()

    async def hanging_trial() -> str:
        await hang.wait()
        return "never"

    trial = asyncio.create_task(breaker.call(hanging_trial))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):
        await breaker.call(provider.ok())

    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert breaker.state == "half_open"
    assert await breaker.call(provider.ok("next trial")) == "next trial"
    assert breaker.state == "closed"


async def test_circuit_open_from_a_nested_breaker_counts_neither_way(clock: FakeClock) -> None:
    channel = make_breaker(clock)
    provider_breaker = AioCircuitBreaker("acme", fail_max=1, reset_timeout_s=60.0, clock=clock)
    provider = Provider()
    with pytest.raises(TransientProviderError):
        await provider_breaker.call(provider.fail())
    assert provider_breaker.state == "open"

    for _ in range(FAIL_MAX * 2):
        with pytest.raises(CircuitOpen):
            await channel.call(lambda: provider_breaker.call(provider.ok()))
    assert channel.state == "closed"


async def test_a_failing_state_hook_does_not_break_the_breaker(clock: FakeClock) -> None:
    def broken_hook(name: str, state: str) -> None:
        raise RuntimeError("metrics backend down")

    breaker = AioCircuitBreaker(
        "push/x", fail_max=1, reset_timeout_s=COOLDOWN_S, on_state_change=broken_hook, clock=clock
    )
    provider = Provider()
    with pytest.raises(TransientProviderError):
        await breaker.call(provider.fail())
    assert breaker.state == "open"
    clock.advance(COOLDOWN_S)
    assert await breaker.call(provider.ok()) == "ok"
    assert breaker.state == "closed"


async def test_real_monotonic_clock_with_a_short_cooldown() -> None:
    breaker = AioCircuitBreaker("email/real", fail_max=2, reset_timeout_s=0.2)
    provider = Provider()
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            await breaker.call(provider.fail())
    with pytest.raises(CircuitOpen) as refused:
        await breaker.call(provider.ok())
    retry_after = refused.value.retry_after_s
    assert retry_after is not None
    assert 0 < retry_after <= 0.2

    await asyncio.sleep(0.25)
    assert await breaker.call(provider.ok("back")) == "back"
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_max": 0, "reset_timeout_s": 1.0},
        {"fail_max": 1, "reset_timeout_s": 0.0},
        {"fail_max": 1, "reset_timeout_s": 1.0, "half_open_max_calls": 0},
    ],
)
def test_rejects_nonsense_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AioCircuitBreaker("x", **kwargs)  # type: ignore[arg-type]


# -- rate limiter ----------------------------------------------------------------------------------------


async def test_unlimited_and_unknown_keys_do_not_wait() -> None:
    limiter = ChannelRateLimiter({"sms": 1.0, "email": None, "push": 0})
    waits = [await limiter.acquire(key) for key in ("email", "push", "webhook") for _ in range(100)]
    assert waits == [0.0] * 300  # no bucket at all: not even a clock read


def test_each_bucket_holds_burst_s_worth_of_tokens_and_drains_at_the_rate() -> None:
    # The rate itself is aiolimiter's to keep (a timing property, measured by scripts/bench, never asserted
    # here); what is ours is the bucket each rate becomes.
    limiter = ChannelRateLimiter({"sms": 20.0, "email": 1000.0, "push": 2.0}, burst_s=0.2)
    buckets = {k: (b.max_rate, b.time_period) for k, b in limiter._limiters.items()}
    assert buckets["sms"] == pytest.approx((4.0, 0.2))  # 4 tokens, refilled at 4 per 0.2 s = 20/s
    assert buckets["email"] == pytest.approx((200.0, 0.2))
    assert buckets["push"] == pytest.approx((1.0, 0.5))  # never less than one token: 1 per 0.5 s = 2/s
    for key, rate in (("sms", 20.0), ("email", 1000.0), ("push", 2.0)):
        capacity, period = buckets[key]
        assert capacity / period == pytest.approx(rate)


async def test_a_backlog_on_one_channel_never_stalls_another() -> None:
    sms_count = 30
    limiter = ChannelRateLimiter({"sms": 20.0, "email": 1000.0})
    order: list[str] = []

    async def send(channel: str) -> None:
        await limiter.acquire(channel)
        order.append(channel)

    sms = [asyncio.create_task(send("sms")) for _ in range(sms_count)]
    await asyncio.sleep(0)  # the sms backlog has taken the burst and queued behind it
    # Email acquires made while the sms backlog waits for tokens do not queue behind it.
    await asyncio.gather(*(send("email") for _ in range(5)))
    sms_before_email = order.index("email")
    assert order.count("email") == 5
    assert sms_before_email < sms_count // 2, order
    await asyncio.gather(*sms)
    assert order.count("sms") == sms_count


async def test_waited_seconds_are_reported() -> None:
    limiter = ChannelRateLimiter({"sms": 10.0}, burst_s=0.1)  # one token, then one every 0.1 s
    first = await limiter.acquire("sms")
    second = await limiter.acquire("sms")  # had to wait for the refill
    assert 0 <= first < second
