"""What a client can ask for a list of, and a page of the answer (keyset paging, newest first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from notify.domain.model import Channel, Notification, Priority, Status


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    tenant_id: str | None  # None: every tenant's (an operator's view; the API always names one)
    channel: Channel | None = None
    provider: str | None = None
    error_contains: str | None = None
    date_from: datetime | None = None  # on failed_at
    date_to: datetime | None = None
    after_id: UUID | None = None
    page_size: int = 20


@dataclass(frozen=True, slots=True)
class ListQuery:
    tenant_id: str | None  # None: every tenant's (an operator's view; the API always names one)
    status: Status | None = None
    channel: Channel | None = None
    priority: Priority | None = None
    batch_id: UUID | None = None
    recipient: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    after_id: UUID | None = None  # keyset cursor: return ids strictly older than this one
    page_size: int = 20


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Notification]
    next_after_id: UUID | None
