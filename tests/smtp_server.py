"""A real SMTP server on loopback for the SMTP provider's tests (aiosmtpd): STARTTLS required, AUTH after TLS,
a certificate from a throwaway CA (trustme). Recipients named busy@ or nobody@ are refused with 451 / 550."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from notify.adapters.provider.smtp import SmtpConfig
from notify.devtools.processes import free_port

USER, PASSWORD = "notify", "s3cret"


@dataclass
class Mailbox:
    """Records what the server accepted; recipients named busy@ or nobody@ are refused (451 / 550)."""

    messages: list[tuple[EmailMessage, Session]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("busy@"):
            return "451 4.3.2 try again later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((parsed, session))
        return "250 2.0.0 Ok: queued"


def authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int
    ca_file: str

    def config(self, **overrides: Any) -> SmtpConfig:
        base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "sender": "notify@example.com",
            "tls": "starttls",
            "username": USER,
            "password": PASSWORD,
            "timeout_s": 5.0,
            "ca_file": self.ca_file,
        }
        return SmtpConfig(**(base | overrides))


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer(mailbox, port, str(ca_file))
    finally:
        controller.stop()
