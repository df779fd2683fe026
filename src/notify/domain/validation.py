"""Recipient and content rules per channel (see the README). Lengths are in characters, not bytes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from notify.domain.errors import FieldError
from notify.domain.model import Channel

MAX_CONTENT_CHARS = {Channel.SMS: 1600, Channel.EMAIL: 100_000, Channel.PUSH: 4096}
MAX_PUSH_TOKEN_CHARS = 4096
MAX_SUBJECT_CHARS = 998  # RFC 5322 line limit
MAX_METADATA_BYTES = 4096
MAX_IDEMPOTENCY_KEY_CHARS = 255


def normalize_recipient(
    channel: Channel, recipient: str, field: str = "recipient"
) -> tuple[str, FieldError | None]:
    """The canonical form of ``recipient`` for ``channel``, or the reason it is not acceptable."""
    if channel is Channel.SMS:
        return _normalize_phone(recipient, field)
    if channel is Channel.EMAIL:
        return _normalize_email(recipient, field)
    return _check_push_token(recipient, field)


def _normalize_phone(value: str, field: str) -> tuple[str, FieldError | None]:
    bad = FieldError(
        field, "must be a phone number in E.164 format, e.g. +14155550123", "invalid_phone_number"
    )
    if not value.startswith("+") or not value[1:].isdigit() or not 2 <= len(value) - 1 <= 15:
        return value, bad
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value, bad
    if not phonenumbers.is_valid_number(number):
        return value, FieldError(
            field, "is not a valid phone number in its country's numbering plan", "invalid_phone_number"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _normalize_email(value: str, field: str) -> tuple[str, FieldError | None]:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return value, FieldError(field, f"must be a valid email address: {exc}", "invalid_email")
    return result.normalized, None


def _check_push_token(value: str, field: str) -> tuple[str, FieldError | None]:
    if not 1 <= len(value) <= MAX_PUSH_TOKEN_CHARS:
        return value, FieldError(
            field, f"must be a push token of 1 to {MAX_PUSH_TOKEN_CHARS} characters", "invalid_push_token"
        )
    if value != value.strip() or any(ch.isspace() or not ch.isprintable() for ch in value):
        return value, FieldError(
            field, "must not contain whitespace or control characters", "invalid_push_token"
        )
    return value, None


def check_content(channel: Channel, content: str, field: str = "content") -> FieldError | None:
    if not content.strip():
        return FieldError(field, "must not be empty", "required")
    limit = MAX_CONTENT_CHARS[channel]
    if len(content) > limit:
        return FieldError(
            field, f"must be at most {limit} characters for {channel.value} (got {len(content)})", "too_long"
        )
    return None


@dataclass(frozen=True, slots=True)
class DraftFields:
    """What a client sent for one notification, already shaped (types checked) by the adapter."""

    channel: Channel
    recipient: str
    content: str | None
    subject: str | None
    scheduled_at: datetime | None
    expires_at: datetime | None
    metadata: dict[str, Any]
    idempotency_key: str | None


def check_draft(draft: DraftFields, now: datetime, prefix: str = "") -> tuple[str, list[FieldError]]:
    """Every rule a single notification must pass. Returns the normalized recipient and all failures."""
    errors: list[FieldError] = []
    recipient, err = normalize_recipient(draft.channel, draft.recipient, prefix + "recipient")
    if err:
        errors.append(err)
    if draft.content is None:
        errors.append(FieldError(prefix + "content", "is required", "required"))
    else:
        err = check_content(draft.channel, draft.content, prefix + "content")
        if err:
            errors.append(err)
    if draft.subject is not None:
        if draft.channel is not Channel.EMAIL:
            errors.append(
                FieldError(prefix + "subject", "is only allowed for the email channel", "not_allowed")
            )
        elif len(draft.subject) > MAX_SUBJECT_CHARS or "\n" in draft.subject or "\r" in draft.subject:
            errors.append(
                FieldError(
                    prefix + "subject",
                    f"must be one line of at most {MAX_SUBJECT_CHARS} characters",
                    "invalid_subject",
                )
            )
    if draft.expires_at is not None:
        if draft.expires_at <= now:
            errors.append(FieldError(prefix + "expires_at", "must be in the future", "in_past"))
        elif draft.scheduled_at is not None and draft.expires_at <= draft.scheduled_at:
            errors.append(FieldError(prefix + "expires_at", "must be after scheduled_at", "before_schedule"))
    if len(json.dumps(draft.metadata, separators=(",", ":"))) > MAX_METADATA_BYTES:
        errors.append(
            FieldError(
                prefix + "metadata", f"must serialize to at most {MAX_METADATA_BYTES} bytes", "too_large"
            )
        )
    if draft.idempotency_key is not None and not 1 <= len(draft.idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        errors.append(
            FieldError(
                prefix + "idempotency_key", f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters", "invalid"
            )
        )
    return recipient, errors


# --- SMS segments -------------------------------------------------------------------------------------------

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class SmsSegments:
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int


def sms_segments(text: str) -> SmsSegments:
    """How many SMS parts ``text`` needs: GSM-7 if every character fits its alphabet, else UCS-2."""
    encoding: Literal["GSM-7", "UCS-2"]
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in text):
        septets = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
        units = septets
    else:
        units = len(text.encode("utf-16-le")) // 2  # characters outside the BMP take two code units
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsSegments(encoding, 1)
    return SmsSegments(encoding, math.ceil(units / multi))
