"""Managed Kafka: TLS and SASL (PLAIN, SCRAM) settings reach every Kafka client notify builds. The local
broker (Tansu) speaks neither, so these are proven by building the clients' configuration: the same objects
`notify api` and `notify worker` connect with."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from notify.adapters.kafka.publisher import make_producer
from notify.adapters.kafka.queue import make_probe
from notify.adapters.kafka.status import make_status_consumer
from notify.bootstrap import kafka_connection, make_group_consumer
from notify.settings import Settings, load_settings


def managed(tmp_path: Path, **overrides: str) -> Settings:
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return load_settings(
        kafka_bootstrap_servers="b-1.kafka.example.com:9096,b-2.kafka.example.com:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="notify",
        kafka_sasl_password="s3cret-scram",
        kafka_ssl_cafile=str(cafile),
        **overrides,
    )


def client_settings(client: AIOKafkaProducer | AIOKafkaConsumer) -> tuple[object, ...]:
    # The connection settings every aiokafka client keeps (public on a producer, private on a consumer).
    c = client.client if isinstance(client, AIOKafkaProducer) else client._client
    return (
        c._bootstrap_servers,
        c._security_protocol,
        c._sasl_mechanism,
        c._sasl_plain_username,
        c._ssl_context,
    )


async def test_sasl_scram_over_tls_reaches_every_client(tmp_path: Path) -> None:
    settings = managed(tmp_path)
    options = kafka_connection(settings).options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("notify", "s3cret-scram")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True

    connection = kafka_connection(settings)
    clients = [
        make_producer(connection, linger_ms=5),
        make_group_consumer(settings),
        make_status_consumer(connection, fetch_max_wait_ms=20),
        make_probe(connection, settings.kafka_consumer_group),
    ]
    seen = {client_settings(c)[:4] for c in clients}
    assert seen == {
        (settings.kafka_bootstrap_servers, "SASL_SSL", "SCRAM-SHA-512", "notify"),
    }
    assert all(client_settings(c)[4] is not None for c in clients)
    assert "s3cret-scram" not in repr(settings)  # the password is a secret
    for c in clients:
        await c.stop()  # never started: nothing to close but the object


def test_plaintext_stays_the_default_and_tls_alone_needs_no_sasl(tmp_path: Path) -> None:
    assert kafka_connection(load_settings()).options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    tls = kafka_connection(load_settings(kafka_security_protocol="SSL")).options()
    assert tls["security_protocol"] == "SSL" and "sasl_mechanism" not in tls
    assert isinstance(tls["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize("missing", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_its_credentials_is_refused_at_start(missing: str) -> None:
    given = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_sasl_username": "u",
        "kafka_sasl_password": "p",
    }
    del given[missing]
    with pytest.raises(ValidationError, match="needs kafka_sasl_mechanism"):
        load_settings(**given)
