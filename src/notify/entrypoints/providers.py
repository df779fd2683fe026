"""``notify providers check``: the providers each channel fails over through, as configured (secrets never
shown), and with ``--send-test RECIPIENT`` one test message sent through each provider of the recipient's
channel by the same adapter the worker uses, so every credential in the list is proven, not only the first."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack
from typing import TextIO

import aiohttp

from notify.adapters.clock import SystemClock
from notify.bootstrap import build_provider
from notify.domain.errors import ProviderError
from notify.domain.ids import uuid7_at
from notify.domain.model import Channel
from notify.ports.provider import ProviderMessage
from notify.settings import (
    AnyProvider,
    ApnsProviderSettings,
    FcmProviderSettings,
    ProviderSettings,
    SesProviderSettings,
    Settings,
    SmtpProviderSettings,
)

TEST_CONTENT = "A test message from notify (notify providers check)."


def describe(provider: AnyProvider) -> str:
    """What a provider is and where it sends, without any secret."""
    if isinstance(provider, ProviderSettings):
        signed = ", signed" if provider.hmac_secret else ""
        return f"http gateway {provider.url}{signed}"
    if isinstance(provider, SmtpProviderSettings):
        auth = f", as {provider.username}" if provider.username else ""
        return f"smtp {provider.host}:{provider.port} ({provider.tls}{auth}), from {provider.sender}"
    if isinstance(provider, SesProviderSettings):
        where = provider.endpoint_url or provider.region
        return f"ses {where} as {provider.access_key_id}, from {provider.sender}"
    if isinstance(provider, ApnsProviderSettings):
        where = provider.base_url or ("sandbox" if provider.sandbox else "production")
        return f"apns team {provider.team_id} key {provider.key_id}, topic {provider.topic} ({where})"
    if isinstance(provider, FcmProviderSettings):
        project = json.loads(provider.service_account.get_secret_value())["project_id"]
        return f"fcm project {project} at {provider.base_url}"
    sender = provider.messaging_service_sid or provider.from_number
    receipts = ", receipts" if provider.status_callback_url else ""
    return f"twilio account {provider.account_sid}, from {sender}{receipts}"


def channel_of(recipient: str) -> Channel:
    if recipient.startswith("+"):
        return Channel.SMS
    if "@" in recipient:
        return Channel.EMAIL
    return Channel.PUSH


async def check(settings: Settings, send_to: str | None, channel: Channel | None, out: TextIO) -> int:
    for each in Channel:
        print(f"{each.value}:", file=out)
        for position, provider in enumerate(settings.providers_for(each.value), start=1):
            print(f"  {position}. {provider.name}: {describe(provider)}", file=out)
    if send_to is None:
        print("configuration ok", file=out)
        return 0
    channel = channel or channel_of(send_to)
    print(f"sending a test {channel.value} to {send_to} through each {channel.value} provider:", file=out)
    failed = 0
    async with aiohttp.ClientSession() as http, AsyncExitStack() as resources:
        for provider in settings.providers_for(channel.value):
            message = ProviderMessage(
                notification_id=uuid7_at(SystemClock().now()),
                attempt=1,
                channel=channel.value,
                to=send_to,
                content=TEST_CONTENT,
                subject="notify test" if channel is Channel.EMAIL else None,
            )
            try:
                receipt = await build_provider(provider, http, resources).send(message)
            except ProviderError as exc:
                failed += 1
                kind = "transient" if exc.retriable else "permanent"
                print(f"  {provider.name}: FAILED ({kind}): {exc.message}", file=out)
            else:
                print(f"  {provider.name}: sent, message id {receipt.message_id}", file=out)
    return 1 if failed else 0


def run_check(settings: Settings, args: argparse.Namespace) -> int:
    channel = Channel(args.channel) if args.channel else None
    return asyncio.run(check(settings, args.send_test, channel, sys.stdout))
