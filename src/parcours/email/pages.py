"""HTML routes for Approved Email: the rep's compose page on HCP 360, and the HCP's public
links (open pixel, click redirect, shared content viewer, one-click unsubscribe)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.datastructures import FormData

from parcours.accounts import service as accounts
from parcours.accounts.models import Account
from parcours.content import clm
from parcours.content import service as content
from parcours.content import storage as content_storage
from parcours.content.models import ContentVersion
from parcours.core import audit, i18n
from parcours.core.deps import PageUser, SessionDep, require, writes_on_get
from parcours.core.errors import Conflict, DomainError, Invalid, NotFound
from parcours.core.models import User
from parcours.core.settings import get_settings
from parcours.email import service
from parcours.email.api import template_tokens
from parcours.email.models import EmailMessage
from parcours.web.pages import (
    Form,
    form_text,
    is_id,
    redirect,
    register_messages,
    translate_message,
)
from parcours.web.render import add_templates, language, render

router = APIRouter()

add_templates(__file__)

# a 1×1 transparent GIF: what the open pixel answers, whatever the token
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
FORM_KEYS = ("_csrf", "template_id", "after_call_id")

# The services write English; pages show these catalogue messages instead.
_MESSAGES: tuple[tuple[str, str], ...] = (
    ("no longer approved and valid", "email.reason.template"),
    ("no email address", "email.reason.recipient"),
    ("opted out of this channel", "email.reason.opted_out"),
    ("waits for the HCP's confirmation", "email.reason.pending"),
    ("consent for this channel has expired", "email.reason.expired"),
    ("No consent recorded", "email.reason.none"),
    ("Choose one of the template's approved phrases", "email.err.phrase"),
    ("Choose a date", "email.err.date"),
    ("Offer a date within the next 90 days", "email.err.date_range"),
    ("Choose approved content valid today", "email.err.content"),
    ("has no phrase", "email.err.not_in_template"),
    ("has no date", "email.err.not_in_template"),
    ("has no content link", "email.err.not_in_template"),
    ("Choose an approved template", "email.err.template"),
    ("Email template", "email.err.template"),
    ("Follow up a field visit", "email.err.follow_up_channel"),
    ("This call was not with this HCP", "email.err.follow_up_account"),
    ("once the call has taken place", "email.err.follow_up_planned"),
)
register_messages("email", _MESSAGES)
_FREQUENCY = re.compile(r"already has (\d+) .* last (\d+) days \(at most (\d+)\)")
_UNKNOWN = re.compile(r"^(.+) is not something a rep fills")


def message_text(lang: str, message: str) -> str:
    """A service's message in lang (as written when the catalogue lacks it)."""
    if m := _FREQUENCY.search(message):
        return i18n.translate(lang, "email.reason.frequency", n=m[1], days=m[2], most=m[3])
    if m := _UNKNOWN.search(message):
        return i18n.translate(lang, "email.err.unknown", field=m[1][:40])
    return translate_message(lang, message, "email")


def lab_name() -> str:
    return parseaddr(get_settings().mail_from)[0] or "parcours"


# --- the rep's compose page --------------------------------------------------------------------


def _linkable(session, user: User) -> list[ContentVersion]:
    """Approved content valid today that this user may link (not other email templates)."""
    return [
        v
        for v in content.library(session, user, state="approved")
        if v.kind != "email" and content.presentable(session, v)
    ]


def _after_call(session, user: User, account_id: int, value: str | None):
    """The call a follow-up answers (?after_call= or the form's after_call_id), or None."""
    if not value:
        return None
    if not is_id(value):
        raise NotFound(f"Activity {value[:20]} does not exist or is outside your territories.")
    return service.follow_up_call(session, user, account_id, int(value))


def _defaults(
    chosen: ContentVersion,
    tokens: list[str],
    links: list[ContentVersion],
    shown: frozenset[int] | set[int] = frozenset(),
) -> dict:
    """First choices: the first phrase, a week from now, what was shown in the call."""
    out: dict = {}
    if "phrase" in tokens and chosen.key_messages:
        out["phrase"] = chosen.key_messages[0]
    if "date" in tokens:
        out["date"] = (content.today() + timedelta(days=7)).isoformat()
    if "content_link" in tokens and links:
        out["content_version_id"] = next((v.id for v in links if v.id in shown), links[0].id)
    return out


def _raw(form: FormData) -> tuple[int | None, dict]:
    """The template chosen and everything else posted, as the service will judge it: a key
    it does not know (subject, html…) is passed on so that it is refused, not ignored."""
    template = form_text(form, "template_id")
    raw: dict = {}
    for key in form:
        if key in FORM_KEYS:
            continue
        value = form.get(key)
        value = value.strip() if isinstance(value, str) else value
        if key in service.VALUE_KEYS and value == "":
            continue
        if key == "content_version_id" and is_id(value):
            value = int(value)
        raw[key] = value
    return (int(template) if is_id(template) else None), raw


def _preview(session, user: User, account_id: int, chosen, raw: dict, lang: str) -> dict:
    """The preview context: the message as sent, the gates' refusals, the value errors."""
    try:
        out = service.preview(session, user, account_id, chosen.id, raw)
    except Invalid as exc:
        errors = {
            e.get("field") or "_form": message_text(lang, e["message"]) for e in exc.errors
        } or {"_form": message_text(lang, exc.detail)}
        refusals = service.gates(session, session.get(Account, account_id), chosen)
        out = {"subject": chosen.title, "html": "", "text": "", "refusals": refusals}
        return {"preview": out, "preview_errors": errors, "refusals": _reasons(lang, refusals)}
    return {"preview": out, "preview_errors": {}, "refusals": _reasons(lang, out["refusals"])}


def _reasons(lang: str, refusals) -> list[dict]:
    return [{"rule": r.rule, "message": message_text(lang, r.message)} for r in refusals]


def _compose_ctx(
    request: Request,
    session,
    user: User,
    account_id: int,
    template_id: int | None,
    raw: dict | None = None,
    errors: dict | None = None,
    after_call=None,
) -> dict:
    require(user, *service.SENDERS)
    account = accounts.get_account(session, user, account_id)
    choices = service.templates_for(session, user)
    chosen = next((v for v in choices if v.id == template_id), None)
    if chosen is None and template_id is None and len(choices) == 1:
        chosen = choices[0]
    ctx = {
        "account": account,
        "name": accounts.display_name(account),
        "choices": choices,
        "chosen": chosen,
        "errors": errors or {},
        "unknown_template": template_id is not None and chosen is None,
        "after_call": after_call,
    }
    if chosen is None:
        return ctx
    tokens = template_tokens(chosen)
    links = _linkable(session, user) if "content_link" in tokens else []
    shown = (
        {v["version_id"] for v in clm.shown_in_call(session, after_call.id)}
        if after_call
        else set()
    )
    values = raw if raw is not None else _defaults(chosen, tokens, links, shown)
    ctx.update(
        tokens=tokens,
        links=links,
        values=values,
        **_preview(session, user, account_id, chosen, values, language(request)),
    )
    return ctx


@router.get("/accounts/{account_id}/email")
def compose_page(
    request: Request,
    account_id: int,
    user: PageUser,
    session: SessionDep,
    template: str = "",
    after_call: str = "",
):
    template_id = int(template) if is_id(template) else None
    after = _after_call(session, user, account_id, after_call)
    ctx = _compose_ctx(request, session, user, account_id, template_id, after_call=after)
    status = 404 if ctx["unknown_template"] else 200
    return render(request, "email/compose.html", ctx, status=status)


@router.post("/accounts/{account_id}/email/preview")
def preview_fragment(
    request: Request, account_id: int, user: PageUser, session: SessionDep, form: Form
):
    """The live preview (HTMX): the message at desktop and mobile widths, and the gates."""
    template_id, raw = _raw(form)
    after = _after_call(session, user, account_id, form_text(form, "after_call_id"))
    ctx = _compose_ctx(request, session, user, account_id, template_id, raw, after_call=after)
    if ctx["chosen"] is None:
        raise NotFound("Choose an approved template.")
    return render(request, "email/_partials/preview.html", ctx)


@router.post("/accounts/{account_id}/email")
def send(request: Request, account_id: int, user: PageUser, session: SessionDep, form: Form):
    template_id, raw = _raw(form)
    lang = language(request)
    after = _after_call(session, user, account_id, form_text(form, "after_call_id"))
    try:
        if template_id is None:
            raise Invalid("Choose an approved template.", field="template_id")
        message = service.send(
            session, user, account_id, template_id, raw, after_call_id=after.id if after else None
        )
    except (Conflict, Invalid, NotFound) as exc:
        # NotFound: the template left the list (withdrawn, expired) while the page was open
        errors = {}
        for e in exc.errors or [{"field": "_form", "message": exc.detail}]:
            errors.setdefault(e.get("field") or "_form", message_text(lang, e["message"]))
        ctx = _compose_ctx(
            request, session, user, account_id, template_id, raw, errors, after_call=after
        )
        return render(request, "email/compose.html", ctx, status=exc.status)
    account = session.get(Account, account_id)
    if message.send_after > datetime.now(UTC) + timedelta(minutes=1):
        zone = ZoneInfo(service.ZONES.get(account.country, get_settings().timezone))
        at = message.send_after.astimezone(zone).strftime("%H:%M")
        # the toast shows a catalogue key, or the text itself when no key matches it
        text = i18n.translate(lang, "email.flash.queued_later", time=at)
        request.session["flash"] = {"key": text, "kind": "success"}
    else:
        request.session["flash"] = {"key": "email.flash.queued", "kind": "success"}
    return redirect(f"/calls/{after.id}" if after else f"/accounts/{account_id}")


# --- the HCP's links (public: the signed token is the proof) -----------------------------------


def _public(request: Request, template: str, ctx: dict, account: Account | None, status=200):
    """In the HCP's language (their preferred one, else what their browser asks for)."""
    preferred = ((account.preferred_language if account else None) or "")[:2].lower()
    if preferred in i18n.LANGUAGES:
        lang = preferred
    else:
        lang = i18n.pick_language(request.headers.get("accept-language"))
    ctx = {
        "lang": lang,
        "t": lambda key, **kw: i18n.translate(lang, key, **kw),
        "fdate": lambda v, with_time=False: i18n.format_date(v, lang, with_time),
        "lab": lab_name(),
        **ctx,
    }
    return render(request, template, ctx, status=status)


@router.get("/t/o/{token}.gif", include_in_schema=False)
@writes_on_get
def open_pixel(token: str, session: SessionDep):
    """Record the open; the same image for any token, so the pixel tells nothing."""
    audit.bind_actor(session, None, "hcp-email-open")
    with contextlib.suppress(DomainError):
        service.opened(session, token)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/t/c/{token}", include_in_schema=False)
@writes_on_get
def click(token: str, session: SessionDep):
    """Record the click and send the HCP on to what the email linked (tampered: 404)."""
    audit.bind_actor(session, None, "hcp-email-click")
    return redirect(service.clicked(session, token))


def _shared(session, token: str) -> tuple[EmailMessage, ContentVersion | None]:
    """The message behind a share link, and the content it links when still presentable."""
    message = service.message_for_token(session, "share", token)
    target = json.loads(message.values or "{}").get("content_version_id")
    version = session.get(ContentVersion, int(target)) if str(target or "").isdigit() else None
    if version is None or version.kind == "email" or not content.presentable(session, version):
        return message, None
    return message, version


@router.get("/shared/{token}", include_in_schema=False)
def shared(request: Request, token: str, session: SessionDep):
    try:
        message, version = _shared(session, token)
    except NotFound:
        return _public(request, "email/shared.html", {"state": "invalid"}, None, status=404)
    account = session.get(Account, message.account_id)
    if version is None:
        return _public(request, "email/shared.html", {"state": "gone"}, account, status=410)
    ctx = {
        "state": "ok",
        "version": version,
        "pages": content.pages(session, version.id),
        "token": token,
    }
    return _public(request, "email/shared.html", ctx, account)


@router.get("/shared/{token}/pages/{page}.jpg", include_in_schema=False)
def shared_page(token: str, page: int, session: SessionDep):
    _message, version = _shared(session, token)
    if version is None:
        raise NotFound("This content is no longer available.")
    path = content_storage.page_image(version, page)
    return FileResponse(path, media_type="image/jpeg", headers=NO_STORE)


@router.get("/u/{token}", include_in_schema=False)
def unsubscribe_page(request: Request, token: str, session: SessionDep):
    try:
        message = service.message_for_token(session, "unsubscribe", token)
    except NotFound:
        return _public(request, "email/unsubscribe.html", {"state": "invalid"}, None, 404)
    account = session.get(Account, message.account_id)
    state = "done" if message.unsubscribed_at else "ask"
    return _public(request, "email/unsubscribe.html", {"state": state, "token": token}, account)


@router.post("/u/{token}", include_in_schema=False)
def unsubscribe(request: Request, token: str, session: SessionDep):
    """One click (RFC 8058): mail clients POST List-Unsubscribe=One-Click without cookies, so
    no CSRF token can exist; the signed link is the proof, and a second POST changes nothing."""
    audit.bind_actor(session, None, "hcp-unsubscribe-link")
    try:
        message = service.unsubscribe(session, token)
    except NotFound:
        return _public(request, "email/unsubscribe.html", {"state": "invalid"}, None, 404)
    account = session.get(Account, message.account_id)
    return _public(request, "email/unsubscribe.html", {"state": "done"}, account)
