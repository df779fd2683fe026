"""Accept (one, or a batch of up to 1000), read, list and cancel notifications; idempotent acceptance."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from notify.app.admission import Admission
from notify.domain.errors import Conflict, DuplicateIdempotencyKey, FieldError, NotFound, ValidationFailed
from notify.domain.ids import uuid7_at, uuid7_run
from notify.domain.model import Batch, Channel, Notification, Priority, Status
from notify.domain.queries import ListQuery, Page
from notify.domain.retry import DEFAULT_MAX_RETRIES
from notify.domain.validation import DraftFields, check_draft
from notify.ports.clock import Clock
from notify.ports.store import Notifications
from notify.ports.telemetry import TraceContexts

MAX_BATCH = 1000

# (tenant_id, template_id, channel, variables, field prefix) -> (content, subject); raises ValidationFailed.
Render = Callable[[str, UUID, Channel, dict[str, Any], str], Awaitable[tuple[str, str | None]]]


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
    template_id: UUID | None = None
    template_variables: dict[str, Any] | None = None


def fingerprint(payload: Any) -> str:
    """A stable digest of a request, to tell a retried request from a different one with the same key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _request_fingerprint(new: NewNotification) -> str:
    fields = asdict(new)
    fields.pop("idempotency_key")
    return fingerprint(fields)


@dataclass(frozen=True, slots=True)
class Accepted:
    notification: Notification
    replayed: bool  # True: an earlier request with the same Idempotency-Key and payload; nothing new stored


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    batch: Batch
    notifications: list[Notification]
    replayed: bool


class NotificationService:
    def __init__(
        self,
        store: Notifications,
        clock: Clock,
        *,
        max_retries: Mapping[Priority, int] = DEFAULT_MAX_RETRIES,
        on_enqueued: Callable[[], None] | None = None,
        render: Render | None = None,
        traces: TraceContexts | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._store = store
        self._admission = admission
        self._traces = traces
        self._clock = clock
        self._max_retries = max_retries
        # Called after a commit that wrote outbox records, so a relay in this process publishes at once
        # instead of at its next poll.
        self._on_enqueued = on_enqueued or (lambda: None)
        self._render = render

    async def _build(
        self,
        tenant_id: str,
        new: NewNotification,
        now: datetime,
        correlation_id: str | None,
        prefix: str = "",
        batch_id: UUID | None = None,
        notification_id: UUID | None = None,
    ) -> tuple[Notification | None, list[FieldError]]:
        content, subject = new.content, new.subject
        if new.template_id is not None:
            if new.content is not None:
                return None, [
                    FieldError(prefix + "content", "give content or template_id, not both", "conflict")
                ]
            if self._render is None:
                return None, [
                    FieldError(prefix + "template_id", "templates are not available", "unavailable")
                ]
            try:
                content, rendered_subject = await self._render(
                    tenant_id, new.template_id, new.channel, new.template_variables or {}, prefix
                )
            except ValidationFailed as exc:
                return None, exc.details
            subject = subject if subject is not None else rendered_subject
        elif new.template_variables is not None:
            return None, [
                FieldError(prefix + "template_variables", "only allowed with template_id", "not_allowed")
            ]
        draft = DraftFields(
            channel=new.channel,
            recipient=new.recipient,
            content=content,
            subject=subject,
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
            id=notification_id or uuid7_at(now),
            tenant_id=tenant_id,
            batch_id=batch_id,
            channel=new.channel,
            recipient=recipient,
            content=content or "",
            subject=subject,
            priority=new.priority,
            status=Status.SCHEDULED if scheduled else Status.PENDING,
            created_at=now,
            updated_at=now,
            scheduled_at=new.scheduled_at,
            expires_at=new.expires_at,
            idempotency_key=new.idempotency_key,
            template_id=new.template_id,
            template_variables=new.template_variables,
            metadata=new.metadata,
            max_retries=self._max_retries[new.priority],
            correlation_id=correlation_id,
            # Only a request that can be retried with its key is ever compared with another.
            request_hash=_request_fingerprint(new) if new.idempotency_key is not None else None,
        )
        return notification, []

    async def create(
        self, tenant_id: str, new: NewNotification, correlation_id: str | None = None
    ) -> Notification:
        return (await self.accept(tenant_id, new, correlation_id)).notification

    async def accept(
        self, tenant_id: str, new: NewNotification, correlation_id: str | None = None
    ) -> Accepted:
        notification, errors = await self._build(tenant_id, new, self._clock.now(), correlation_id)
        if notification is None:
            raise ValidationFailed.for_fields(errors)
        # A retried request is answered from what is stored, without starting a trace for a notification that
        # will not exist (a concurrent first request is still settled by the unique index below).
        key = new.idempotency_key
        if key is not None and await self._store.find_by_idempotency_key(tenant_id, key) is not None:
            return Accepted(await self._replay(tenant_id, key, notification), replayed=True)
        if self._admission is not None:
            self._admission.check(1)  # a replay above is still answered: it adds nothing
        notification = self._traced(notification)
        try:
            await self._store.create([notification])
        except DuplicateIdempotencyKey:
            assert new.idempotency_key is not None
            return Accepted(await self._replay(tenant_id, new.idempotency_key, notification), replayed=True)
        if notification.status is Status.PENDING:
            self._on_enqueued()
        return Accepted(notification, replayed=False)

    def _traced(self, notification: Notification) -> Notification:
        if self._traces is None:
            return notification
        context = self._traces.for_notification(notification.id, notification.batch_id)
        return replace(notification, trace_context=context)

    async def _replay(self, tenant_id: str, key: str, attempted: Notification) -> Notification:
        # The unique index made the racing duplicates wait for the winner's commit, so it is visible now.
        original = await self._store.find_by_idempotency_key(tenant_id, key)
        if original is None or original.request_hash != attempted.request_hash:
            raise Conflict(f"The idempotency key '{key}' was already used with a different request.")
        return original

    async def accept_batch(
        self,
        tenant_id: str,
        items: Sequence[NewNotification],
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> AcceptedBatch:
        """All or nothing: every item is checked and every failure reported before anything is stored."""
        if not 1 <= len(items) <= MAX_BATCH:
            raise ValidationFailed.for_fields(
                [FieldError("notifications", f"must hold 1 to {MAX_BATCH} items (got {len(items)})", "size")]
            )
        now = self._clock.now()
        batch = Batch(
            id=uuid7_at(now),
            tenant_id=tenant_id,
            total=len(items),
            created_at=now,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            request_hash=fingerprint(
                [_request_fingerprint(i) for i in items] + [i.idempotency_key for i in items]
            )
            if idempotency_key is not None
            else None,
        )
        built: list[Notification] = []
        errors: list[FieldError] = []
        seen_keys: dict[str, int] = {}
        ids = uuid7_run(now, len(items))
        for index, item in enumerate(items):
            prefix = f"notifications[{index}]."
            notification, item_errors = await self._build(
                tenant_id, item, now, correlation_id, prefix, batch.id, ids[index]
            )
            errors += item_errors
            if notification is not None:
                built.append(notification)
            if item.idempotency_key is not None:
                if item.idempotency_key in seen_keys:
                    errors.append(
                        FieldError(
                            prefix + "idempotency_key",
                            f"repeats notifications[{seen_keys[item.idempotency_key]}]",
                            "duplicate",
                        )
                    )
                seen_keys.setdefault(item.idempotency_key, index)
        if errors:
            raise ValidationFailed.for_fields(errors)
        if idempotency_key is not None:
            original = await self._store.find_batch_by_idempotency_key(tenant_id, idempotency_key)
            if original is not None and original.request_hash == batch.request_hash:
                return AcceptedBatch(original, await self._store.batch_notifications(original), True)
        if self._admission is not None:
            self._admission.check(len(built))
        built = [self._traced(n) for n in built]
        try:
            await self._store.create(built, batch)
        except DuplicateIdempotencyKey as exc:
            if exc.batch and idempotency_key is not None:
                original = await self._store.find_batch_by_idempotency_key(tenant_id, idempotency_key)
                if original is not None and original.request_hash == batch.request_hash:
                    return AcceptedBatch(original, await self._store.batch_notifications(original), True)
                raise Conflict(
                    f"The idempotency key '{idempotency_key}' was already used with a different batch."
                ) from None
            used = await self._store.used_idempotency_keys(tenant_id, list(seen_keys))
            raise Conflict.with_details(
                "Some idempotency keys were already used by other notifications.",
                [
                    FieldError(f"notifications[{seen_keys[k]}].idempotency_key", "already used", "conflict")
                    for k in sorted(used, key=seen_keys.__getitem__)
                ],
            ) from None
        if any(n.status is Status.PENDING for n in built):
            self._on_enqueued()
        return AcceptedBatch(batch, built, replayed=False)

    async def get(self, tenant_id: str, notification_id: UUID) -> Notification:
        found = await self._store.get(tenant_id, notification_id)
        if found is None:
            raise NotFound(f"Notification {notification_id} was not found.")
        return found

    async def list(self, query: ListQuery) -> Page:
        return await self._store.search(query)

    async def cancel(self, tenant_id: str, notification_id: UUID) -> Notification:
        cancelled = await self._store.cancel(tenant_id, notification_id, self._clock.now())
        self._on_enqueued()  # its status event is in the outbox
        return cancelled

    async def batch(self, tenant_id: str, batch_id: UUID) -> tuple[Batch, dict[Status, int]]:
        found = await self._store.get_batch(tenant_id, batch_id)
        if found is None:
            raise NotFound(f"Batch {batch_id} was not found.")
        return found, await self._store.batch_counts(batch_id)
