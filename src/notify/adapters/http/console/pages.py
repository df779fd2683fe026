"""The console's pages: server-rendered HTML over the same application services the API calls, so every
button obeys the API's rules (who may pause what, what may be replayed or cancelled)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode
from uuid import UUID

import jinja2
from aiohttp import web

from notify.adapters.http.auth import API_KEY
from notify.adapters.http.console.forms import (
    ActivityFilter,
    DeadLetterFilter,
    DeadLetterReplay,
    KeyForm,
    PauseForm,
    PreviewIn,
    SignInForm,
    TemplateForm,
    TenantView,
    form_of,
    query_of,
)
from notify.adapters.http.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionCookies,
    csrf_ok,
    same_origin,
)
from notify.adapters.http.errors import status_of
from notify.adapters.http.responses import NotificationOut
from notify.adapters.http.state import RECEIPTS, TEMPLATES, services
from notify.app.auth import KeyService
from notify.app.operations import PauseScope
from notify.app.overview import OverviewService
from notify.domain.errors import Forbidden, NotFound, NotifyError, Unauthorized, ValidationFailed
from notify.domain.keys import hash_secret, looks_like_key
from notify.domain.model import REPLAYABLE, Channel, Status, can_transition
from notify.domain.queries import DeadLetterQuery, ListQuery
from notify.ports.clock import Clock

PREFIX = "/console"
STATIC = "console-static"
FEED_PAGE = 50
REPLAY_CHUNK = 1000
REPLAY_PER_CLICK = 10_000  # a filter matching more is worked through in several clicks


@dataclass
class Console:
    cookies: SessionCookies
    overview: OverviewService
    keys: KeyService
    clock: Clock
    jaeger_ui_url: str | None = None


CONSOLE = web.AppKey("console", Console)

# Outcomes of an action, shown on the page the browser is sent back to (a code, never text from the URL).
NOTICES = {
    "cancelled": "Cancelled: it will not be sent.",
    "replayed": "Replayed: it is queued again.",
    "paused": "Paused.",
    "resumed": "Resumed.",
    "saved": "Template saved.",
    "deleted": "Template deleted.",
    "revoked": "Key revoked: it stops working within seconds.",
    "signed-out": "Signed out.",
}


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("notify.adapters.http.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson_attr"] = lambda value: json.dumps(value, separators=(",", ":"))
    return env


_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


R = TypeVar("R", bound=web.StreamResponse)


def _secure_headers(response: R) -> R:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def console(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


def render(
    request: web.Request, session: Session | None, name: str, status: int = 200, **context: Any
) -> web.Response:
    key = session.key if session else None
    notice = NOTICES.get(request.query.get("done", ""))
    html = (
        _templates()
        .get_template(name)
        .render(
            key=key,
            is_admin=bool(key and key.is_admin),
            csrf=session.csrf if session else "",
            csrf_field=CSRF_FIELD,
            path=request.path,
            notice=notice,
            count=request.query.get("n", ""),
            prefix=PREFIX,
            asset=lambda name: _asset(request, name),
            **{"nav": "", **context},
        )
    )
    return _secure_headers(web.Response(text=html, status=status, content_type="text/html"))


def _asset(request: web.Request, name: str) -> str:
    # ?v=<hash of the file>: a browser caches an asset until it changes.
    resource = request.app.router[STATIC]
    assert isinstance(resource, web.StaticResource)
    return str(resource.url_for(filename=name, append_version=True))


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location, headers={"Cache-Control": "no-store"})


def with_query(path: str, **params: Any) -> str:
    present = {k: str(v) for k, v in params.items() if v not in (None, "", False)}
    return f"{path}?{urlencode(present)}" if present else path


# --- sessions and the wrapper every page goes through ---------------------------------------------------


async def _session(request: web.Request) -> Session | None:
    found = console(request).cookies.read(request)
    if found is None:
        return None
    key = await services(request).authenticator.by_hash(found[0])
    if key is None or not key.active:
        return None
    return Session(key, found[1])


Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def page(
    handler: Page, *, write: bool = False, admin: bool = False
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Signed in (else to the sign-in page), CSRF-checked for a write, admin-only where asked; the API's
    errors become a page saying what went wrong, with the API's status code."""

    async def serve(request: web.Request) -> web.StreamResponse:
        session = await _session(request)
        if session is None:
            if request.method == "GET" and not request.path.endswith((".json", "/figures")):
                raise redirect(with_query(f"{PREFIX}/sign-in", next=request.path_qs))
            return render(request, None, "error.html", 401, message="Your session has ended: sign in again.")
        request[API_KEY] = session.key  # the key the request acts with, as on the API (logs, metrics)
        try:
            if write:
                presented = request.headers.get(CSRF_HEADER)
                if presented is None and request.content_type != "application/json":
                    presented = str((await request.post()).get(CSRF_FIELD, "")) or None
                if not same_origin(request) or not csrf_ok(session, presented):
                    raise Forbidden("This form is out of date or came from another site: reload the page.")
            if admin and not session.key.is_admin:
                raise Forbidden("This page needs an admin API key.")
            await services(request).key_limiter.admit(session.key)
            return await handler(request, session)
        except NotifyError as exc:
            status = status_of(exc)
            if status is None or status >= 500:
                raise
            details = exc.details if isinstance(exc, ValidationFailed) else []
            return render(request, session, "error.html", status, message=exc.message, details=details)

    return serve


def viewing(request: web.Request, session: Session, chosen: str | None) -> str | None:
    """Whose rows a page shows: a tenant key always its own; an admin key the tenant it chose, or every
    tenant's (None)."""
    if not session.key.is_admin:
        return session.key.tenant_id
    return chosen


def acting_for(session: Session, chosen: str | None) -> str:
    """The one tenant an action or a per-tenant page is for (an admin's choice, else its own tenant)."""
    if session.key.is_admin and chosen:
        return chosen
    return session.key.tenant_id


async def _tenant_choices(request: web.Request, session: Session) -> list[str]:
    return await console(request).overview.tenants() if session.key.is_admin else []


# --- sign-in ------------------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only a path of the console itself: never another site (an open redirect).
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/activity"


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if await _session(request) is not None:
        raise redirect(_safe_next(request.query.get("next")))
    return render(request, None, "sign_in.html", next=request.query.get("next", ""), error=None)


async def sign_in(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    peer = request.remote or "unknown"
    try:
        svc.failed_auth.check(peer)
        if not same_origin(request):
            raise Forbidden("Sign in from the console's own page.")
        form = await form_of(request, SignInForm)
        secret = form.key.strip()
        key = await svc.authenticator.by_hash(hash_secret(secret)) if looks_like_key(secret) else None
        if key is None or not key.active:
            svc.failed_auth.failed(peer)
            raise Unauthorized("That API key is unknown or revoked.")
    except NotifyError as exc:
        status = status_of(exc) or 400
        return render(
            request, None, "sign_in.html", status, next=request.query.get("next", ""), error=exc.message
        )
    response = redirect(_safe_next(form.next))
    console(request).cookies.issue(response, request, key)
    raise response


async def sign_out(request: web.Request, session: Session) -> web.StreamResponse:
    response = redirect(with_query(f"{PREFIX}/sign-in", done="signed-out"))
    console(request).cookies.clear(response)
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    raise redirect(f"{PREFIX}/activity")


# --- activity -----------------------------------------------------------------------------------------------


async def activity(request: web.Request, session: Session) -> web.StreamResponse:
    wanted = query_of(request, ActivityFilter)
    tenant = viewing(request, session, wanted.tenant)
    page_ = await services(request).notifications.list(
        ListQuery(
            tenant_id=tenant,
            status=wanted.status,
            channel=wanted.channel,
            priority=wanted.priority,
            batch_id=wanted.batch,
            page_size=FEED_PAGE,
        )
    )
    figures = await console(request).overview.activity(tenant)
    return render(
        request,
        session,
        "activity.html",
        nav="activity",
        rows=page_.items,
        figures=figures,
        wanted=wanted,
        tenant=tenant,
        tenants=await _tenant_choices(request, session),
        channels=list(Channel),
        statuses=list(Status),
        feed_filter={
            "tenant": tenant or "",
            "channel": wanted.channel.value if wanted.channel else "",
            "status": wanted.status.value if wanted.status else "",
            "priority": wanted.priority.value if wanted.priority else "",
            "batch": str(wanted.batch) if wanted.batch else "",
        },
    )


async def activity_figures(request: web.Request, session: Session) -> web.StreamResponse:
    """The figures block alone: the page refreshes it every few seconds."""
    tenant = viewing(request, session, query_of(request, TenantView).tenant)
    figures = await console(request).overview.activity(tenant)
    return render(request, session, "_figures.html", figures=figures, statuses=list(Status))


async def live_token(request: web.Request, session: Session) -> web.StreamResponse:
    """A single-use token for the page's WebSocket (an admin's stream carries every tenant; the page
    narrows it to the tenant chosen)."""
    token, _ = await services(request).authenticator.issue_live_token(session.key)
    url = with_query("/ws", token=token, tenants="all" if session.key.is_admin else None)
    return _secure_headers(web.json_response({"url": url}))


# --- one notification ---------------------------------------------------------------------------------------


def _notification_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("There is no such notification.") from None


async def notification(request: web.Request, session: Session) -> web.StreamResponse:
    tenant = acting_for(session, query_of(request, TenantView).tenant)
    nid = _notification_id(request)
    svc = services(request)
    found = await svc.notifications.get(tenant, nid)
    fields = NotificationOut.of(found).model_dump(mode="json", by_alias=True)
    jaeger = console(request).jaeger_ui_url
    trace_id = fields["trace_id"]
    return render(
        request,
        session,
        "notification.html",
        nav="activity",
        n=found,
        fields=fields,
        timeline=await svc.operations.timeline(tenant, nid),
        attempts=await svc.operations.attempts(tenant, nid),
        receipts=await request.config_dict[RECEIPTS].of(tenant, nid),
        trace_url=f"{jaeger.rstrip('/')}/trace/{trace_id}" if jaeger and trace_id else None,
        can_cancel=can_transition(found.status, Status.CANCELLED),
        can_replay=found.status in REPLAYABLE,
        tenant=tenant,
    )


async def cancel(request: web.Request, session: Session) -> web.StreamResponse:
    tenant = acting_for(session, (await form_of(request, TenantView)).tenant)
    nid = _notification_id(request)
    await services(request).notifications.cancel(tenant, nid)
    raise redirect(with_query(f"{PREFIX}/notifications/{nid}", tenant=tenant, done="cancelled"))


async def replay(request: web.Request, session: Session) -> web.StreamResponse:
    tenant = acting_for(session, (await form_of(request, TenantView)).tenant)
    nid = _notification_id(request)
    await services(request).operations.replay(tenant, nid)
    raise redirect(with_query(f"{PREFIX}/notifications/{nid}", tenant=tenant, done="replayed"))


# --- dead letters -------------------------------------------------------------------------------------------


def _dead_letter_query(
    request: web.Request, session: Session, wanted: DeadLetterFilter, page_size: int = FEED_PAGE
) -> DeadLetterQuery:
    now = console(request).clock.now()
    return DeadLetterQuery(
        tenant_id=viewing(request, session, wanted.tenant),
        channel=wanted.channel,
        provider=wanted.provider,
        error_contains=wanted.error,
        date_from=now - wanted.within.span if wanted.within else None,
        page_size=page_size,
    )


def _filter_params(wanted: DeadLetterFilter) -> dict[str, Any]:
    return {
        "tenant": wanted.tenant,
        "channel": wanted.channel.value if wanted.channel else None,
        "provider": wanted.provider,
        "error": wanted.error,
        "within": wanted.within.value if wanted.within else None,
    }


async def dead_letters(request: web.Request, session: Session) -> web.StreamResponse:
    wanted = query_of(request, DeadLetterFilter)
    q = _dead_letter_query(request, session, wanted)
    ops = services(request).operations
    found = await ops.dead_letters(q)
    matched = (await ops.replay_dead_letters(q, dry_run=True, limit=1)).matched
    return render(
        request,
        session,
        "dead_letters.html",
        nav="dead-letters",
        rows=found.items,
        matched=matched,
        wanted=wanted,
        params=_filter_params(wanted),
        tenants=await _tenant_choices(request, session),
        channels=list(Channel),
        per_click=REPLAY_PER_CLICK,
    )


async def replay_dead_letters(request: web.Request, session: Session) -> web.StreamResponse:
    wanted = await form_of(request, DeadLetterReplay, lists=("ids",))
    ops = services(request).operations
    replayed = 0
    if wanted.every:
        q = _dead_letter_query(request, session, wanted)
        while replayed < REPLAY_PER_CLICK:
            done = await ops.replay_dead_letters(q, dry_run=False, limit=REPLAY_CHUNK)
            replayed += done.replayed
            if not done.replayed or not done.remaining:
                break
    else:
        if not wanted.ids:
            raise ValidationFailed(
                "Select at least one dead letter, or replay every one matching the filter."
            )
        # Each one by the API's rule (only failed or expired ones, only the tenant's own): a row is sent as
        # "<tenant>:<id>", and a tenant key's rows are always its own tenant's.
        for row in wanted.ids:
            tenant, _, nid = row.rpartition(":")
            try:
                notification_id = UUID(nid)
            except ValueError:
                raise NotFound("There is no such notification.") from None
            await ops.replay(acting_for(session, tenant), notification_id)
            replayed += 1
    params = _filter_params(wanted)
    raise redirect(with_query(f"{PREFIX}/dead-letters", **params, done="replayed", n=replayed))


# --- delivery -----------------------------------------------------------------------------------------------


async def delivery(request: web.Request, session: Session) -> web.StreamResponse:
    chosen = query_of(request, TenantView).tenant
    tenant = acting_for(session, chosen)
    state = await services(request).operations.delivery_state(tenant)
    health = await console(request).overview.delivery(viewing(request, session, chosen))
    return render(
        request,
        session,
        "delivery.html",
        nav="delivery",
        state=state,
        health=health,
        tenant=tenant,
        chosen=chosen or "",
        tenants=await _tenant_choices(request, session),
        channels=list(Channel),
    )


async def set_paused(request: web.Request, session: Session) -> web.StreamResponse:
    form = await form_of(request, PauseForm)
    key = session.key
    # An admin without a chosen tenant works the global switch; with one, that tenant's pause. A tenant key
    # its own tenant's (the API's rules: pause_target).
    if key.is_admin and not form.tenant:
        scope, tenant = PauseScope.GLOBAL, None
    else:
        scope, tenant = PauseScope.TENANT, acting_for(session, form.tenant)
    paused = form.action == "pause"
    await services(request).operations.set_paused(key, paused, form.channel, scope=scope, tenant_id=tenant)
    done = "paused" if paused else "resumed"
    raise redirect(with_query(f"{PREFIX}/delivery", tenant=form.tenant, done=done))


# --- batches ------------------------------------------------------------------------------------------------


async def batches(request: web.Request, session: Session) -> web.StreamResponse:
    chosen = query_of(request, TenantView).tenant
    found = await console(request).overview.batches(viewing(request, session, chosen))
    return render(
        request,
        session,
        "batches.html",
        nav="batches",
        batches=found,
        chosen=chosen or "",
        tenants=await _tenant_choices(request, session),
        statuses=list(Status),
    )


# --- templates ----------------------------------------------------------------------------------------------


async def templates(request: web.Request, session: Session) -> web.StreamResponse:
    chosen = query_of(request, TenantView).tenant
    tenant = acting_for(session, chosen)
    found, _ = await request.config_dict[TEMPLATES].search(tenant, page_size=100)
    return render(
        request,
        session,
        "templates.html",
        nav="templates",
        templates=found,
        tenant=tenant,
        chosen=chosen or "",
        tenants=await _tenant_choices(request, session),
    )


def _editor(
    request: web.Request,
    session: Session,
    tenant: str,
    form: dict[str, Any],
    template_id: UUID | None,
    errors: dict[str, str],
    status: int = 200,
) -> web.Response:
    return render(
        request,
        session,
        "template_edit.html",
        status,
        nav="templates",
        tenant=tenant,
        form=form,
        template_id=template_id,
        errors=errors,
        channels=list(Channel),
    )


async def template_new(request: web.Request, session: Session) -> web.StreamResponse:
    tenant = acting_for(session, query_of(request, TenantView).tenant)
    blank = {"name": "", "channel": "email", "subject": "", "body": ""}
    return _editor(request, session, tenant, blank, None, {})


async def template_edit(request: web.Request, session: Session) -> web.StreamResponse:
    tenant = acting_for(session, query_of(request, TenantView).tenant)
    template_id = _template_id(request)
    t = await request.config_dict[TEMPLATES].get(tenant, template_id)
    form = {"name": t.name, "channel": t.channel.value, "subject": t.subject or "", "body": t.body}
    return _editor(request, session, tenant, form, template_id, {})


def _template_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("There is no such template.") from None


async def template_save(request: web.Request, session: Session) -> web.StreamResponse:
    form = await form_of(request, TemplateForm)
    tenant = acting_for(session, form.tenant)
    template_id = _template_id(request) if "id" in request.match_info else None
    service = request.config_dict[TEMPLATES]
    try:
        if template_id is None:
            await service.create(tenant, form.name, form.channel, form.body, form.subject)
        else:
            await service.update(tenant, template_id, form.name, form.channel, form.body, form.subject)
    except ValidationFailed as exc:  # shown inline, beside the field, with what was typed kept
        errors = _by_field(exc)
        typed = {
            "name": form.name,
            "channel": form.channel.value,
            "subject": form.subject or "",
            "body": form.body,
        }
        return _editor(request, session, tenant, typed, template_id, errors, 400)
    raise redirect(with_query(f"{PREFIX}/templates", tenant=form.tenant, done="saved"))


_EDITOR_FIELDS = ("name", "channel", "subject", "body", "variables")


def _by_field(exc: ValidationFailed) -> dict[str, str]:
    """Each error beside the editor's field it is about (``variables.code`` beside the variables; anything
    the editor has no field for beside the body)."""
    out: dict[str, str] = {}
    for d in exc.details or []:
        name = d.field.removeprefix("template_")  # a render names the notification's template_variables
        field = next((f for f in _EDITOR_FIELDS if name == f or name.startswith(f + ".")), "body")
        message = d.message if name == field else f"{d.field}: {d.message}"
        out[field] = f"{out[field]}; {message}" if field in out else message
    return out or {"body": exc.message}


async def template_delete(request: web.Request, session: Session) -> web.StreamResponse:
    form = await form_of(request, TenantView)
    await request.config_dict[TEMPLATES].delete(acting_for(session, form.tenant), _template_id(request))
    raise redirect(with_query(f"{PREFIX}/templates", tenant=form.tenant, done="deleted"))


async def template_preview(request: web.Request, session: Session) -> web.StreamResponse:
    """What the editor's source renders to with its sample variables, or the errors, per field."""
    try:
        wanted = PreviewIn.model_validate_json(await request.read())
    except ValueError:
        return _secure_headers(web.json_response({"errors": {"variables": "must be a JSON object"}}))
    tenant = acting_for(session, query_of(request, TenantView).tenant)
    try:
        content, subject = await request.config_dict[TEMPLATES].preview(
            tenant, wanted.channel, wanted.body, wanted.subject, wanted.variables
        )
    except ValidationFailed as exc:
        return _secure_headers(web.json_response({"errors": _by_field(exc)}))
    return _secure_headers(web.json_response({"content": content, "subject": subject}))


# --- API keys (admin) ---------------------------------------------------------------------------------------


async def keys(request: web.Request, session: Session) -> web.StreamResponse:
    chosen = query_of(request, TenantView).tenant
    return render(
        request,
        session,
        "keys.html",
        nav="keys",
        keys=await console(request).keys.all(chosen),
        chosen=chosen or "",
        tenants=await _tenant_choices(request, session),
        created=None,
        secret=None,
    )


async def key_create(request: web.Request, session: Session) -> web.StreamResponse:
    form = await form_of(request, KeyForm)
    service = console(request).keys
    created, secret = await service.create(form.name, form.tenant_id, form.rate_limit_per_s, form.scope)
    # The secret is shown on this answer only (never stored, never in a URL).
    return render(
        request,
        session,
        "keys.html",
        201,
        nav="keys",
        keys=await service.all(None),
        chosen="",
        tenants=await _tenant_choices(request, session),
        created=created,
        secret=secret,
    )


async def key_revoke(request: web.Request, session: Session) -> web.StreamResponse:
    try:
        key_id = UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("There is no such key.") from None
    if key_id == session.key.id:
        raise Forbidden(
            "This is the key you are signed in with: sign in with another admin key to revoke it."
        )
    await console(request).keys.revoke(key_id)
    raise redirect(with_query(f"{PREFIX}/keys", done="revoked"))


# --- the route list -----------------------------------------------------------------------------------------


def add_console_routes(app: web.Application, static_dir: str) -> None:
    r = app.router
    r.add_get(PREFIX, home)
    r.add_get(PREFIX + "/", home)
    r.add_get(PREFIX + "/sign-in", sign_in_page)
    r.add_post(PREFIX + "/sign-in", sign_in)
    r.add_post(PREFIX + "/sign-out", page(sign_out, write=True))
    r.add_get(PREFIX + "/activity", page(activity))
    r.add_get(PREFIX + "/activity/figures", page(activity_figures))
    r.add_post(PREFIX + "/live-token", page(live_token, write=True))
    r.add_get(PREFIX + "/notifications/{id}", page(notification))
    r.add_post(PREFIX + "/notifications/{id}/cancel", page(cancel, write=True))
    r.add_post(PREFIX + "/notifications/{id}/replay", page(replay, write=True))
    r.add_get(PREFIX + "/dead-letters", page(dead_letters))
    r.add_post(PREFIX + "/dead-letters/replay", page(replay_dead_letters, write=True))
    r.add_get(PREFIX + "/delivery", page(delivery))
    r.add_post(PREFIX + "/delivery", page(set_paused, write=True))
    r.add_get(PREFIX + "/batches", page(batches))
    r.add_get(PREFIX + "/templates", page(templates))
    r.add_get(PREFIX + "/templates/new", page(template_new))
    r.add_post(PREFIX + "/templates/new", page(template_save, write=True))
    r.add_post(PREFIX + "/templates/preview", page(template_preview, write=True))
    r.add_get(PREFIX + "/templates/{id}", page(template_edit))
    r.add_post(PREFIX + "/templates/{id}", page(template_save, write=True))
    r.add_post(PREFIX + "/templates/{id}/delete", page(template_delete, write=True))
    r.add_get(PREFIX + "/keys", page(keys, admin=True))
    r.add_post(PREFIX + "/keys", page(key_create, write=True, admin=True))
    r.add_post(PREFIX + "/keys/{id}/revoke", page(key_revoke, write=True, admin=True))
    r.add_static(PREFIX + "/static", static_dir, follow_symlinks=False, name=STATIC)
