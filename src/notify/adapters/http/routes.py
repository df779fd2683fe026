"""The route table of the API: every route's method, path and handler with its documentation (request
model, query model, answers with their models and examples, errors, summary, tag, operationId). The router
(``app.create_app``) and the OpenAPI document (``openapi.build_openapi``) both read ``ROUTES``; adding an
endpoint is an entry here, its handler and its models.

Long (~670 lines) because it is one table, read top to bottom: one entry per route, grouped by tag.
"""

from __future__ import annotations

from notify.adapters.http import handlers, providers, templates, webhooks
from notify.adapters.http.contract import ETAG, LOCATION, REPLAYED, Body, Operation, Route, Success
from notify.adapters.http.examples import (
    ATTEMPTS,
    BATCH,
    BATCH_CREATED,
    BATCH_PAGE,
    DEAD_LETTER_REPLAY,
    DEAD_LETTERS,
    DELIVERED,
    DELIVERY_STATE,
    EMAIL_IN,
    ERASED,
    FAILED,
    FROM_TEMPLATE_IN,
    HEALTHY,
    LIVE_TOKEN,
    METRICS,
    NOTIFICATION,
    PAGE,
    PUSH_IN,
    READY,
    RECEIPTS,
    RESUMED,
    SMS_IN,
    TEMPLATE,
    TENANT_PROVIDERS,
    TIMELINE,
    WEBHOOK,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY,
    WEBHOOK_LIST,
    WEBHOOK_WITH_SECRET,
)
from notify.adapters.http.responses import (
    AttemptListOut,
    BatchCreatedOut,
    BatchOut,
    DeadLetterReplayOut,
    DeliveryStateOut,
    ErasedOut,
    HealthOut,
    LiveTokenOut,
    MetricsOut,
    NotificationOut,
    PageOut,
    ReadyOut,
    ReceiptListOut,
    TemplateOut,
    TemplatePageOut,
    TenantProvidersOut,
    TimelineOut,
    WebhookAttemptListOut,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookListOut,
    WebhookOut,
    WebhookWithSecretOut,
)
from notify.adapters.http.schemas import (
    BatchIn,
    BatchPageParams,
    ChannelScopeIn,
    DeadLetterParams,
    DeadLetterReplayIn,
    DeliveryParams,
    EraseIn,
    EventsParams,
    ListParams,
    MetricsParams,
    NotificationIn,
    TenantChannelParams,
    TenantProvidersIn,
    TenantProvidersParams,
)
from notify.adapters.http.templates import TemplateIn, TemplateListParams
from notify.adapters.http.webhooks import (
    AttemptsParams,
    DeliveryListParams,
    DeliveryReplayIn,
    WebhookIn,
    WebhookPatchIn,
)
from notify.adapters.telemetry.metrics import metrics_handler

# Every /api/v1 route: no or bad key (401), over the key's rate (429), dependency down or shedding load (503).
_API = frozenset({"Unauthorized", "TooManyRequests", "Unavailable"})
_WITH_ID = _API | {"BadRequest", "NotFound"}  # BadRequest: the {id} is not a UUID
_WITH_BODY = _API | {"BadRequest", "PayloadTooLarge"}


def _notification_routes() -> list[Route]:
    return [
        Route(
            "POST",
            "/api/v1/notifications",
            handlers.create_notification,
            Operation(
                "createNotification",
                "Create a notification",
                "notifications",
                (
                    Success(201, NotificationOut, "Accepted for delivery.", NOTIFICATION, (LOCATION,)),
                    Success(
                        200,
                        NotificationOut,
                        "The same Idempotency-Key and payload were accepted before: the original answer.",
                        NOTIFICATION,
                        (LOCATION, REPLAYED),
                    ),
                ),
                _WITH_BODY | {"Conflict"},
                description=(
                    "Validates every field (sms: E.164 recipient, content up to 1600 characters; email: "
                    "valid address, content up to 100 000 characters; push: token of 1 to 4096 characters, "
                    "content up to 4096 characters) and reports each failing one. `content` may be left out "
                    "when "
                    "`template_id` is given. The same `Idempotency-Key` with a different payload is a 409."
                ),
                body=Body(
                    NotificationIn,
                    {
                        "sms": SMS_IN,
                        "email": EMAIL_IN,
                        "scheduled push": PUSH_IN,
                        "from a template": FROM_TEMPLATE_IN,
                    },
                ),
                idempotency_header=True,
            ),
        ),
        Route(
            "POST",
            "/api/v1/notifications/batch",
            handlers.create_batch,
            Operation(
                "createBatch",
                "Create 1 to 1000 notifications at once",
                "batches",
                (
                    Success(
                        201, BatchCreatedOut, "Every notification was accepted.", BATCH_CREATED, (LOCATION,)
                    ),
                    Success(
                        200,
                        BatchCreatedOut,
                        "The same Idempotency-Key and batch were accepted before: the original answer.",
                        BATCH_CREATED,
                        (LOCATION, REPLAYED),
                    ),
                ),
                _WITH_BODY | {"Conflict"},
                description=(
                    "All or nothing: every item is checked and every failure reported (as "
                    "`notifications[7].recipient`) before anything is stored."
                ),
                body=Body(BatchIn, {"two channels": {"notifications": [SMS_IN, EMAIL_IN]}}),
                idempotency_header=True,
            ),
        ),
        Route(
            "GET",
            "/api/v1/notifications",
            handlers.list_notifications,
            Operation(
                "listNotifications",
                "List notifications",
                "notifications",
                (Success(200, PageOut, "One page, newest first.", PAGE),),
                _API | {"BadRequest"},
                description="Filters combine with AND. `date_from` and `date_to` bound `created_at`.",
                query=ListParams,
            ),
        ),
        Route(
            "GET",
            "/api/v1/notifications/{id}",
            handlers.get_notification,  # "batch" is a sibling route (POST only), not an id: see id_pattern
            Operation(
                "getNotification",
                "Get a notification",
                "notifications",
                (Success(200, NotificationOut, "The notification.", DELIVERED, (ETAG,)),),
                _WITH_ID,
                path_id="notification id",
            ),
            id_pattern=r"(?!batch$)[^{}/]+",
        ),
        Route(
            "PATCH",
            "/api/v1/notifications/{id}/cancel",
            handlers.cancel_notification,
            Operation(
                "cancelNotification",
                "Cancel a notification",
                "notifications",
                (Success(200, NotificationOut, "Cancelled.", {**NOTIFICATION, "status": "cancelled"}),),
                _WITH_ID | {"Conflict"},
                description="Only from pending, scheduled or retrying; any other status is a 409.",
                path_id="notification id",
            ),
        ),
        Route(
            "GET",
            "/api/v1/notifications/{id}/attempts",
            handlers.list_attempts,
            Operation(
                "listAttempts",
                "The delivery attempts of a notification",
                "notifications",
                (
                    Success(
                        200,
                        AttemptListOut,
                        "Every provider call, in order.",
                        ATTEMPTS,
                    ),
                ),
                _WITH_ID,
                path_id="notification id",
            ),
        ),
        Route(
            "GET",
            "/api/v1/notifications/{id}/events",
            handlers.get_timeline,
            Operation(
                "getTimeline",
                "Every status a notification was in",
                "notifications",
                (
                    Success(
                        200, TimelineOut, "Its creation, then each status change, oldest first.", TIMELINE
                    ),
                ),
                _WITH_ID,
                path_id="notification id",
            ),
        ),
        Route(
            "GET",
            "/api/v1/notifications/{id}/receipts",
            handlers.list_receipts,
            Operation(
                "listReceipts",
                "What the provider reported after accepting a notification",
                "notifications",
                (Success(200, ReceiptListOut, "The receipts, oldest first.", RECEIPTS),),
                _WITH_ID,
                description=(
                    "`delivered` as a notification's status means the provider accepted it; a receipt is "
                    "what the provider reports later about the handset or mailbox (Twilio's status "
                    "callback), when it offers one. A receipt never changes the notification's status."
                ),
                path_id="notification id",
            ),
        ),
        Route(
            "POST",
            "/api/v1/notifications/{id}/replay",
            handlers.replay_notification,
            Operation(
                "replayNotification",
                "Re-queue a failed or expired notification",
                "notifications",
                (
                    Success(
                        200,
                        NotificationOut,
                        "Queued again, with fresh retries.",
                        {**FAILED, "status": "pending", "failed_at": None, "error_message": None},
                    ),
                ),
                _WITH_ID | {"Conflict"},
                description=(
                    "Only failed or expired notifications can be replayed; any other status is a 409."
                ),
                path_id="notification id",
            ),
        ),
    ]


def _batch_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/v1/batches/{id}",
            handlers.get_batch,
            Operation(
                "getBatch",
                "Get a batch with its notifications counted per status",
                "batches",
                (Success(200, BatchOut, "The batch.", BATCH, (ETAG,)),),
                _WITH_ID,
                path_id="batch id",
            ),
        ),
        Route(
            "GET",
            "/api/v1/batches/{id}/notifications",
            handlers.list_batch_notifications,
            Operation(
                "listBatchNotifications",
                "List a batch's notifications",
                "batches",
                (Success(200, PageOut, "One page, newest first.", BATCH_PAGE),),
                _WITH_ID,
                query=BatchPageParams,
                path_id="batch id",
            ),
        ),
    ]


def _operations_routes() -> list[Route]:
    replay_body = {
        "dry run for one provider": {"provider": "primary", "dry_run": True},
        "every sms since a date": {"channel": "sms", "date_from": "2025-01-01T00:00:00Z"},
    }
    scope = {
        "one channel (a tenant key: its tenant; an admin key: everyone)": {"channel": "sms"},
        "every channel": {},
        "the global switch, explicitly (admin keys only)": {"scope": "global"},
        "another tenant (admin keys only)": {"tenant_id": "acme", "channel": "email"},
    }
    return [
        Route(
            "POST",
            "/api/v1/recipients/erase",
            handlers.erase_recipient,
            Operation(
                "eraseRecipient",
                "Erase everything kept about a recipient",
                "operations",
                (Success(200, ErasedOut, "Erased; what was removed, counted.", ERASED),),
                _WITH_BODY,
                description="Deletes every notification of your tenant sent to the recipient (as given, "
                "and as each channel stores it: E.164, lower-cased email), whatever its status, with its "
                "attempts, status history, receipts and webhook deliveries. A notification in flight may "
                "still reach the provider once; nothing is kept about it after.",
                body=Body(EraseIn, {"example": {"recipient": "+14155550123"}}),
            ),
        ),
        Route(
            "GET",
            "/api/v1/dead-letters",
            handlers.list_dead_letters,
            Operation(
                "listDeadLetters",
                "List failed notifications",
                "operations",
                (
                    Success(
                        200,
                        PageOut,
                        "One page of failed notifications, newest first.",
                        DEAD_LETTERS,
                    ),
                ),
                _API | {"BadRequest"},
                description="`error` matches a substring of `error_message`.",
                query=DeadLetterParams,
            ),
        ),
        Route(
            "POST",
            "/api/v1/dead-letters/replay",
            handlers.replay_dead_letters,
            Operation(
                "replayDeadLetters",
                "Re-queue every failed notification a filter matches",
                "operations",
                (
                    Success(
                        200,
                        DeadLetterReplayOut,
                        "How many matched, and how many were re-queued.",
                        DEAD_LETTER_REPLAY,
                    ),
                ),
                _WITH_BODY,
                description="No body (or `{}`) matches every failed notification of the API key's tenant.",
                body=Body(
                    DeadLetterReplayIn, replay_body, required=False, description="A filter; none: every one."
                ),
            ),
        ),
        Route(
            "GET",
            "/api/v1/delivery",
            handlers.get_delivery,
            Operation(
                "getDelivery",
                "Whether delivery is paused",
                "operations",
                (Success(200, DeliveryStateOut, "The delivery state every worker honours.", DELIVERY_STATE),),
                _API | {"BadRequest", "Forbidden"},
                description="The API key's tenant; an admin key may ask for another with `tenant_id`.",
                query=DeliveryParams,
            ),
        ),
        Route(
            "POST",
            "/api/v1/delivery/pause",
            handlers.pause_delivery,
            Operation(
                "pauseDelivery",
                "Pause delivery of one channel, or of all",
                "operations",
                (Success(200, DeliveryStateOut, "The delivery state after the pause.", DELIVERY_STATE),),
                _WITH_BODY | {"Forbidden"},
                description=(
                    "Workers stop claiming the scope's notifications; they wait as `pending` (never failed "
                    "or "
                    "expired early) until resumed. A tenant key pauses its own tenant's traffic; the global "
                    "switch (every tenant) and another tenant need an admin key (403 otherwise)."
                ),
                body=Body(ChannelScopeIn, scope, required=False, description="Which channel, whose traffic."),
            ),
        ),
        Route(
            "GET",
            "/api/v1/metrics",
            handlers.get_metrics,
            Operation(
                "getMetrics",
                "Delivery metrics per channel",
                "operations",
                (
                    Success(
                        200, MetricsOut, "The API key's tenant's metrics, every channel present.", METRICS
                    ),
                ),
                _API | {"BadRequest"},
                description=(
                    "Per channel: notifications delivered and failed in the window, the mean and 95th "
                    "percentile "
                    "latency of the delivered ones, the success rate, and the queue depth now. Outcomes are "
                    "counted per minute as they happen (no scan of the notifications), so the window is "
                    "rounded "
                    "to whole minutes: it starts at `since`, the minute at or before now - `window_s`."
                ),
                query=MetricsParams,
            ),
        ),
        Route(
            "POST",
            "/api/v1/delivery/resume",
            handlers.resume_delivery,
            Operation(
                "resumeDelivery",
                "Resume delivery of one channel, or of all",
                "operations",
                (
                    Success(
                        200,
                        DeliveryStateOut,
                        "The delivery state after resuming.",
                        RESUMED,
                    ),
                ),
                _WITH_BODY | {"Forbidden"},
                body=Body(ChannelScopeIn, scope, required=False, description="Which channel, whose traffic."),
            ),
        ),
    ]


_PROMETHEUS_EXAMPLE = """# HELP notify_notifications_accepted_total Notifications accepted (stored)
# TYPE notify_notifications_accepted_total counter
notify_notifications_accepted_total{channel="sms",priority="high"} 42.0
"""


def _observability_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/metrics",
            metrics_handler,
            Operation(
                "prometheusMetrics",
                "Prometheus metrics of this process",
                "health",
                (
                    Success(
                        200,
                        None,
                        "Prometheus text exposition format. The worker serves the same on its own port.",
                        None,
                        content={
                            "text/plain": {"schema": {"type": "string"}, "example": _PROMETHEUS_EXAMPLE}
                        },
                    ),
                ),
                frozenset(),
                open=True,
                description=(
                    "HTTP requests and latency by route and status, notifications accepted by channel and "
                    "priority, outbox backlog, WebSocket clients; on the worker also deliveries by channel, "
                    "provider and outcome, accepted-to-delivered latency, attempts, retries, breaker states, "
                    "rate-limiter waits and consumer lag."
                ),
            ),
        ),
        Route(
            "GET",
            "/ws",
            handlers.websocket,
            Operation(
                "liveStatus",
                "Live status events (WebSocket)",
                "notifications",
                (
                    Success(
                        101,
                        None,
                        'Switching to the WebSocket protocol. Send `{"action": "subscribe", '
                        '"notification_ids": [...], "batch_ids": [...], "channels": [...]}` to narrow '
                        "what you receive (each subscribe replaces the last; without one, every event of "
                        "your "
                        'tenant). Each event is one text frame: `{"notification_id", "batch_id", '
                        '"channel", "priority", "status", "previous_status", "attempt", "error", '
                        '"provider", "next_attempt_at", "timestamp"}` (`next_attempt_at` on `retrying` '
                        "events). With `?tenants=all` (admin keys only, 403 otherwise) every tenant's "
                        "events, each with its `tenant_id`. "
                        "A client that falls more than the buffer behind is closed with code 1013.",
                        None,
                    ),
                ),
                frozenset({"Unauthorized", "BadRequest", "Forbidden", "TooManyRequests", "Unavailable"}),
                description=(
                    "Authenticate with `Authorization: Bearer <key>`, or, where a client cannot set headers "
                    "(browsers), with `?token=` from `POST /api/v1/live/tokens`: an API key is never "
                    "accepted in "
                    "a URL (400). A key has a bounded number of streams open at once (429 past it); the "
                    "stream "
                    "of a revoked key is closed with 1008. A request that is not a WebSocket upgrade is a "
                    "400."
                ),
            ),
        ),
        Route(
            "GET",
            "/api/v1/events",
            handlers.events_stream,
            Operation(
                "streamEvents",
                "Status events as Server-Sent Events, resumable",
                "notifications",
                (
                    Success(
                        200,
                        None,
                        "`text/event-stream`: one `event: status` per status change (`id:` its event "
                        "id, `data:` the same JSON as a WebSocket event), a comment line every 15 s. "
                        "With `since` (or the `Last-Event-ID` header a browser's EventSource sends when "
                        "it reconnects), the stored events after that id come first (kept "
                        "NOTIFY_STATUS_HISTORY_DAYS), then live ones, none twice.",
                        None,
                        content={
                            "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
                        },
                    ),
                ),
                _API | {"BadRequest", "Forbidden"},
                query=EventsParams,
            ),
        ),
        Route(
            "POST",
            "/api/v1/live/tokens",
            handlers.create_live_token,
            Operation(
                "createLiveToken",
                "A single-use token for the WebSocket",
                "notifications",
                (
                    Success(
                        201,
                        LiveTokenOut,
                        "A token valid for one connection within a minute.",
                        LIVE_TOKEN,
                    ),
                ),
                _API,
                description=(
                    "For browsers, which cannot set headers on a WebSocket: ask for a token with the API key "
                    "(from your server, or a same-origin page), then open `/ws?token=...`. The token is "
                    "usable "
                    "once, within a minute, and the stream acts for the key that asked for it."
                ),
            ),
        ),
    ]


def _health_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/health",
            handlers.health,
            Operation(
                "health",
                "Liveness",
                "health",
                (Success(200, HealthOut, "The process is up.", HEALTHY),),
                frozenset(),
                open=True,
            ),
        ),
        Route(
            "GET",
            "/health/ready",
            handlers.ready,
            Operation(
                "ready",
                "Readiness: able to accept notifications",
                "health",
                (
                    Success(
                        200,
                        ReadyOut,
                        "Ready to serve.",
                        READY,
                    ),
                ),
                frozenset({"NotReady"}),
                open=True,
            ),
        ),
    ]


def _template_routes() -> list[Route]:
    template_body = {
        "email": {
            "name": "welcome",
            "channel": "email",
            "subject": "Welcome, {{ name }}",
            "body": "Hello {{ name }}, your account is ready.",
        },
        "sms": {"name": "otp", "channel": "sms", "body": "Your code is {{ code }}"},
    }
    return [
        Route(
            "POST",
            "/api/v1/templates",
            templates.create_template,
            Operation(
                "createTemplate",
                "Create a template",
                "templates",
                (Success(201, TemplateOut, "Created.", TEMPLATE, (LOCATION,)),),
                _WITH_BODY | {"Conflict"},
                description=(
                    "The body (and the subject, for email) are Jinja2, rendered in a sandbox when a "
                    "notification "
                    "names the template; a variable the notification does not give is a 400 then. Syntax "
                    "errors "
                    "are a 400 here. A name already taken by another template of the tenant is a 409."
                ),
                body=Body(TemplateIn, template_body),
            ),
        ),
        Route(
            "GET",
            "/api/v1/templates",
            templates.list_templates,
            Operation(
                "listTemplates",
                "List templates",
                "templates",
                (Success(200, TemplatePageOut, "One page.", {"data": [TEMPLATE], "next_cursor": None}),),
                _API | {"BadRequest"},
                query=TemplateListParams,
            ),
        ),
        Route(
            "GET",
            "/api/v1/templates/{id}",
            templates.get_template,
            Operation(
                "getTemplate",
                "Get a template",
                "templates",
                (Success(200, TemplateOut, "The template.", TEMPLATE, (ETAG,)),),
                _WITH_ID,
                path_id="template id",
            ),
        ),
        Route(
            "PUT",
            "/api/v1/templates/{id}",
            templates.replace_template,
            Operation(
                "replaceTemplate",
                "Replace a template",
                "templates",
                (
                    Success(
                        200,
                        TemplateOut,
                        "Replaced.",
                        {**TEMPLATE, "updated_at": "2025-01-16T08:00:00.000000Z"},
                    ),
                ),
                _WITH_ID | {"Conflict", "PayloadTooLarge"},
                description=(
                    "Replaces every field: a subject left out is removed. Notifications accepted before keep "
                    "what the template rendered to then."
                ),
                body=Body(TemplateIn, template_body),
                path_id="template id",
            ),
        ),
        Route(
            "DELETE",
            "/api/v1/templates/{id}",
            templates.delete_template,
            Operation(
                "deleteTemplate",
                "Delete a template",
                "templates",
                (Success(204, None, "Deleted.", None),),
                _WITH_ID,
                description="Notifications already accepted from it are not affected.",
                path_id="template id",
            ),
        ),
    ]


def _provider_routes() -> list[Route]:
    twilio = {
        "channel": "sms",
        "providers": [
            {
                "type": "twilio",
                "name": "our-twilio",
                "account_sid": "AC" + "0123456789abcdef" * 2,
                "auth_token": "…",
                "messaging_service_sid": "MG" + "0123456789abcdef" * 2,
            }
        ],
    }
    return [
        Route(
            "PUT",
            "/api/v1/providers",
            providers.put_providers,
            Operation(
                "putTenantProviders",
                "Use the tenant's own providers for a channel",
                "providers",
                (Success(200, TenantProvidersOut, "The tenant's own providers now.", TENANT_PROVIDERS),),
                _WITH_BODY | {"Forbidden"},
                description=(
                    "The entries are those of `NOTIFY_PROVIDERS` (docs/providers.md), in failover order, and "
                    "replace the operator's providers for this tenant and channel. They are stored encrypted "
                    "and never sent back. A 403 when the server keeps no tenant credentials "
                    "(`NOTIFY_PROVIDER_CREDENTIALS_KEY` unset), or for another tenant without an admin key."
                ),
                body=Body(TenantProvidersIn, {"twilio for sms": twilio}),
            ),
        ),
        Route(
            "GET",
            "/api/v1/providers",
            providers.get_providers,
            Operation(
                "getTenantProviders",
                "The tenant's own providers per channel",
                "providers",
                (
                    Success(
                        200, TenantProvidersOut, "Each channel's own providers, or null.", TENANT_PROVIDERS
                    ),
                ),
                _API | {"BadRequest", "Forbidden"},
                query=TenantProvidersParams,
            ),
        ),
        Route(
            "DELETE",
            "/api/v1/providers",
            providers.delete_providers,
            Operation(
                "deleteTenantProviders",
                "Go back to the operator's providers for a channel",
                "providers",
                (Success(204, None, "The operator's providers apply again.", None),),
                _API | {"BadRequest", "Forbidden", "NotFound"},
                query=TenantChannelParams,
            ),
        ),
    ]


_SSE_EXAMPLE = (
    "id: 88231\nevent: status\ndata: "
    '{"event_id":88231,"notification_id":"01943a6e-5b1c-7d2e-9f30-4a5b6c7d8e9f","batch_id":null,'
    '"channel":"sms","priority":"high","status":"delivered","previous_status":"processing","attempt":1,'
    '"error":null,"provider":"primary","next_attempt_at":null,"timestamp":"2025-01-15T10:30:00.412000Z"}\n\n'
    ": keep-alive\n\n"
)


def _webhook_routes() -> list[Route]:
    create = {"url": "https://example.com/hooks/notify", "statuses": ["delivered", "failed"]}
    signed = (
        "Each status change the endpoint wants is sent as `POST <url>` with the JSON body "
        '`{"type": "notification.<status>", "timestamp", "data": <the status event, with its event_id>}` '
        "and the Standard Webhooks headers `webhook-id` (the same on every retry), `webhook-timestamp` and "
        "`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`). Any 2xx is a success; "
        "anything else is retried with backoff, and an endpoint failing for "
        "`NOTIFY_WEBHOOK_DISABLE_AFTER_S` is disabled (see `disabled_reason`)."
    )
    return [
        Route(
            "POST",
            "/api/v1/webhooks",
            webhooks.create_webhook,
            Operation(
                "createWebhook",
                "Register a webhook endpoint",
                "webhooks",
                (
                    Success(
                        201,
                        WebhookWithSecretOut,
                        "Created; the secret is shown this once.",
                        WEBHOOK_WITH_SECRET,
                        (LOCATION,),
                    ),
                ),
                _WITH_BODY,
                description=signed + " The URL must be https to a public host (unless the server allows "
                "private URLs, as `notify dev` does).",
                body=Body(WebhookIn, {"example": create}),
            ),
        ),
        Route(
            "GET",
            "/api/v1/webhooks",
            webhooks.list_webhooks,
            Operation(
                "listWebhooks",
                "List webhook endpoints",
                "webhooks",
                (Success(200, WebhookListOut, "Every endpoint of the tenant.", WEBHOOK_LIST),),
                _API,
            ),
        ),
        Route(
            "GET",
            "/api/v1/webhooks/{id}",
            webhooks.get_webhook,
            Operation(
                "getWebhook",
                "Get a webhook endpoint",
                "webhooks",
                (Success(200, WebhookOut, "The endpoint (never its secret).", WEBHOOK, (ETAG,)),),
                _WITH_ID,
                path_id="webhook id",
            ),
        ),
        Route(
            "PATCH",
            "/api/v1/webhooks/{id}",
            webhooks.update_webhook,
            Operation(
                "updateWebhook",
                "Change a webhook endpoint",
                "webhooks",
                (Success(200, WebhookOut, "Changed.", WEBHOOK),),
                _WITH_ID | {"PayloadTooLarge"},
                description="Fields left out stay. `enabled: true` re-enables an endpoint notify disabled; "
                "what waited meanwhile is delivered then.",
                body=Body(WebhookPatchIn, {"example": {"enabled": True}}),
                path_id="webhook id",
            ),
        ),
        Route(
            "DELETE",
            "/api/v1/webhooks/{id}",
            webhooks.delete_webhook,
            Operation(
                "deleteWebhook",
                "Delete a webhook endpoint",
                "webhooks",
                (Success(204, None, "Deleted, with its deliveries.", None),),
                _WITH_ID,
                path_id="webhook id",
            ),
        ),
        Route(
            "POST",
            "/api/v1/webhooks/{id}/rotate-secret",
            webhooks.rotate_webhook_secret,
            Operation(
                "rotateWebhookSecret",
                "Rotate a webhook endpoint's secret",
                "webhooks",
                (
                    Success(
                        200, WebhookWithSecretOut, "The new secret, shown this once.", WEBHOOK_WITH_SECRET
                    ),
                ),
                _WITH_ID,
                description="Deliveries carry a signature by the new secret and, until "
                "`previous_secret_valid_until` (`NOTIFY_WEBHOOK_SECRET_OVERLAP_S`), one by the old: "
                "update your receiver meanwhile.",
                path_id="webhook id",
            ),
        ),
        Route(
            "GET",
            "/api/v1/webhooks/{id}/deliveries",
            webhooks.list_webhook_deliveries,
            Operation(
                "listWebhookDeliveries",
                "A webhook endpoint's delivery log",
                "webhooks",
                (Success(200, WebhookDeliveryPageOut, "One page, newest first.", WEBHOOK_DELIVERIES),),
                _WITH_ID,
                query=DeliveryListParams,
                path_id="webhook id",
            ),
        ),
        Route(
            "GET",
            "/api/v1/webhooks/{id}/attempts",
            webhooks.list_webhook_attempts,
            Operation(
                "listWebhookAttempts",
                "Every call made for one delivery",
                "webhooks",
                (Success(200, WebhookAttemptListOut, "Oldest first.", WEBHOOK_ATTEMPTS),),
                _WITH_ID,
                query=AttemptsParams,
                path_id="webhook id",
            ),
        ),
        Route(
            "POST",
            "/api/v1/webhooks/{id}/deliveries/replay",
            webhooks.replay_webhook_delivery,
            Operation(
                "replayWebhookDelivery",
                "Send one delivery again",
                "webhooks",
                (
                    Success(
                        202,
                        WebhookDeliveryOut,
                        "Queued; a worker sends it shortly (same webhook-id).",
                        WEBHOOK_DELIVERY,
                    ),
                ),
                _WITH_ID | {"PayloadTooLarge"},
                body=Body(DeliveryReplayIn, {"example": {"delivery_id": 1042}}),
                path_id="webhook id",
            ),
        ),
    ]


ROUTES: tuple[Route, ...] = (
    *_health_routes(),
    *_observability_routes(),
    *_notification_routes(),
    *_batch_routes(),
    *_operations_routes(),
    *_template_routes(),
    *_provider_routes(),
    *_webhook_routes(),
)
