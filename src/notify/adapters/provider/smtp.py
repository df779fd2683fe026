"""Email over SMTP (aiosmtplib): one MIME message per notification, every SMTP outcome mapped to the errors
tree (docs/providers.md).

- The ``Message-ID`` is derived from the notification id, the same on every attempt, so a retried send is
  recognisable (by the receiving system, and by whoever reads the headers).
- Plain text; when the content is an HTML document (it starts with ``<!doctype html`` or ``<html``), a
  ``multipart/alternative`` with a plain-text rendering first and the HTML second.
- Replies: 4xx is transient (retried, the next provider tried), 5xx permanent — except an authentication
  failure, which says nothing about the message (the account or its credentials are at fault), so it is
  transient: the notification fails over or waits instead of being dead-lettered.
- One connection per message: simple and always correct; a pooled connection is a later optimisation.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

import aiosmtplib
from opentelemetry.trace import SpanKind, Status, StatusCode

from notify.adapters.provider.calls import MAX_ERROR_CHARS
from notify.adapters.provider.email_content import is_html, plain_text_of
from notify.adapters.telemetry.tracing import span_in
from notify.domain.errors import PermanentProviderError, TransientProviderError
from notify.domain.text import storable
from notify.ports.provider import ProviderMessage, ProviderReceipt

TlsMode = Literal["starttls", "implicit", "none"]
# Replies that say the account or its credentials are refused, not the message (RFC 4954).
_AUTH_CODES = frozenset({454, 530, 534, 535, 538})


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str  # the From address
    tls: TlsMode = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0
    ca_file: str | None = None  # trust this CA (a private relay); default: the system's
    message_id_domain: str | None = None  # default: the sender's domain


def build_message(config: SmtpConfig, message: ProviderMessage) -> EmailMessage:
    domain = config.message_id_domain or config.sender.rpartition("@")[2] or "notify.invalid"
    email = EmailMessage()
    email["From"] = config.sender
    email["To"] = message.to
    email["Subject"] = message.subject or ""
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = f"<{message.notification_id}@{domain}>"
    email["X-Notify-Notification-Id"] = str(message.notification_id)
    email["X-Notify-Attempt"] = str(message.attempt)
    if message.correlation_id:
        email["X-Correlation-ID"] = message.correlation_id
    if is_html(message.content):
        email.set_content(plain_text_of(message.content))
        email.add_alternative(message.content, subtype="html")
    else:
        email.set_content(message.content)
    return email


class SmtpProvider:
    def __init__(self, name: str, config: SmtpConfig) -> None:
        self.name = name
        self._config = config
        self._tls_context = ssl.create_default_context(cafile=config.ca_file)

    async def send(self, message: ProviderMessage) -> ProviderReceipt:
        with span_in(
            f"SMTP {self.name}",
            None,
            SpanKind.CLIENT,
            {
                "server.address": self._config.host,
                "server.port": self._config.port,
                "notify.provider": self.name,
                "notify.attempt": message.attempt,
                "notification.id": str(message.notification_id),
            },
        ) as span:
            try:
                return await self._send(message)
            except (TransientProviderError, PermanentProviderError) as exc:
                span.set_status(Status(StatusCode.ERROR, exc.message))
                raise

    async def _send(self, message: ProviderMessage) -> ProviderReceipt:
        config = self._config
        email = build_message(config, message)
        try:
            _, reply = await aiosmtplib.send(
                email,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.tls == "implicit",
                start_tls=config.tls == "starttls",
                tls_context=self._tls_context if config.tls != "none" else None,
                timeout=config.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # The only recipient was refused: its reply decides.
            [refused] = exc.recipients
            raise self._error(refused.code, refused.message) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise self._error(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Connection refused or lost, TLS failure, timeout: nothing says the message is at fault.
            raise TransientProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return ProviderReceipt(self.name, str(email["Message-ID"]).strip("<>") or reply)

    def _error(self, code: int, text: str) -> TransientProviderError | PermanentProviderError:
        detail = f"{self.name}: SMTP {code}: {storable(text, MAX_ERROR_CHARS)}"
        if 400 <= code < 500 or code in _AUTH_CODES or code < 400:
            return TransientProviderError(detail)
        return PermanentProviderError(detail)
