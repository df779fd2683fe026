"""What the API's handlers and middleware find on the application and on each request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from notify.adapters.http.auth import FailedAuthLimiter, KeyLimiter
from notify.adapters.http.live import LiveEndpoint
from notify.app.auth import Authenticator
from notify.app.notifications import NotificationService
from notify.app.operations import Operations
from notify.app.receipts import ReceiptService
from notify.app.retention import RetentionService
from notify.app.stats import StatsService
from notify.app.templates import TemplateService
from notify.app.tenant_providers import TenantProviders
from notify.app.webhooks import WebhookService

ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class ApiServices:
    notifications: NotificationService
    operations: Operations
    authenticator: Authenticator
    key_limiter: KeyLimiter
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Reported by /health/ready, but not making the process unready.
    informational: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    failed_auth: FailedAuthLimiter = field(default_factory=FailedAuthLimiter)


SERVICES = web.AppKey("services", ApiServices)
LIVE = web.AppKey("live", LiveEndpoint)
TEMPLATES = web.AppKey("templates", TemplateService)
STATS = web.AppKey("stats", StatsService)
RECEIPTS = web.AppKey("receipts", ReceiptService)
TENANT_PROVIDERS = web.AppKey("tenant_providers", TenantProviders)
WEBHOOKS = web.AppKey("webhooks", WebhookService)
RETENTION = web.AppKey("retention", RetentionService)
ROUND_BUDGET_S = web.AppKey("round_budget_s", float)  # a tenant's providers must fit in a delivery round
CORRELATION = web.RequestKey("correlation_id", str)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)  # NOTIFY_MAX_BODY_BYTES: a batch's limit


def services(request: web.Request) -> ApiServices:
    return request.config_dict[SERVICES]
