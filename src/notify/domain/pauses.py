"""Delivery pauses: the operator's global switch and each tenant's own, per channel or for every channel.

A pause is a scope ``(tenant, channel)`` where either may be ``*`` (everyone, every channel). A notification
waits (``pending``, parked) while any paused scope covers its tenant and channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from notify.domain.model import Channel

EVERY = "*"


@dataclass(frozen=True, slots=True)
class Pauses:
    scopes: frozenset[tuple[str, str]]  # (tenant or "*", channel or "*") of every paused scope

    def blocks(self, tenant_id: str | None, channel: str) -> bool:
        """Whether a notification of ``tenant_id`` (None: not known, only global pauses apply) and ``channel``
        must wait."""
        return any(tenant in (EVERY, tenant_id) and ch in (EVERY, channel) for tenant, ch in self.scopes)

    def of(self, tenant_id: str) -> PauseState:
        """What one scope holder set: the global switch (``tenant_id="*"``) or one tenant's own."""
        mine = {ch for tenant, ch in self.scopes if tenant == tenant_id}
        return PauseState(
            tenant_id,
            EVERY in mine,
            frozenset(Channel(ch) for ch in mine if ch != EVERY),
        )


@dataclass(frozen=True, slots=True)
class PauseState:
    tenant_id: str  # "*" for the global switch
    all_channels: bool
    channels: frozenset[Channel]

    def is_paused(self, channel: Channel) -> bool:
        return self.all_channels or channel in self.channels
