from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ProviderMessage:
    notification_id: UUID
    attempt: int
    channel: str
    to: str
    content: str
    subject: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderReceipt:
    provider: str
    message_id: str


class DeliveryProvider(Protocol):
    name: str

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        """Deliver one message; raises TransientProviderError or PermanentProviderError."""
        ...
