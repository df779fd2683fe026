"""How long notifications are kept (NOTIFY_RETENTION_DAYS, overridable per tenant); erasing a recipient."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.retention import Erased, recipient_forms
from notify.ports.clock import Clock
from notify.ports.retention import Retention

CHUNK = 1000


class RetentionService:
    def __init__(
        self,
        store: Retention,
        clock: Clock,
        *,
        days: float | None,
        days_by_tenant: Mapping[str, float] | None = None,
        max_chunks: int = 50,
    ) -> None:
        self._store = store
        self._clock = clock
        self._days = days
        self._by_tenant = dict(days_by_tenant or {})
        self._max_chunks = max_chunks

    async def purge_expired(self) -> int:
        """One round: every tenant with its own retention, then everyone else with the default, each in
        chunks of CHUNK (at most ``max_chunks`` a round, so a first run on a large table spreads out)."""
        now = self._clock.now()
        removed, chunks = 0, 0
        plan: list[tuple[str | None, float]] = list(self._by_tenant.items())
        if self._days is not None:
            plan.append((None, self._days))
        for tenant, days in plan:
            while chunks < self._max_chunks:
                chunks += 1
                others = [] if tenant is not None else list(self._by_tenant)  # the default skips overrides
                gone = await self._store.purge(tenant, now - timedelta(days=days), others, CHUNK)
                removed += gone
                if gone < CHUNK:
                    break
        shortest = min([d for _, d in plan], default=None)
        if shortest is not None:
            await self._store.purge_batches(now - timedelta(days=shortest), CHUNK)
        return removed

    async def erase(self, tenant_id: str, recipient: str) -> Erased:
        forms = recipient_forms(recipient)
        if not forms:
            raise ValidationFailed.for_fields([FieldError("recipient", "must not be empty", "required")])
        return await self._store.erase_recipient(tenant_id, forms)
