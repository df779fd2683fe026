"""How every Kafka client of notify connects: the brokers and, for a managed cluster, TLS and SASL (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512). One object, built from the settings, read by every producer, consumer and
admin client, so none can be configured differently from the others."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.helpers import create_ssl_context


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None  # None: the system's CAs
    ssl_certfile: str | None = None  # a client certificate (mutual TLS)
    ssl_keyfile: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
        )
        return context

    def options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        out: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            out["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            out["sasl_mechanism"] = self.sasl_mechanism
            out["sasl_plain_username"] = self.sasl_username
            out["sasl_plain_password"] = self.sasl_password
        return out


def connection_of(servers: str | KafkaConnection) -> KafkaConnection:
    """A plain ``host:port,...`` string is a PLAINTEXT connection (tests and the local broker)."""
    return servers if isinstance(servers, KafkaConnection) else KafkaConnection(servers)
