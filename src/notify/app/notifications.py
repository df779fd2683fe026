"""Accept, read, list and cancel notifications."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from notify.domain.errors import NotFound, ValidationFailed
from notify.domain.ids import uuid7_at
from notify.domain.model import Channel, Notification, Priority, Status
from notify.domain.retry import DEFAULT_MAX_RETRIES
from notify.domain.validation import DraftFields, check_draft
from notify.ports.clock import Clock
from notify.ports.store import ListQuery, NotificationStore, Page


@dataclass(frozen=True, slots=True)
class NewNotification:
    """One notification as a client asked for it (types already checked by the adapter)."""

    channel: Channel
    recipient: str
    content: str | None = None
    subject: str | None = None
    priority: Priority = Priority.NORMAL
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None


class NotificationService:
    def __init__(
        self,
        store: NotificationStore,
        clock: Clock,
        *,
        max_retries: Mapping[Priority, int] = DEFAULT_MAX_RETRIES,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_retries = max_retries
        # Called after a commit that wrote outbox records, so a relay in this process publishes at once
        # instead of at its next poll.
        self._on_enqueued = on_enqueued or (lambda: None)

    def _build(
        self,
        tenant_id: str,
        new: NewNotification,
        now: datetime,
        correlation_id: str | None,
        prefix: str = "",
    ) -> tuple[Notification | None, list[Any]]:
        draft = DraftFields(
            channel=new.channel,
            recipient=new.recipient,
            content=new.content,
            subject=new.subject,
            scheduled_at=new.scheduled_at,
            expires_at=new.expires_at,
            metadata=new.metadata,
            idempotency_key=new.idempotency_key,
        )
        recipient, errors = check_draft(draft, now, prefix)
        if errors:
            return None, errors
        scheduled = new.scheduled_at is not None and new.scheduled_at > now
        notification = Notification(
            id=uuid7_at(now),
            tenant_id=tenant_id,
            channel=new.channel,
            recipient=recipient,
            content=new.content or "",
            subject=new.subject,
            priority=new.priority,
            status=Status.SCHEDULED if scheduled else Status.PENDING,
            created_at=now,
            updated_at=now,
            scheduled_at=new.scheduled_at,
            expires_at=new.expires_at,
            idempotency_key=new.idempotency_key,
            metadata=new.metadata,
            max_retries=self._max_retries[new.priority],
            correlation_id=correlation_id,
        )
        return notification, []

    async def create(
        self, tenant_id: str, new: NewNotification, correlation_id: str | None = None
    ) -> Notification:
        notification, errors = self._build(tenant_id, new, self._clock.now(), correlation_id)
        if notification is None:
            raise ValidationFailed.for_fields(errors)
        await self._store.create([notification])
        if notification.status is Status.PENDING:
            self._on_enqueued()
        return notification

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification:
        found = await self._store.get(tenant_id, notification_id)
        if found is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        return found

    async def list(self, query: ListQuery) -> Page:
        return await self._store.search(query)

    async def cancel(self, tenant_id: str, notification_id: UUID) -> Notification:
        return await self._store.cancel(tenant_id, notification_id, self._clock.now())
