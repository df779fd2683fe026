"""Circuit breakers on aiobreaker, per-channel token buckets on aiolimiter.

aiobreaker keeps the breaker's state (closed / open / half-open), counts consecutive failures and decides the
transitions. Three of its behaviours do not fit the worker, so :class:`AioCircuitBreaker` works around them
instead of replacing the library:

* Half-open admits every call that arrives, so after a cooldown a backlog of hundreds of deliveries would all
  hit a provider that may still be down. A trial gate in front of aiobreaker admits at most
  ``half_open_max_calls`` concurrent trial calls and rejects the rest with ``CircuitOpen``.
* It judges a call's outcome with the state object captured when the call *started*: a slow call begun while
  closed that fails after the breaker opened re-opens it (fresh cooldown), and a second half-open trial that
  succeeds after the first one failed closes it again. So ``fn`` runs outside aiobreaker and its outcome is
  replayed through ``aiobreaker.CircuitBreaker.call`` synchronously when it is known, against the state that
  is current then; outcomes the current state has no use for (stale calls) are not replayed at all.
* It stamps ``opened_at`` with ``datetime.utcnow()`` but computes ``opens_at`` / ``time_remaining`` with
  local ``datetime.now()``, so the reopen time it reports is off by the UTC offset on any host not running in
  UTC (and ``None`` east of Greenwich). The cooldown is measured here on a monotonic clock instead, and the
  move to half-open is made explicitly (``half_open()``) when that clock says the cooldown is over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import aiobreaker
from aiobreaker import CircuitBreakerError, CircuitBreakerState
from aiolimiter import AsyncLimiter

from notify.domain.errors import CircuitOpen, TransientProviderError, TrialCallFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

StateListener = Callable[[str, str], None]

_STATE_NAMES: dict[Any, str] = {
    CircuitBreakerState.CLOSED: "closed",
    CircuitBreakerState.OPEN: "open",
    CircuitBreakerState.HALF_OPEN: "half_open",
}


def _does_not_count(exc: BaseException) -> bool:
    """aiobreaker ``exclude`` predicate: only retriable errors are evidence that the provider is failing.

    A non-retriable error (a 4xx refusal, a bug in our code) means the provider answered, so aiobreaker treats
    the call as a success."""
    return not getattr(exc, "retriable", False)


class _Listener:
    """Duck-typed ``aiobreaker.CircuitBreakerListener`` (subclassing the untyped class would make
    mypy --strict complain): aiobreaker calls these four methods and nothing else."""

    def __init__(self, owner: AioCircuitBreaker) -> None:
        self._owner = owner

    def before_call(self, breaker: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def success(self, breaker: Any) -> None:
        pass

    def failure(self, breaker: Any, exception: BaseException) -> None:
        pass

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        self._owner._state_changed(_STATE_NAMES[new.state])


class AioCircuitBreaker:
    """A :class:`notify.ports.resilience.CircuitBreaker` on ``aiobreaker.CircuitBreaker``.

    Opens after ``fail_max`` consecutive retriable failures; after ``reset_timeout_s`` it lets at most
    ``half_open_max_calls`` concurrent trial calls through. The first trial to finish decides: a failure
    re-opens it for a fresh cooldown, a success closes it (later trials of that round then count as ordinary
    calls if it closed, and are ignored if it re-opened). Callers turned away while all trial slots are taken
    get ``CircuitOpen`` with ``retry_after_s=half_open_retry_s``.

    A trial call that fails with a ``TransientProviderError`` raises ``TrialCallFailed`` (caused by the real
    error) so the caller can tell the breaker's probe from an ordinary failure.

    ``fn`` raising ``CircuitOpen`` itself (a nested breaker, e.g. a provider's inside a channel's) made no
    call, so it counts neither way; neither does cancellation.

    ``on_state_change(name, new_state)`` is called on every transition (``"closed"``, ``"open"``,
    ``"half_open"``), e.g. for metrics; ``clock`` (monotonic seconds) is injectable for tests. Not
    thread-safe: use one instance per event loop, like everything asyncio.
    """

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout_s: float,
        half_open_max_calls: int = 1,
        half_open_retry_s: float = 1.0,
        on_state_change: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fail_max < 1:
            raise ValueError("fail_max must be at least 1")
        if reset_timeout_s <= 0:
            raise ValueError("reset_timeout_s must be positive")
        if half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be at least 1")
        if half_open_retry_s <= 0:
            raise ValueError("half_open_retry_s must be positive")
        self.name = name
        self._reset_timeout_s = reset_timeout_s
        self._max_trials = half_open_max_calls
        self._trial_retry_s = half_open_retry_s
        self._on_state_change = on_state_change
        self._clock = clock
        # When the breaker last opened, on self._clock; set by the listener so every way aiobreaker opens
        # (tripping while closed, a failed trial) starts a fresh cooldown.
        self._opened_at: float | None = None
        # Trial calls in flight. Trials of an earlier half-open round still running keep their slot: the
        # bound is on concurrent calls to a provider that is maybe still down, whichever round let them in.
        self._trials = 0
        # Bumped on every move to half-open, so a finishing trial can tell whether it belongs to the current
        # round (and may decide it) or to an earlier one (and must not).
        self._round = 0
        self._breaker: Any = aiobreaker.CircuitBreaker(
            fail_max=fail_max,
            # Passed for completeness (aiobreaker's own open-state check would use it); the cooldown that
            # counts is measured on self._clock, see the module docstring.
            timeout_duration=timedelta(seconds=reset_timeout_s),
            exclude=[_does_not_count],
            listeners=[_Listener(self)],
            name=name,
        )

    @property
    def state(self) -> str:
        current = self._breaker.current_state
        if current is CircuitBreakerState.OPEN and self._cooldown_left() <= 0:
            # aiobreaker only leaves "open" on the next call; report what that call would find.
            return "half_open"
        return _STATE_NAMES[current]

    def retry_after_s(self) -> float:
        current = self._breaker.current_state
        if current is CircuitBreakerState.CLOSED:
            return 0.0
        if current is CircuitBreakerState.OPEN:
            left = self._cooldown_left()
            if left > 0:
                return left
        return 0.0 if self._trials < self._max_trials else self._trial_retry_s

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        trial_round = self._admit()
        try:
            try:
                result = await fn()
            except CircuitOpen:
                raise
            except Exception as exc:
                self._record(trial_round, exc)
                if trial_round is not None and isinstance(exc, TransientProviderError):
                    # The breaker's probe of a provider that is still down: not the notification's fault.
                    raise TrialCallFailed.of(exc) from exc
                raise
            self._record(trial_round, None)
            return result
        finally:
            if trial_round is not None:
                self._trials -= 1

    # -- internals ---------------------------------------------------------------------------------------

    def _admit(self) -> int | None:
        """Let the call through or raise CircuitOpen. Returns the half-open round the call is a trial of, or
        None for an ordinary (closed-state) call.

        No await between the check and the bookkeeping, so concurrent callers on the loop cannot both take
        the last trial slot."""
        current = self._breaker.current_state
        if current is CircuitBreakerState.CLOSED:
            return None
        if current is CircuitBreakerState.OPEN:
            left = self._cooldown_left()
            if left > 0:
                raise CircuitOpen(
                    f"Circuit breaker '{self.name}' is open; no call made. Retry in {left:.2f} s.",
                    retry_after_s=left,
                )
        if self._trials >= self._max_trials:
            raise CircuitOpen(
                f"Circuit breaker '{self.name}' is half-open and all {self._max_trials} trial call(s) are "
                f"in flight; no call made. Retry in {self._trial_retry_s:.2f} s.",
                retry_after_s=self._trial_retry_s,
            )
        if current is CircuitBreakerState.OPEN:
            # Our clock says the cooldown is over: move aiobreaker on ourselves rather than let its
            # utcnow()-based check decide (it might still say "open" and raise CircuitBreakerError).
            self._round += 1
            self._breaker.half_open()
        self._trials += 1
        return self._round

    def _record(self, trial_round: int | None, error: Exception | None) -> None:
        """Replay a finished call's outcome through aiobreaker, against the state current now."""
        current = self._breaker.current_state
        if current is CircuitBreakerState.OPEN:
            # Opened while this call ran: the breaker has decided already, this outcome is stale.
            return
        if current is CircuitBreakerState.HALF_OPEN and trial_round != self._round:
            # Half-open, but this call is not one of the current round's trials (it began while closed, or
            # is a trial of a round that already ended): only the current trials may decide.
            return

        def replay() -> None:
            if error is not None:
                raise error

        # Keep the caller's traceback free of the replay's frames.
        traceback = error.__traceback__ if error is not None else None
        try:
            self._breaker.call(replay)
        except CircuitBreakerError as tripped:
            # aiobreaker raises CircuitBreakerError (caused by the real error) from the call that trips the
            # breaker, although that call was made; the caller re-raises the real error instead.
            if error is None or tripped.__cause__ is not error:
                raise
        except Exception as raised:
            if raised is not error:
                raise
        finally:
            if error is not None:
                error.__traceback__ = traceback

    def _cooldown_left(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._reset_timeout_s - self._clock())

    def _state_changed(self, new_state: str) -> None:
        # Called by aiobreaker mid-transition (in open() before it even stores the new state), so nothing
        # here may raise: a failing metrics hook must not leave the breaker half-switched.
        if new_state == "open":
            self._opened_at = self._clock()
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(self.name, new_state)
        except Exception:
            log.exception("circuit breaker %r: on_state_change hook failed", self.name)


class ChannelRateLimiter:
    """A :class:`notify.ports.resilience.RateLimiter` with one ``aiolimiter.AsyncLimiter`` per key.

    ``rates_per_s`` maps a key (a channel) to its sustained rate; ``None`` or 0, or a key not in the map, is
    unlimited. Each bucket holds ``burst_s`` seconds' worth of tokens (at least one), so an idle channel can
    send that many at once and then exactly its rate; ``burst_s=1`` gives aiolimiter's own default
    (``max_rate=rate, time_period=1``). Buckets are independent and aiolimiter waits on per-limiter
    futures, so a backlog on one key never delays another. Like aiolimiter, use one instance per event loop.
    """

    def __init__(self, rates_per_s: Mapping[str, float | None], *, burst_s: float = 0.2) -> None:
        if burst_s <= 0:
            raise ValueError("burst_s must be positive")
        self._limiters: dict[str, AsyncLimiter] = {}
        for key, rate in rates_per_s.items():
            if not rate:
                continue
            if rate < 0:
                raise ValueError(f"rate for {key!r} must not be negative")
            # aiolimiter's bucket size is max_rate and it drains at max_rate / time_period per second:
            # pick the size for the burst and the period that keeps the drain at `rate`.
            capacity = max(1.0, rate * burst_s)
            self._limiters[key] = AsyncLimiter(max_rate=capacity, time_period=capacity / rate)

    async def acquire(self, key: str) -> float:
        limiter = self._limiters.get(key)
        if limiter is None:
            return 0.0
        started = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - started
