from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notify.domain.errors import IllegalTransition
from notify.domain.ids import highest_id_at, lowest_id_at, uuid7_at
from notify.domain.model import ALLOWED_TRANSITIONS, Channel, Status, check_transition, sources_of
from notify.domain.validation import (
    DraftFields,
    check_draft,
    normalize_recipient,
    sms_segments,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def draft(**overrides: object) -> DraftFields:
    base: dict[str, object] = dict(
        channel=Channel.SMS,
        recipient="+14155550123",
        content="hi",
        subject=None,
        scheduled_at=None,
        expires_at=None,
        metadata={},
        idempotency_key=None,
    )
    base.update(overrides)
    return DraftFields(**base)  # type: ignore[arg-type]


class TestStatusMachine:
    def test_terminal_statuses_only_leave_by_replay(self) -> None:
        assert ALLOWED_TRANSITIONS[Status.DELIVERED] == frozenset()
        assert ALLOWED_TRANSITIONS[Status.CANCELLED] == frozenset()
        assert ALLOWED_TRANSITIONS[Status.FAILED] == {Status.PENDING}

    @pytest.mark.parametrize("current", [Status.PROCESSING, Status.DELIVERED, Status.FAILED, Status.EXPIRED])
    def test_cancel_is_refused_outside_pending_scheduled_retrying(self, current: Status) -> None:
        with pytest.raises(IllegalTransition):
            check_transition(current, Status.CANCELLED)

    def test_cancel_sources(self) -> None:
        assert sources_of(Status.CANCELLED) == {Status.PENDING, Status.SCHEDULED, Status.RETRYING}

    def test_claim_sources(self) -> None:
        assert sources_of(Status.PROCESSING) == {Status.PENDING, Status.RETRYING}

    def test_delivered_cannot_be_overwritten_by_failure(self) -> None:
        with pytest.raises(IllegalTransition, match="'delivered' cannot become 'failed'"):
            check_transition(Status.DELIVERED, Status.FAILED)


class TestRecipients:
    @pytest.mark.parametrize("number", ["+14155550123", "+447911123456", "+4915123456789"])
    def test_valid_e164_numbers_pass(self, number: str) -> None:
        assert normalize_recipient(Channel.SMS, number) == (number, None)

    @pytest.mark.parametrize(
        "number",
        [
            "14155550123",
            "+1415",
            "+1 415 555 0123",
            "+99912345678",
            "+10005550123",
            "",
            "+",
            "+1234567890123456",
        ],
    )
    def test_invalid_numbers_fail(self, number: str) -> None:
        _, err = normalize_recipient(Channel.SMS, number)
        assert err is not None and err.code == "invalid_phone_number"

    def test_email_is_normalized_without_dns(self) -> None:
        assert normalize_recipient(Channel.EMAIL, "Ann@Example.COM") == ("Ann@example.com", None)

    @pytest.mark.parametrize("address", ["not-an-email", "a@", "@b.com", "a b@c.com"])
    def test_invalid_emails_fail(self, address: str) -> None:
        _, err = normalize_recipient(Channel.EMAIL, address)
        assert err is not None and err.code == "invalid_email"

    def test_push_token_limits(self) -> None:
        assert normalize_recipient(Channel.PUSH, "x" * 4096)[1] is None
        assert normalize_recipient(Channel.PUSH, "x" * 4097)[1] is not None
        assert normalize_recipient(Channel.PUSH, "has space")[1] is not None


class TestDraftRules:
    def test_a_good_draft_has_no_errors(self) -> None:
        assert check_draft(draft(), NOW) == ("+14155550123", [])

    def test_content_limits_are_in_characters(self) -> None:
        assert check_draft(draft(content="é" * 1600), NOW)[1] == []
        errors = check_draft(draft(content="é" * 1601), NOW)[1]
        assert [e.field for e in errors] == ["content"]

    @pytest.mark.parametrize(
        ("channel", "recipient", "limit"),
        [(Channel.EMAIL, "a@example.com", 100_000), (Channel.PUSH, "tok", 4096)],
    )
    def test_content_limit_per_channel(self, channel: Channel, recipient: str, limit: int) -> None:
        assert check_draft(draft(channel=channel, recipient=recipient, content="a" * limit), NOW)[1] == []
        assert check_draft(draft(channel=channel, recipient=recipient, content="a" * (limit + 1)), NOW)[1]

    def test_missing_and_blank_content(self) -> None:
        assert [e.code for e in check_draft(draft(content=None), NOW)[1]] == ["required"]
        assert [e.code for e in check_draft(draft(content="   "), NOW)[1]] == ["required"]

    def test_subject_only_for_email(self) -> None:
        assert [e.field for e in check_draft(draft(subject="Hi"), NOW)[1]] == ["subject"]
        assert (
            check_draft(draft(channel=Channel.EMAIL, recipient="a@example.com", subject="Hi"), NOW)[1] == []
        )

    def test_expiry_must_be_future_and_after_schedule(self) -> None:
        past = check_draft(draft(expires_at=NOW - timedelta(seconds=1)), NOW)[1]
        assert [e.code for e in past] == ["in_past"]
        before = check_draft(
            draft(scheduled_at=NOW + timedelta(hours=2), expires_at=NOW + timedelta(hours=1)), NOW
        )[1]
        assert [e.code for e in before] == ["before_schedule"]

    def test_all_failures_are_reported_with_prefix(self) -> None:
        errors = check_draft(
            draft(recipient="nope", content=None, metadata={"k": "v" * 5000}), NOW, "notifications[3]."
        )[1]
        assert [e.field for e in errors] == [
            "notifications[3].recipient",
            "notifications[3].content",
            "notifications[3].metadata",
        ]


class TestSmsSegments:
    def test_gsm7(self) -> None:
        assert sms_segments("a" * 160) == sms_segments("a" * 160)
        assert sms_segments("a" * 160).segments == 1
        assert sms_segments("a" * 161).segments == 2
        assert sms_segments("a" * 306).segments == 2
        assert sms_segments("a" * 307).segments == 3
        assert sms_segments("a").encoding == "GSM-7"

    def test_extended_characters_take_two_septets(self) -> None:
        assert sms_segments("€" * 80).segments == 1
        assert sms_segments("€" * 81).segments == 2

    def test_ucs2(self) -> None:
        assert sms_segments("ж" * 70).encoding == "UCS-2"
        assert sms_segments("ж" * 70).segments == 1
        assert sms_segments("ж" * 71).segments == 2
        assert sms_segments("😀" * 35).segments == 1  # two UTF-16 units each
        assert sms_segments("😀" * 36).segments == 2


class TestIds:
    def test_uuid7_layout_and_order(self) -> None:
        a = uuid7_at(NOW)
        b = uuid7_at(NOW + timedelta(milliseconds=1))
        assert a.version == 7 and a.variant == "specified in RFC 4122"
        assert a < b
        assert lowest_id_at(NOW) <= a <= highest_id_at(NOW)
        assert highest_id_at(NOW) < lowest_id_at(NOW + timedelta(milliseconds=1))
