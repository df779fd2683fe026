"""Message templates: the Template entity and its rules (name, source, and what a rendering must give).

The template language and its engine live in an adapter (``notify.adapters.templates.jinja``) behind the
``TemplateEngine`` port; the domain says what a template is and what is acceptable before and after rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from notify.domain.errors import FieldError
from notify.domain.model import Channel
from notify.domain.validation import MAX_CONTENT_CHARS, MAX_SUBJECT_CHARS, check_content

MAX_TEMPLATE_NAME_CHARS = 200
MAX_TEMPLATE_BODY_CHARS = 100_000
# Rendered content may be as long as the channel allows, and no longer.
MAX_RENDERED_CHARS: Mapping[Channel, int] = MAX_CONTENT_CHARS


@dataclass(frozen=True, slots=True)
class Template:
    id: UUID
    tenant_id: str
    name: str
    channel: Channel
    body: str
    subject: str | None
    created_at: datetime
    updated_at: datetime


# --- before rendering ---------------------------------------------------------------------------------------


def check_template_name(name: str, field_name: str = "name") -> FieldError | None:
    if not 1 <= len(name) <= MAX_TEMPLATE_NAME_CHARS or not name.strip():
        return FieldError(field_name, f"must be 1 to {MAX_TEMPLATE_NAME_CHARS} characters", "invalid_name")
    if name != name.strip() or any(not ch.isprintable() for ch in name):
        # "welcome" and "welcome " would otherwise be two templates nobody can tell apart
        return FieldError(
            field_name, "must not start or end with whitespace or contain control characters", "invalid_name"
        )
    return None


def check_body(body: str) -> FieldError | None:
    """A template body must hold something and be bounded (its syntax is the engine's to check)."""
    if not body.strip():
        return FieldError("body", "must not be empty", "required")
    if len(body) > MAX_TEMPLATE_BODY_CHARS:
        return FieldError(
            "body", f"must be at most {MAX_TEMPLATE_BODY_CHARS} characters (got {len(body)})", "too_long"
        )
    return None


def check_subject(channel: Channel, subject: str) -> FieldError | None:
    """Only email has a subject: one non-empty line, bounded (its syntax is the engine's to check)."""
    if channel is not Channel.EMAIL:
        return FieldError("subject", "is only allowed for the email channel", "not_allowed")
    if not subject.strip() or len(subject) > MAX_SUBJECT_CHARS or "\n" in subject or "\r" in subject:
        return FieldError(
            "subject",
            f"must be one non-empty line of at most {MAX_SUBJECT_CHARS} characters",
            "invalid_subject",
        )
    return None


# --- after rendering ----------------------------------------------------------------------------------------


def content_too_long(channel: Channel, field_prefix: str = "") -> FieldError:
    limit = MAX_RENDERED_CHARS[channel]
    return FieldError(
        field_prefix + "content",
        f"must be at most {limit} characters for {channel.value} (the rendered template is longer)",
        "too_long",
    )


def subject_error(field_prefix: str, why: str) -> FieldError:
    return FieldError(
        field_prefix + "subject",
        f"must be one line of at most {MAX_SUBJECT_CHARS} characters ({why})",
        "invalid_subject",
    )


def missing_variables(names: list[str], field_prefix: str = "") -> list[FieldError]:
    return [FieldError(field_prefix + "template_variables", name, "missing_variable") for name in names]


def check_rendered(
    channel: Channel, content: str, subject: str | None, field_prefix: str = ""
) -> list[FieldError]:
    """What a rendering gave must pass the channel's rules like any content a client sends."""
    failures: list[FieldError] = []
    err = check_content(channel, content, field_prefix + "content")
    if err:
        failures.append(err)
    if subject is not None and ("\n" in subject or "\r" in subject):
        failures.append(subject_error(field_prefix, "the rendered subject has a line break"))
    return failures
