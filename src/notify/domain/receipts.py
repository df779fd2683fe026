"""Receipts: what a provider reports after it accepted a message — the outcome at the handset or mailbox.

A notification's status says what notify did: ``delivered`` means the provider accepted it. A receipt comes
later, when the provider offers one (Twilio's status callback), and is kept beside the status, not instead of
it: a receipt saying ``undelivered`` does not make notify send again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ReceiptStatus(StrEnum):
    DELIVERED = "delivered"  # the handset or mailbox has it
    UNDELIVERED = "undelivered"  # the carrier or the receiving server gave up
    BOUNCED = "bounced"  # a mailbox refused it
    COMPLAINED = "complained"  # the recipient marked it as spam
    IN_TRANSIT = "in_transit"  # on its way (queued, sent to the carrier)


@dataclass(frozen=True, slots=True)
class Receipt:
    provider: str
    provider_message_id: str
    status: ReceiptStatus
    provider_status: str  # the provider's own word for it
    received_at: datetime
    error_code: str | None = None
