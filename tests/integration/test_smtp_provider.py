"""The SMTP provider against a real SMTP server on loopback (aiosmtpd, STARTTLS required, AUTH after TLS):
what arrives, and how each reply is classified."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from notify.adapters.provider.smtp import SmtpProvider
from notify.devtools.processes import free_port
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.ports.provider import ProviderMessage
from tests.smtp_server import SmtpServer


def message(to: str = "ada@example.com", content: str = "Hello Ada", **fields: Any) -> ProviderMessage:
    return ProviderMessage(
        notification_id=uuid.uuid4(),
        attempt=2,
        channel="email",
        to=to,
        content=content,
        subject=fields.pop("subject", "Welcome"),
        correlation_id="corr-1",
        **fields,
    )


async def test_a_message_arrives_over_starttls_and_auth_with_its_headers(smtp_server: SmtpServer) -> None:
    provider = SmtpProvider("relay", smtp_server.config())
    sent = message()
    receipt = await provider.send(sent)
    assert receipt.provider == "relay"
    assert receipt.message_id == f"{sent.notification_id}@example.com"
    [(received, session)] = smtp_server.mailbox.messages
    assert session.ssl is not None and session.authenticated  # STARTTLS, then AUTH
    assert received["From"] == "notify@example.com"
    assert received["To"] == "ada@example.com"
    assert received["Subject"] == "Welcome"
    assert received["Message-ID"] == f"<{sent.notification_id}@example.com>"
    assert received["X-Notify-Attempt"] == "2"
    assert received["X-Correlation-ID"] == "corr-1"
    assert received.get_content_type() == "text/plain"
    assert received.get_content().strip() == "Hello Ada"


async def test_a_retried_send_carries_the_same_message_id(smtp_server: SmtpServer) -> None:
    provider = SmtpProvider("relay", smtp_server.config(message_id_domain="mail.example.org"))
    first = message()
    await provider.send(first)
    await provider.send(replace(first, attempt=first.attempt + 1))
    ids = [m["Message-ID"] for m, _ in smtp_server.mailbox.messages]
    assert ids == [f"<{first.notification_id}@mail.example.org>"] * 2


async def test_html_content_is_sent_as_an_alternative_to_plain_text(smtp_server: SmtpServer) -> None:
    document = "<!DOCTYPE html><html><body><p>Hello <b>Ada</b> &amp; co</p></body></html>"
    await SmtpProvider("relay", smtp_server.config()).send(message(content=document))
    [(received, _)] = smtp_server.mailbox.messages
    assert received.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content().strip() for part in received.iter_parts()}
    assert parts == {"text/plain": "Hello Ada & co", "text/html": document}


async def test_a_4xx_reply_is_transient_and_a_5xx_permanent(smtp_server: SmtpServer) -> None:
    provider = SmtpProvider("relay", smtp_server.config())
    with pytest.raises(TransientProviderError, match="SMTP 451"):
        await provider.send(message(to="busy@example.com"))
    with pytest.raises(PermanentProviderError, match=r"SMTP 550: .*no such user"):
        await provider.send(message(to="nobody@example.com"))
    assert smtp_server.mailbox.messages == []


async def test_refused_credentials_are_transient_not_the_messages_fault(smtp_server: SmtpServer) -> None:
    provider = SmtpProvider("relay", smtp_server.config(password="wrong"))
    with pytest.raises(TransientProviderError, match="SMTP 535"):
        await provider.send(message())
    assert smtp_server.mailbox.messages == []


async def test_an_untrusted_certificate_or_no_server_is_transient(smtp_server: SmtpServer) -> None:
    untrusted = SmtpProvider("relay", smtp_server.config(ca_file=None))  # the system CAs: not this one
    with pytest.raises(TransientProviderError):
        await untrusted.send(message())
    nobody_listening = SmtpProvider("relay", smtp_server.config(port=free_port()))
    with pytest.raises(TransientProviderError):
        await nobody_listening.send(message())
    assert smtp_server.mailbox.messages == []
