"""Providers are configured per channel as a list of typed entries; each type builds its adapter, and secrets
never show in a repr or an error."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import aiohttp
import pytest
from pydantic import ValidationError

from notify.adapters.provider.apns import ApnsProvider
from notify.adapters.provider.fcm import FcmProvider
from notify.adapters.provider.http import HttpProvider
from notify.adapters.provider.smtp import SmtpProvider
from notify.adapters.provider.twilio import TwilioProvider
from notify.bootstrap import build_provider
from notify.settings import ProviderSettings, Settings, SmtpProviderSettings
from tests.standins.apns import ApnsStandIn
from tests.standins.fcm import FcmStandIn

SMTP = {
    "type": "smtp",
    "name": "relay",
    "host": "smtp.example.com",
    "sender": "notify@example.com",
    "username": "u",
    "password": "hunter2-secret",
}


def settings(providers: object) -> Settings:
    return Settings(providers=json.loads(json.dumps(providers)))


async def test_an_entry_without_a_type_is_the_http_gateway_and_smtp_is_chosen_by_type() -> None:
    configured = settings({"email": [SMTP, {"name": "gateway", "url": "http://gw/send"}]})
    relay, gateway = configured.providers_for("email")
    assert isinstance(relay, SmtpProviderSettings) and relay.port == 587 and relay.tls == "starttls"
    assert isinstance(gateway, ProviderSettings) and gateway.type == "http"
    async with aiohttp.ClientSession() as http, AsyncExitStack() as resources:
        assert isinstance(build_provider(relay, http, resources), SmtpProvider)
        assert isinstance(build_provider(gateway, http, resources), HttpProvider)


def test_the_smtp_password_never_shows() -> None:
    configured = settings({"email": [SMTP]})
    assert "hunter2" not in repr(configured) and "hunter2" not in str(configured.providers_for("email"))


@pytest.mark.parametrize(
    "entry",
    [
        {**SMTP, "tls": "sometimes"},  # a field error
        {**SMTP, "type": "smpt"},  # an unknown type: the whole entry is the input
        {**SMTP, "port": "x", "surprise": 1},
        {
            "type": "twilio",
            "name": "t",
            "account_sid": "AC" + "a" * 32,
            "auth_token": "hunter2-secret",
            "from_number": "+15005550006",
            "messaging_service_sid": "MG" + "c" * 32,
        },  # an entry-level rule
    ],
)
def test_a_configuration_error_never_echoes_a_secret(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as refused:
        settings({"email": [entry]})
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    "entry",
    [
        {**SMTP, "type": "carrier-pigeon"},
        {k: v for k, v in SMTP.items() if k != "host"},
        {**SMTP, "port": 0},
        {**SMTP, "url": "http://not-for-smtp"},
    ],
)
def test_a_wrong_entry_is_refused_at_start(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings({"email": [entry]})


TWILIO = {
    "type": "twilio",
    "name": "twilio",
    "account_sid": "AC" + "a" * 32,
    "auth_token": "tw-token-secret",
    "from_number": "+15005550006",
}


async def test_a_twilio_entry_builds_the_twilio_adapter_and_hides_its_token() -> None:
    configured = settings({"sms": [TWILIO]})
    [entry] = configured.providers_for("sms")
    assert "tw-token-secret" not in repr(configured)
    async with aiohttp.ClientSession() as http, AsyncExitStack() as resources:
        assert isinstance(build_provider(entry, http, resources), TwilioProvider)


@pytest.mark.parametrize(
    "entry",
    [
        {**TWILIO, "account_sid": "not-a-sid"},
        {k: v for k, v in TWILIO.items() if k != "auth_token"},  # no credential
        {**TWILIO, "api_key_sid": "SK" + "b" * 32, "api_key_secret": "s"},  # two credentials
        {k: v for k, v in TWILIO.items() if k != "from_number"},  # no sender
        {**TWILIO, "messaging_service_sid": "MG" + "c" * 32},  # two senders
        {
            **{k: v for k, v in TWILIO.items() if k != "auth_token"},
            "api_key_sid": "SK" + "b" * 32,
            "api_key_secret": "s",
            "status_callback_url": "https://notify.example/api/v1/receipts/twilio/twilio",
        },  # receipts are signed with the auth token
    ],
)
def test_a_wrong_twilio_entry_is_refused_at_start(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings({"sms": [entry]})


FCM = {"type": "fcm", "name": "fcm", "service_account": None}
APNS = {
    "type": "apns",
    "name": "apns",
    "team_id": "TEAM123456",
    "key_id": "KEY1234567",
    "topic": "com.example.app",
}


async def test_push_entries_build_their_adapters_without_opening_anything() -> None:
    fcm_key = FcmStandIn().service_account_json()
    apns_key = ApnsStandIn().private_key_pem()
    configured = settings({"push": [FCM | {"service_account": fcm_key}, APNS | {"private_key": apns_key}]})
    fcm, apns = configured.providers_for("push")
    assert fcm_key not in repr(configured) and apns_key not in repr(configured)
    async with aiohttp.ClientSession() as http, AsyncExitStack() as resources:
        assert isinstance(build_provider(fcm, http, resources), FcmProvider)
        assert isinstance(build_provider(apns, http, resources), ApnsProvider)


@pytest.mark.parametrize(
    "entry",
    [
        FCM | {"service_account": "not json"},
        FCM | {"service_account": '{"project_id": "p", "client_email": "e"}'},  # no private_key
        APNS | {"private_key": "hunter2-secret"},  # not a PEM key
        APNS | {"private_key": "-----BEGIN PRIVATE KEY-----", "team_id": "short"},
    ],
)
def test_a_wrong_push_entry_is_refused_without_echoing_the_key(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as refused:
        settings({"push": [entry]})
    assert "hunter2" not in str(refused.value)
