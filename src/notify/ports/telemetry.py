"""What the use cases need from tracing: nothing more than a context to store with a new notification."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class TraceContexts(Protocol):
    def for_notification(self, notification_id: UUID, batch_id: UUID | None) -> str | None:
        """The W3C traceparent a newly accepted notification keeps: every later step of its delivery (each
        publish, retry, replay, provider call) continues this trace. None: not traced."""
        ...
