"""The one exception tree of notify.

Every error knows whether retrying the same operation later may succeed (``retriable``). The HTTP adapter
maps these to status codes and the documented error shape; the worker uses ``retriable`` to decide between a
retry and a permanent failure.

    NotifyError
    ├── ValidationFailed            bad input; ``details`` names each failing field          (400)
    ├── NotFound                    no such object (or not yours)                             (404)
    ├── Conflict                    the request contradicts the current state                 (409)
    │   └── IllegalTransition       a status change the status machine does not allow
    ├── Unavailable                 a dependency is down; try again later                     (503, retriable)
    │   ├── Overloaded              too much accepted is waiting to be published: shedding load
    │   └── OutcomeNotStored        a delivery's outcome could not be stored within its lease
    ├── Unauthorized                no, unknown or revoked API key                            (401)
    ├── Forbidden                   the key may not do this (an operator action needs admin)  (403)
    ├── RateLimited                 the API key is over its rate                              (429, retriable)
    └── ProviderError               a delivery attempt did not succeed
        ├── TransientProviderError  timeout, connection error, 429, 5xx                   (retriable)
        │   ├── CircuitOpen         the breaker is open: no call was made                    (retriable)
        │   └── TrialCallFailed     a half-open breaker's trial call failed: still down      (retriable)
        └── PermanentProviderError  the provider refused the message for good
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing input field; ``field`` is a path: ``recipient``, ``notifications[7].recipient``."""

    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


class NotifyError(Exception):
    """Base of every error notify raises on purpose."""

    retriable: bool = False
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(NotifyError):
    code = "validation_error"

    def __init__(self, message: str, details: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.details: list[FieldError] = details or []

    @classmethod
    def for_fields(cls, details: list[FieldError]) -> ValidationFailed:
        names = ", ".join(d.field for d in details)
        return cls(f"Invalid input: {names}.", details)


class NotFound(NotifyError):
    code = "not_found"


class Conflict(NotifyError):
    code = "conflict"

    def __init__(self, message: str, details: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.details: list[FieldError] = details or []

    @classmethod
    def with_details(cls, message: str, details: list[FieldError]) -> Conflict:
        return cls(message, details)


class DuplicateIdempotencyKey(Conflict):
    """Raised by the store when an idempotency key is already taken (``batch``: the batch's own key)."""

    code = "idempotency_key_reused"

    def __init__(self, message: str, *, batch: bool = False) -> None:
        super().__init__(message)
        self.batch = batch


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"A notification in status '{current}' cannot become '{target}'.")
        self.current = current
        self.target = target


class Unavailable(NotifyError):
    code = "unavailable"
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(Unavailable):
    """The service is shedding load: what it accepted waits to be published past a configured limit."""

    code = "overloaded"


class OutcomeNotStored(Unavailable):
    """A delivery round ended, but its outcome could not be stored (the database was unreachable) before the
    claim's lease ran out. The claim is recovered like a dead worker's, and the notification sent again with
    the same Idempotency-Key."""

    code = "outcome_not_stored"


class ProviderError(NotifyError):
    """A delivery attempt failed. ``status`` is the provider's HTTP status when there was one."""

    code = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class TransientProviderError(ProviderError):
    code = "provider_transient"
    retriable = True


class PermanentProviderError(ProviderError):
    code = "provider_permanent"
    retriable = False


class CircuitOpen(TransientProviderError):
    """The provider's circuit breaker is open (or its half-open trial calls are all taken): the call was not
    made. Never a reason to fail a notification; it waits or fails over."""

    code = "circuit_open"


class TrialCallFailed(TransientProviderError):
    """A half-open breaker let this call through as its trial, and it failed: the provider is still down.

    The call was made (it is in the attempts ledger), but it was the breaker's probe of the provider, not a
    judgement on the notification: like ``CircuitOpen`` it never uses up one of the notification's retries.
    ``__cause__`` is the provider's own error; message, status and ``retry_after_s`` are copied from it."""

    code = "breaker_trial_failed"

    @classmethod
    def of(cls, error: TransientProviderError) -> TrialCallFailed:
        trial = cls(error.message, status=error.status, retry_after_s=error.retry_after_s)
        trial.__cause__ = error
        return trial


class Unauthorized(NotifyError):
    """No API key, an unknown one, or a revoked one (401)."""

    code = "unauthorized"


class Forbidden(NotifyError):
    """The API key is valid but may not do this: an operator action needs an ``admin`` key (403)."""

    code = "forbidden"


class RateLimited(NotifyError):
    """The caller's API key is over its request rate (429, with ``retry_after_s``)."""

    code = "rate_limited"
    retriable = True

    def __init__(self, message: str, retry_after_s: float, limit_per_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit_per_s = limit_per_s  # the key's rate, when a request rate was exceeded
