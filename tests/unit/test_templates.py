"""Templates in the domain: create-time checks, strict variables, the sandbox and its limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from notify.adapters.templates.jinja import MAX_LOOP_ITERATIONS, check_template_source, render
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import MAX_TEMPLATE_BODY_CHARS, Template, check_template_name
from notify.domain.validation import MAX_SUBJECT_CHARS

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def tpl(body: str, channel: Channel = Channel.SMS, subject: str | None = None) -> Template:
    return Template(uuid4(), "tenant", "name", channel, body, subject, NOW, NOW)


def failures(body: str, variables: dict[str, Any] | None = None, **kw: Any) -> list[FieldError]:
    with pytest.raises(ValidationFailed) as caught:
        render(tpl(body, **kw), variables or {})
    assert caught.value.details
    return caught.value.details


# --- create-time checks -------------------------------------------------------------------------------------


def test_a_syntax_error_names_its_line() -> None:
    errors = check_template_source(Channel.SMS, "Hello\n{{ name }\nBye", None)
    assert [(e.field, e.code) for e in errors] == [("body", "template_syntax")]
    assert errors[0].message.startswith("line 2: ")


def test_a_syntax_error_in_the_subject_names_the_subject() -> None:
    errors = check_template_source(Channel.EMAIL, "Hello", "Hi {% if %}")
    assert [(e.field, e.code) for e in errors] == [("subject", "template_syntax")]
    assert errors[0].message.startswith("line 1: ")


def test_an_unknown_filter_is_caught_at_create_time() -> None:
    errors = check_template_source(Channel.SMS, "{{ name|shout }}", None)
    assert [(e.field, e.code) for e in errors] == [("body", "template_syntax")]
    assert "shout" in errors[0].message


@pytest.mark.parametrize(
    "body", ["{% include 'x' %}", "{% extends 'x' %}", "{% import 'x' as m %}", "{% from 'x' import m %}"]
)
def test_templates_cannot_reach_other_templates(body: str) -> None:
    errors = check_template_source(Channel.SMS, body, None)
    assert [(e.field, e.code) for e in errors] == [("body", "template_syntax")]


def test_a_valid_template_has_no_errors() -> None:
    body = "Hi {{ name }}{% for o in orders %}\n- {{ o.item }}{% endfor %}"
    assert check_template_source(Channel.EMAIL, body, "Order {{ number }}") == []


@pytest.mark.parametrize("body", ["", "   \n"])
def test_the_body_must_not_be_empty(body: str) -> None:
    assert [e.code for e in check_template_source(Channel.SMS, body, None)] == ["required"]


def test_the_body_has_a_size_limit() -> None:
    errors = check_template_source(Channel.EMAIL, "x" * (MAX_TEMPLATE_BODY_CHARS + 1), None)
    assert [(e.field, e.code) for e in errors] == [("body", "too_long")]


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.PUSH])
def test_only_email_templates_have_a_subject(channel: Channel) -> None:
    errors = check_template_source(channel, "Hello", "Subject")
    assert [(e.field, e.code) for e in errors] == [("subject", "not_allowed")]


@pytest.mark.parametrize("subject", ["", "two\nlines", "x" * (MAX_SUBJECT_CHARS + 1)])
def test_a_subject_is_one_nonempty_line(subject: str) -> None:
    errors = check_template_source(Channel.EMAIL, "Hello", subject)
    assert [(e.field, e.code) for e in errors] == [("subject", "invalid_subject")]


@pytest.mark.parametrize("name", ["", "   ", " padded", "x" * 201, "tab\there"])
def test_bad_names(name: str) -> None:
    err = check_template_name(name)
    assert err is not None
    assert err.field == "name"


def test_a_good_name() -> None:
    assert check_template_name("order-shipped v2") is None


# --- rendering ----------------------------------------------------------------------------------------------


def test_render_fills_in_variables() -> None:
    body = "Hi {{ user.name }}, {{ items|length }} items: {{ items|join(', ') }}"
    content, subject = render(tpl(body), {"user": {"name": "Ann"}, "items": ["a", "b"]})
    assert (content, subject) == ("Hi Ann, 2 items: a, b", None)


def test_render_is_not_html_escaped() -> None:
    content, _ = render(tpl("{{ text }}"), {"text": "<b>&</b>"})
    assert content == "<b>&</b>"


def test_every_missing_variable_is_named_at_once() -> None:
    errors = failures("Hi {{ name }}, {{ user.email }} {% for x in items %}{{ x }}{% endfor %} {{ n + 1 }}")
    assert {e.field for e in errors} == {"template_variables"}
    assert {e.code for e in errors} == {"missing_variable"}
    assert [e.message for e in errors] == [
        "missing variable 'name'",
        "missing variable 'user'",
        "missing variable 'items'",
        "missing variable 'n'",
    ]


def test_a_missing_attribute_is_named() -> None:
    [error] = failures("{{ user.email }}", {"user": {"name": "Ann"}})
    assert (error.field, error.code) == ("template_variables", "missing_variable")
    assert "email" in error.message


def test_missing_variables_in_the_subject_are_named_too() -> None:
    errors = failures("Hi {{ name }}", channel=Channel.EMAIL, subject="Order {{ number }}")
    assert [e.message for e in errors] == ["missing variable 'name'", "missing variable 'number'"]


def test_missing_variable_field_carries_the_prefix() -> None:
    with pytest.raises(ValidationFailed) as caught:
        render(tpl("{{ a }}"), {}, "notifications[3].")
    assert caught.value.details[0].field == "notifications[3].template_variables"


def test_optional_variables_are_possible_explicitly() -> None:
    body = "Hi{% if name is defined %} {{ name }}{% endif %}, {{ greeting|default('welcome') }}"
    assert render(tpl(body), {}) == ("Hi, welcome", None)
    assert render(tpl(body), {"name": "Bo", "greeting": "hello"}) == ("Hi Bo, hello", None)


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ name.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ items.append(1) }}",  # the variables are read-only
        "{{ name.format.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_internals(body: str) -> None:
    [error] = failures(body, {"name": "x", "items": []})
    assert (error.field, error.code) == ("template_id", "template_unsafe")


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 2 ** 10000000 }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'|center(999999999) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999s' % 1 }}",
        "{{ big|replace('', big) }}",
        "{{ ([big] * 100)|join }}",
        "{% set a = big %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a|length }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    ],
)
def test_resource_hungry_templates_are_stopped(body: str) -> None:
    [error] = failures(body, {"big": "x" * 40_000})
    assert (error.field, error.code) == ("template_id", "template_limit")


def test_loops_share_one_iteration_budget() -> None:
    body = "{% for i in range(200) %}{% for j in range(200) %}{% endfor %}{% endfor %}ok"
    assert MAX_LOOP_ITERATIONS < 200 * 200
    [error] = failures(body)
    assert error.code == "template_limit"
    assert render(tpl("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}ok"), {})


def test_a_runtime_error_is_a_validation_error_not_a_crash() -> None:
    [error] = failures("{{ 1 / n }}", {"n": 0})
    assert (error.field, error.code) == ("template_id", "template_error")
    assert "division by zero" in error.message


def test_output_is_capped_at_the_channel_limit() -> None:
    [error] = failures("{% for i in range(2000) %}x{% endfor %}")
    assert (error.field, error.code) == ("content", "too_long")
    assert "1600" in error.message


def test_rendered_sms_content_over_1600_characters_is_too_long() -> None:
    [error] = failures("Hello {{ text }}", {"text": "x" * 1600})
    assert (error.field, error.code) == ("content", "too_long")
    content, _ = render(tpl("{{ text }}"), {"text": "x" * 1600})
    assert len(content) == 1600


def test_the_same_text_fits_a_longer_channel() -> None:
    content, _ = render(tpl("{{ text }}", Channel.PUSH), {"text": "x" * 4096})
    assert len(content) == 4096
    [error] = failures("{{ text }}!", {"text": "x" * 4096}, channel=Channel.PUSH)
    assert error.code == "too_long"


def test_rendered_content_must_not_be_empty() -> None:
    [error] = failures("{{ text }}", {"text": "  "})
    assert (error.field, error.code) == ("content", "required")


def test_email_subject_is_rendered() -> None:
    template = tpl("Dear {{ name }}", Channel.EMAIL, "Order {{ number }} shipped")
    assert render(template, {"name": "Ann", "number": 42}) == ("Dear Ann", "Order 42 shipped")


def test_a_rendered_subject_must_stay_one_line() -> None:
    errors = failures("Body", {"name": "a\nb"}, channel=Channel.EMAIL, subject="Hi {{ name }}")
    assert [(e.field, e.code) for e in errors] == [("subject", "invalid_subject")]


def test_a_rendered_subject_has_a_size_limit() -> None:
    errors = failures("Body", {"name": "x" * 1000}, channel=Channel.EMAIL, subject="Hi {{ name }}")
    assert [(e.field, e.code) for e in errors] == [("subject", "invalid_subject")]


def test_a_template_renders_the_same_many_times() -> None:
    template = tpl("Code {{ code }}")
    assert [render(template, {"code": i})[0] for i in range(3)] == ["Code 0", "Code 1", "Code 2"]
