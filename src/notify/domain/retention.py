"""Retention and erasure: how long notifications are kept, and a recipient's right to be forgotten."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from notify.domain.model import Channel
from notify.domain.validation import normalize_recipient


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure removed."""

    notifications: int = 0
    attempts: int = 0
    status_changes: int = 0
    receipts: int = 0
    webhook_deliveries: int = 0


def recipient_forms(recipient: str) -> list[str]:
    """Every form ``recipient`` is stored under: as given, and as each channel would store it (a phone number
    in E.164, an email address lower-cased), so an erasure finds it however it was sent."""
    given = recipient.strip()
    forms = {given}
    for channel in Channel:
        normalized, problem = normalize_recipient(channel, given)
        if problem is None:
            forms.add(normalized)
    if given.startswith("+"):  # a phone number as people write it: "+1 (415) 555-0123"
        try:
            number = phonenumbers.parse(given, None)
            forms.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
        except phonenumbers.NumberParseException:
            pass
    return sorted(f for f in forms if f)
