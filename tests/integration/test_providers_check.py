"""``notify providers check``: the configured providers listed without secrets, and a test message sent
through each one of a channel (a real SMTP server and a Twilio stand-in on loopback)."""

from __future__ import annotations

import io
import json

import pytest

from notify.domain.model import Channel
from notify.entrypoints import cli
from notify.entrypoints.providers import check
from notify.settings import Settings
from tests.smtp_server import PASSWORD, USER, SmtpServer
from tests.standins.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn


def configured(smtp: SmtpServer, twilio_base: str, *, smtp_password: str = PASSWORD) -> Settings:
    relay = {
        "type": "smtp",
        "name": "relay",
        "host": "127.0.0.1",
        "port": smtp.port,
        "username": USER,
        "password": smtp_password,
        "sender": "notify@example.com",
        "ca_file": smtp.ca_file,
    }
    twilio = {
        "type": "twilio",
        "name": "twilio",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": twilio_base,
    }
    return Settings(providers=json.loads(json.dumps({"email": [relay], "sms": [twilio]})))


async def test_the_list_shows_every_provider_and_no_secret(
    smtp_server: SmtpServer, twilio: tuple[TwilioStandIn, str]
) -> None:
    out = io.StringIO()
    assert await check(configured(smtp_server, twilio[1]), None, None, out) == 0
    text = out.getvalue()
    assert "1. relay: smtp 127.0.0.1" in text and "1. twilio: twilio account AC" in text
    assert "push:\n  1. sandbox: http gateway" in text
    assert PASSWORD not in text and AUTH_TOKEN not in text
    assert smtp_server.mailbox.messages == [] and twilio[0].messages == []  # nothing sent


async def test_send_test_goes_through_each_provider_of_the_recipients_channel(
    smtp_server: SmtpServer, twilio: tuple[TwilioStandIn, str]
) -> None:
    standin, base = twilio
    out = io.StringIO()
    assert await check(configured(smtp_server, base), "ada@example.com", None, out) == 0
    [(received, _)] = smtp_server.mailbox.messages
    assert received["To"] == "ada@example.com" and received["Subject"] == "notify test"
    assert "relay: sent, message id" in out.getvalue()

    out = io.StringIO()
    assert await check(configured(smtp_server, base), "+14155550123", Channel.SMS, out) == 0
    [sms] = standin.messages
    assert f"twilio: sent, message id {sms['sid']}" in out.getvalue()


async def test_a_provider_that_fails_the_test_is_named_and_the_exit_code_is_1(
    smtp_server: SmtpServer, twilio: tuple[TwilioStandIn, str]
) -> None:
    out = io.StringIO()
    wrong = configured(smtp_server, twilio[1], smtp_password="wrong")
    assert await check(wrong, "ada@example.com", None, out) == 1
    assert "relay: FAILED (transient): relay: SMTP 535" in out.getvalue()


def test_an_invalid_configuration_is_exit_2_and_echoes_no_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = {"type": "smpt", "name": "relay", "host": "h", "sender": "a@b.c", "password": "hunter2-secret"}
    monkeypatch.setenv("NOTIFY_PROVIDERS", json.dumps({"email": [entry]}))
    assert cli.main(["providers", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notify: NOTIFY_PROVIDERS_EMAIL_0: ") and "smpt" not in err.split(":")[1]
    assert "hunter2" not in err
