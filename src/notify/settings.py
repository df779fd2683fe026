"""All configuration, read from ``NOTIFY_*`` environment variables (and an optional ``.env`` file).

One object for every process; each composition root builds it once with :func:`load_settings`. Nothing here
runs at import time.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, Discriminator, Field, SecretStr, Tag, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderSettings(BaseModel):
    """A provider gateway reached over HTTP (``type`` "http", the default: docs/providers.md)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["http"] = "http"
    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    timeout_s: float = Field(10.0, gt=0)
    hmac_secret: SecretStr | None = None  # never printed: not in logs, reprs or validation errors


class SmtpProviderSettings(BaseModel):
    """Email over SMTP (``type`` "smtp")."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["smtp"]
    name: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(min_length=3, description="the From address")
    timeout_s: float = Field(10.0, gt=0)
    ca_file: str | None = None
    message_id_domain: str | None = None


class TwilioProviderSettings(BaseModel):
    """SMS through Twilio (``type`` "twilio"): an auth token or an API key; a from-number or a messaging
    service."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["twilio"]
    name: str = Field(min_length=1)
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr | None = None
    api_key_sid: str | None = Field(None, pattern=r"^SK[0-9a-fA-F]{32}$")
    api_key_secret: SecretStr | None = None
    from_number: str | None = Field(None, pattern=r"^\+[1-9][0-9]{6,14}$|^[A-Za-z0-9 ]{1,11}$")
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    status_callback_url: str | None = Field(
        None, description="where Twilio posts delivery receipts: this API's /api/v1/receipts/twilio/<name>"
    )
    base_url: str = "https://api.twilio.com"
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_credential_and_one_sender(self) -> Self:
        with_key = self.api_key_sid is not None and self.api_key_secret is not None
        if (self.auth_token is not None) == with_key or (self.api_key_sid is None) != (
            self.api_key_secret is None
        ):
            raise ValueError("give either auth_token, or api_key_sid with api_key_secret")
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("give either from_number or messaging_service_sid")
        if self.status_callback_url is not None and self.auth_token is None:
            raise ValueError("receipts (status_callback_url) need auth_token: Twilio signs them with it")
        return self


class FcmProviderSettings(BaseModel):
    """Push through Firebase Cloud Messaging HTTP v1 (``type`` "fcm") with a service account key."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["fcm"]
    name: str = Field(min_length=1)
    service_account: SecretStr = Field(
        description="the service account key file's JSON (project_id, client_email, private_key, token_uri)"
    )
    base_url: str = "https://fcm.googleapis.com"
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _a_usable_key(self) -> Self:
        try:
            key = json.loads(self.service_account.get_secret_value())
        except ValueError:
            key = None
        needed = ("project_id", "client_email", "private_key")
        if not isinstance(key, dict) or not all(isinstance(key.get(k), str) and key[k] for k in needed):
            # Never the key itself in the message.
            raise ValueError(
                f"service_account must be a service account key's JSON, with {', '.join(needed)}"
            )
        return self


class ApnsProviderSettings(BaseModel):
    """Push to Apple devices through APNs (``type`` "apns") with token-based authentication."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["apns"]
    name: str = Field(min_length=1)
    team_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    key_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    private_key: SecretStr = Field(description="the .p8 signing key's PEM text")
    topic: str = Field(min_length=1, description="the app's bundle id")
    sandbox: bool = Field(False, description="the development environment (api.sandbox.push.apple.com)")
    base_url: str | None = Field(None, description="instead of Apple's production or sandbox host")
    ca_file: str | None = None
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _a_pem_key(self) -> Self:
        if "PRIVATE KEY-----" not in self.private_key.get_secret_value():
            raise ValueError("private_key must be the .p8 key's PEM text (-----BEGIN PRIVATE KEY-----...)")
        return self


class SesProviderSettings(BaseModel):
    """Email through Amazon SES's v2 API (``type`` "ses"), signed with an access key."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["ses"]
    name: str = Field(min_length=1)
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    access_key_id: str = Field(min_length=16)
    secret_access_key: SecretStr
    session_token: SecretStr | None = None
    sender: str = Field(min_length=3, description="the From address (a verified identity)")
    configuration_set: str | None = None
    endpoint_url: str | None = Field(None, description="instead of https://email.<region>.amazonaws.com")
    timeout_s: float = Field(10.0, gt=0)
    sns_topic_arn: str | None = Field(
        None,
        description="the SNS topic the configuration set publishes events to, subscribed to this API's "
        "/callbacks/ses/<name>: its events become receipts",
    )
    sns_url_pattern: str = Field(
        r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/",
        description="where SNS signing certificates and subscription confirmations may come from (AWS's own)",
    )


AnyProvider = (
    ProviderSettings
    | SmtpProviderSettings
    | SesProviderSettings
    | TwilioProviderSettings
    | FcmProviderSettings
    | ApnsProviderSettings
)


def _provider_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "http"))
    return str(getattr(value, "type", "http"))


AnyProviderSettings = Annotated[
    Annotated[ProviderSettings, Tag("http")]
    | Annotated[SmtpProviderSettings, Tag("smtp")]
    | Annotated[SesProviderSettings, Tag("ses")]
    | Annotated[TwilioProviderSettings, Tag("twilio")]
    | Annotated[FcmProviderSettings, Tag("fcm")]
    | Annotated[ApnsProviderSettings, Tag("apns")],
    Discriminator(_provider_type),
]


class Settings(BaseSettings):
    # Inputs are never echoed in a validation error: a misconfigured provider entry holds its secrets.
    model_config = SettingsConfigDict(
        env_prefix="NOTIFY_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # --- infrastructure ---------------------------------------------------------------------------------
    # A secret: the URL carries the password. Read it with .get_secret_value().
    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/notify"),
        description="PostgreSQL URL (a secret: it carries the password); add ?sslmode=verify-full for TLS",
    )
    database_pool_min: int = Field(2, ge=1, description="connections each process keeps open")
    database_pool_max: int = Field(10, ge=1, description="connections each process may open")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers, comma-separated host:port"
    )
    kafka_topic_prefix: str = Field(
        "notifications", description="topics are PREFIX.high, .normal, .low, .dlq and .status"
    )
    kafka_partitions: int = Field(6, ge=1, description="partitions per topic when notify creates it")
    kafka_replication_factor: int = Field(1, ge=1, description="replicas per topic when notify creates it")
    kafka_consumer_group: str = Field("notify-workers", description="the workers' consumer group")
    # Tansu's fetch long-poll is not woken by new data: latency follows this value (see LOCAL-INFRA.md).
    kafka_fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        description="consumer fetch long-poll; on Tansu latency follows it (it does not wake on new data)",
    )
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1000, description="a worker silent this long leaves the consumer group"
    )
    kafka_heartbeat_interval_ms: int = Field(1_000, ge=100, description="consumer heartbeat interval")
    kafka_linger_ms: int = Field(5, ge=0, description="producer batching delay")
    # A managed cluster: TLS, and SASL with PLAIN or SCRAM (docs/operations.md).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL_* protocol)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (a secret)")
    kafka_ssl_cafile: str | None = Field(
        None, description="CA bundle to verify the brokers (unset: the system's)"
    )
    kafka_ssl_certfile: str | None = Field(None, description="client certificate, for mutual TLS")
    kafka_ssl_keyfile: str | None = Field(None, description="the client certificate's key")

    # --- API --------------------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="address the API listens on (0.0.0.0 in a container)")
    api_port: int = Field(8080, ge=0, le=65535, description="API port (0: any free port)")
    api_processes: int = Field(
        1, ge=1, le=256, description="API processes sharing the port, one per core (`notify api --processes`)"
    )
    # A batch of 1000 emails can be large; single requests are far smaller.
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="largest request body (a batch of 1000); other requests are held to 1 MiB",
    )
    api_key_rate_limit_per_s: float = Field(
        200.0, gt=0, description="default requests/s per API key, by all API processes together"
    )
    api_failed_auth_per_s: float = Field(
        5.0,
        ge=0,
        description="failed authentications per client address and second, 4x that at once (0: off)",
    )
    api_key_cache_s: float = Field(
        5.0, ge=0, description="key lookups are cached; revocation takes this long"
    )
    # Templates are rendered in worker processes, each capped in memory; a render past its time is killed.
    template_workers: int = Field(2, ge=1, description="template worker processes per API process")
    template_render_timeout_s: float = Field(1.0, gt=0, description="a render taking longer is refused")
    template_memory_mib: int = Field(256, ge=64, description="address space of a template worker")
    api_request_timeout_s: float = Field(
        10.0, gt=0, description="a request not answered by then gets 503 (a slow or locked database)"
    )
    max_outbox_backlog: int = Field(
        100_000,
        ge=0,
        description="unpublished outbox records past which new notifications get 503 (0: no limit)",
    )
    # Live status over WebSocket: events queued for one client before it is dropped as too slow.
    ws_client_buffer: int = Field(
        1000, ge=1, description="events queued for one live client before it is dropped as too slow (1013)"
    )
    ws_max_connections_per_key: int = Field(
        16, ge=1, description="live streams one API key may have open at once (429 past it)"
    )
    ws_heartbeat_s: float = Field(
        20.0, gt=0, description="ping interval; a client that stops answering is closed"
    )

    # --- operator console (/console) -------------------------------------------------------------------
    # Signs the console's session cookies. Set the same value on every API replica (a session is then valid
    # on any of them, and survives restarts); unset, each process makes a random one.
    console_secret: SecretStr | None = Field(
        None, description="signs console sessions; the same on every API replica (unset: random per process)"
    )
    console_session_hours: float = Field(12.0, gt=0, description="a console sign-in lasts this long")
    # Jaeger's UI (e.g. http://localhost:16686): a notification's trace id links to <url>/trace/<id>.
    jaeger_ui_url: str | None = Field(
        None, description="Jaeger's UI; the console links each trace id to URL/trace/ID"
    )

    # --- outbox relay (runs inside every API process; safe to run in many) ------------------------------
    outbox_relay_enabled: bool = Field(
        True, description="run the outbox relay in this process (safe in many)"
    )
    outbox_batch_size: int = Field(500, ge=1, description="outbox records the relay publishes per round")
    outbox_poll_interval_s: float = Field(
        0.5, gt=0, description="how often the relay looks for records nobody woke it for"
    )
    outbox_retention_s: float = Field(3600.0, ge=0, description="how long published records are kept")

    # --- worker -----------------------------------------------------------------------------------------
    worker_id: str = Field("", description="names this worker's claims and reports (default host:pid)")
    worker_concurrency: int = Field(128, ge=1, description="deliveries in flight at once")
    worker_concurrency_per_channel: int = Field(
        96, ge=1, description="of those, at most this many for one channel (a slow channel spares the rest)"
    )
    worker_buffer_per_priority: int = Field(
        256, ge=1, description="records fetched ahead per priority before its partitions are paused"
    )
    worker_lease_s: float = Field(60.0, gt=0, description="a claim older than this is recovered")
    worker_shutdown_grace_s: float = Field(
        10.0, ge=0, description="on SIGTERM, how long in-flight deliveries may finish"
    )
    worker_commit_interval_s: float = Field(0.2, gt=0, description="how often consumed offsets are committed")
    recovery_interval_s: float = Field(0.5, gt=0, description="scheduler: due sends, due retries, leases")
    # A pending notification not claimed for this long is re-enqueued (covers records a broker lost).
    stale_pending_s: float = Field(
        120.0,
        gt=0,
        description="a pending notification not claimed this long is enqueued again (a broker lost it)",
    )
    # The worker's own small HTTP port: /health, /health/ready, /metrics (0 = any free port).
    worker_http_host: str = Field("127.0.0.1", description="address of the worker's own HTTP port")
    worker_http_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="the worker's /health, /health/ready and /metrics port (0: any free port)",
    )

    # --- providers --------------------------------------------------------------------------------------
    # The ordered provider list per channel (primary first), as JSON:
    #   {"sms": [{"name": "a", "url": "http://...", "timeout_s": 5, "hmac_secret": "..."}, {...}],
    #    "email": [{"type": "smtp", "name": "relay", "host": "smtp.example.com", "sender": "n@example.com",
    #               "username": "...", "password": "..."}], ...}
    # Each entry has a "type": "http" (the default), "smtp", "ses", "twilio", "fcm" or "apns"
    # (docs/providers.md).
    # A channel left out uses the single provider below.
    providers: dict[str, list[AnyProviderSettings]] = Field(
        default_factory=dict,
        description="each channel's providers in failover order, as JSON (docs/providers.md)",
    )
    provider_name: str = Field(
        "sandbox",
        description="name of the single default provider (when NOTIFY_PROVIDERS leaves a channel out)",
    )
    provider_url: str = Field(
        "http://127.0.0.1:9100/send", description="URL of the single default provider (docs/providers.md)"
    )
    provider_timeout_s: float = Field(10.0, gt=0, description="timeout of the single default provider")
    # A tenant may bring its own providers (PUT /api/v1/providers): kept encrypted with this Fernet key
    # (`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`). Unset:
    # tenants cannot, and every tenant uses the list above.
    provider_credentials_key: SecretStr | None = Field(
        None, description="Fernet key; set, tenants may bring their own providers (stored encrypted)"
    )
    status_history_days: float = Field(
        30.0, gt=0, description="how long each status change of a notification is kept (its timeline)"
    )
    retention_days: float | None = Field(
        None, gt=0, description="notifications in a final status older than this are deleted (unset: kept)"
    )
    retention_days_by_tenant: dict[str, float] = Field(
        default_factory=dict, description='per-tenant retention overriding the default, as JSON: {"acme": 7}'
    )
    tenant_providers_refresh_s: float = Field(
        5.0, gt=0, description="how often workers re-read a tenant's own providers"
    )

    # --- delivery policy --------------------------------------------------------------------------------
    retry_base_s: float = Field(1.0, gt=0, description="first retry waits up to this (full jitter, doubling)")
    retry_cap_s: float = Field(300.0, gt=0, description="no retry waits longer than this")
    retry_after_max_s: float = Field(
        3600.0, gt=0, description="a provider's Retry-After is honoured up to this many seconds"
    )
    max_retries_high: int = Field(5, ge=0, description="retries after the first attempt, high priority")
    max_retries_normal: int = Field(3, ge=0, description="retries after the first attempt, normal priority")
    max_retries_low: int = Field(2, ge=0, description="retries after the first attempt, low priority")
    breaker_fail_max: int = Field(5, ge=1, description="consecutive transient failures that open a breaker")
    breaker_reset_s: float = Field(30.0, gt=0, description="how long a breaker stays open before a trial")
    breaker_half_open_calls: int = Field(1, ge=1, description="trial calls allowed while half-open")
    # Token bucket per channel, messages per second; unset = unlimited.
    rate_limit_sms: float | None = Field(
        None, gt=0, description="SMS sent per second, by all workers together (unset: no limit)"
    )
    rate_limit_email: float | None = Field(
        None, gt=0, description="emails sent per second, by all workers together (unset: no limit)"
    )
    rate_limit_push: float | None = Field(
        None, gt=0, description="pushes sent per second, by all workers together (unset: no limit)"
    )
    rate_limit_scope: Literal["cluster", "process"] = Field(
        "cluster",
        description=(
            "cluster: provider and API-key rates hold for all processes together (buckets in PostgreSQL, "
            "taken in slices); process: a bucket per process (N processes, N times the rate)"
        ),
    )
    rate_limit_slice_s: float = Field(
        0.1,
        gt=0,
        le=1,
        description="cluster limits: seconds' worth of tokens a process takes per trip to PostgreSQL",
    )
    pause_refresh_s: float = Field(0.5, gt=0, description="how often workers re-read pause/resume")

    # --- status webhooks ----------------------------------------------------------------------------------
    # Off in production: endpoints must be https to a public host. `notify dev` turns it on (receivers on
    # loopback or a private network, plain http).
    webhook_allow_private_urls: bool = Field(
        False, description="webhook URLs may be http and on loopback or private hosts (development)"
    )
    webhook_secret_overlap_s: float = Field(
        86_400.0, ge=0, description="after a rotation, the old secret keeps signing this long"
    )
    webhook_max_attempts: int = Field(12, ge=1, description="calls per delivery before it is marked failed")
    webhook_retry_base_s: float = Field(
        5.0, gt=0, description="first webhook retry waits up to this (full jitter, doubling)"
    )
    webhook_retry_cap_s: float = Field(3600.0, gt=0, description="no webhook retry waits longer than this")
    webhook_disable_after_s: float = Field(
        3 * 86_400.0, gt=0, description="an endpoint failing without a success this long is disabled"
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="a webhook receiver must answer within this")
    webhook_lease_s: float = Field(
        30.0, gt=0, description="a delivery held by a worker that died is sent again after this"
    )
    webhook_poll_interval_s: float = Field(
        0.5, gt=0, description="how often workers look for due webhook deliveries"
    )

    # --- sandbox provider -------------------------------------------------------------------------------
    sandbox_host: str = Field("127.0.0.1", description="address of the sandbox provider")
    sandbox_port: int = Field(
        9100, ge=0, le=65535, description="the sandbox provider's port (`notify sandbox`)"
    )

    # --- observability ----------------------------------------------------------------------------------
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(True, description="JSON lines (false: plain text)")
    # OTLP/HTTP collector base URL (Jaeger: http://jaeger:4318); spans go to <url>/v1/traces. Unset: trace
    # context is still created and propagated (ids in logs, traceparent to providers) but nothing is exported.
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector base URL (e.g. http://jaeger:4318); unset: nothing exported"
    )
    trace_sample_ratio: float = Field(1.0, ge=0, le=1, description="share of new traces recorded")
    metrics_refresh_s: float = Field(
        5.0, gt=0, description="how often gauges read from PostgreSQL/Kafka refresh"
    )

    def topic_for_priority(self, priority: str) -> str:
        return f"{self.kafka_topic_prefix}.{priority}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.dlq"

    @property
    def status_topic(self) -> str:
        """Every status transition, for the API processes' WebSocket relays."""
        return f"{self.kafka_topic_prefix}.status"

    @property
    def priority_topics(self) -> list[str]:
        return [self.topic_for_priority(p) for p in ("high", "normal", "low")]

    @property
    def all_topics(self) -> list[str]:
        return [*self.priority_topics, self.dead_letter_topic, self.status_topic]

    @model_validator(mode="after")
    def _a_fernet_key(self) -> Self:
        if self.provider_credentials_key is not None:
            try:
                Fernet(self.provider_credentials_key.get_secret_value())
            except ValueError:
                raise ValueError(
                    "provider_credentials_key must be a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        return self

    def providers_for(self, channel: str) -> list[AnyProvider]:
        return self.providers.get(channel) or [
            ProviderSettings(
                name=self.provider_name, url=self.provider_url, timeout_s=self.provider_timeout_s
            )
        ]

    def delivery_round_s(self) -> float:
        """The longest a delivery round can take: the provider timeouts of the slowest channel, added up
        (a round tries each provider of its channel once)."""
        return max(sum(p.timeout_s for p in self.providers_for(c)) for c in ("sms", "email", "push"))

    @model_validator(mode="after")
    def _lease_outlasts_a_round(self) -> Self:
        # A claim whose lease ran out while its provider call was still running would be recovered and the
        # notification sent a second time by another worker.
        round_s = self.delivery_round_s()
        if self.worker_lease_s <= round_s + 1:
            raise ValueError(
                f"worker_lease_s ({self.worker_lease_s:g}) must be longer than a delivery round, the "
                f"provider timeouts of a channel added up ({round_s:g} s), plus 1 s to store its outcome"
            )
        return self

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_sasl_mechanism, "
                "kafka_sasl_username and kafka_sasl_password"
            )
        return self

    @model_validator(mode="after")
    def _webhook_lease_outlasts_a_call(self) -> Self:
        # A lease that ran out while the call was still running would let another worker send it again.
        if self.webhook_lease_s <= self.webhook_timeout_s + 1:
            raise ValueError(
                f"webhook_lease_s ({self.webhook_lease_s:g}) must be longer than webhook_timeout_s "
                f"({self.webhook_timeout_s:g}) plus 1 s to store the outcome"
            )
        return self

    def rate_limits(self) -> dict[str, float | None]:
        return {"sms": self.rate_limit_sms, "email": self.rate_limit_email, "push": self.rate_limit_push}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and ``.env``) now; keyword overrides win (used by tests and ``notify dev``)."""
    return Settings(**overrides)
