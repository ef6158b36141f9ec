"""Shared page helpers: icons, channel styles, flash messages, form errors and the error page."""

from __future__ import annotations

import re
from functools import lru_cache
from http import HTTPStatus
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.datastructures import FormData

from parcours.core import i18n
from parcours.core.errors import DomainError
from parcours.core.models import User
from parcours.core.settings import get_settings
from parcours.web.render import language, render, templates

router = APIRouter()

# One colour and one icon per channel, used by every page (timeline, home, call report).
CHANNEL_ICONS = {
    "field_visit": "map-pin",
    "phone": "phone",
    "remote_detailing": "video",
    "email": "mail",
    "webinar": "monitor-play",
    "event": "calendar-days",
    "web": "globe",
    "survey": "clipboard-list",
}
STATUS_ICONS = {"planned": "calendar", "saved": "pencil", "submitted": "lock"}

_SVG_HEAD = re.compile(r"^.*?<svg\b[^>]*>", re.S)


@lru_cache(maxsize=256)
def _svg_body(name: str) -> str:
    path = get_settings().static_dir / "lucide-static" / "icons" / f"{name}.svg"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""  # browser libraries not installed (`cd web && npm install`): no icon, no crash
    return _SVG_HEAD.sub("", text).replace("</svg>", "").strip()


def icon(name: str, size: int = 20, cls: str = "", label: str | None = None) -> Markup:
    """A Lucide icon inlined as SVG so that it takes the text colour (currentColor)."""
    body = _svg_body(name)
    a11y = f'role="img" aria-label="{escape(label)}"' if label else 'aria-hidden="true"'
    return Markup(
        f'<svg class="icon {escape(cls)}" width="{size}" height="{size}" viewBox="0 0 24 24" '
        f'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" '
        f'stroke-linejoin="round" focusable="false" {a11y}>{body}</svg>'
    )


def channel_icon(channel: str | None) -> str:
    return CHANNEL_ICONS.get(channel or "", "circle")


templates.env.globals.update(
    icon=icon, channel_icon=channel_icon, STATUS_ICONS=STATUS_ICONS, CHANNELS=tuple(CHANNEL_ICONS)
)


# --- messages from the services, shown in the user's language --------------------------------

# The services speak English; pages show their messages through the catalogue. A message
# not listed here is shown as the service wrote it (English) rather than hidden.
_MESSAGE_KEYS: tuple[tuple[str, str], ...] = (
    ("Wrong email or password", "err.login_wrong"),
    ("Too many failed attempts", "err.login_locked"),
    ("A password needs at least", "err.password_short"),
    ("A user with email", "err.email_taken"),
    ("Unknown role", "err.role"),
    ("Language must be", "err.language"),
    ("Duration is between", "err.duration_range"),
    ("Say how long the call lasted", "err.duration_missing"),
    ("Outcome is one of", "err.outcome"),
    ("Choose an outcome", "err.outcome_missing"),
    ("Unknown channel", "err.channel"),
    ("Unknown product", "err.products_unknown"),
    ("Choose at least one product", "err.products_missing"),
    ("Key messages are short texts", "err.key_messages"),
    ("A call in the future cannot be submitted", "err.future_submit"),
    ("Say why the call is amended", "err.reason_missing"),
    ("An amendment changes at least one field", "err.amend_no_change"),
    ("submitted and locked", "err.locked"),
    ("already submitted", "err.locked"),
    ("Only a submitted call is amended", "err.amend_not_submitted"),
    ("Only the owner of this call", "err.not_owner"),
    ("A task needs a title", "err.task_title"),
    ("A title has at most", "err.task_title_long"),
    ("level must be", "err.level"),
    ("cannot sit under", "err.parent_level"),
    ("needs a parent", "err.parent_needed"),
    ("Parent territory", "err.parent_missing"),
    ("Territory code", "err.code_taken"),
    ("This account is already aligned", "err.account_aligned"),
    ("This user is already aligned", "err.user_aligned"),
    ("does not exist or is outside your territories", "err.outside_territory"),
    ("Your role", "err.role_forbidden"),
    ("Only an admin", "err.role_forbidden"),
    ("The form expired", "err.csrf"),
    ("cannot record activities", "err.role_forbidden"),
)


# Each domain's own services' messages, looked up before the shared ones above: the same
# words ("Unknown product") may need another key in another domain.
_DOMAIN_MESSAGE_KEYS: dict[str, tuple[tuple[str, str], ...]] = {}


def register_messages(domain: str, pairs: tuple[tuple[str, str], ...]) -> None:
    """Catalogue keys for the English messages of one domain's services."""
    _DOMAIN_MESSAGE_KEYS[domain] = tuple(pairs)


def message_key(message: str, domain: str | None = None) -> str | None:
    for needle, key in (*_DOMAIN_MESSAGE_KEYS.get(domain or "", ()), *_MESSAGE_KEYS):
        if needle in message:
            return key
    return None


def translate_message(lang: str, message: str, domain: str | None = None) -> str:
    """A service message in lang when the catalogue knows it, else as written."""
    key = message_key(message, domain)
    return i18n.translate(lang, key) if key else message


def form_errors(
    request: Request,
    exc: DomainError,
    domain: str | None = None,
    fields: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """Field → message (in the user's language) from a domain error, for a re-rendered form;
    with fields, an error on a field the form does not show goes on top (_form)."""
    lang = language(request)
    errors: dict[str, str] = {}
    for err in exc.errors or [{"field": "_form", "message": exc.detail}]:
        name = err.get("field") or "_form"
        if fields is not None and name not in fields:
            name = "_form"
        errors.setdefault(name, translate_message(lang, err["message"], domain))
    return errors


async def read_form(request: Request) -> FormData:
    """The posted form, read once on the event loop (page_user may already have read it)."""
    return await request.form()


Form = Annotated[FormData, Depends(read_form)]


def form_text(form: FormData, name: str) -> str:
    """A text field, trimmed; empty when missing or sent as a file."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def redirect(url: str) -> RedirectResponse:
    """After a form post: 303 so that a reload does not post again."""
    return RedirectResponse(url, status_code=303)


def user_names(session, ids) -> dict[int, str]:
    """Full names of these users in one query."""
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())


def is_id(value: object) -> bool:
    """True for a form value that is a plausible row id (ASCII digits, fits in 64 bits)."""
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18


def flash(request: Request, key: str, kind: str = "success", **params) -> None:
    """A short confirmation (catalogue key, with its values) shown as a toast on the next page."""
    request.session["flash"] = {"key": key, "kind": kind, **({"params": params} if params else {})}


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a local path may be a redirect target (no scheme, no host, no '//')."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


# --- the error page ---------------------------------------------------------------------------

KNOWN_STATUSES = (400, 401, 403, 404, 405, 409, 413, 422, 429, 500)
# Messages that the page's own text already says: not repeated underneath.
_SAID_BY_BODY = {404: ("err.outside_territory",)}


def _is_phrase(status: int, text: str) -> bool:
    try:
        return text.strip().lower() == HTTPStatus(status).phrase.lower()
    except ValueError:
        return False


def error_page(request: Request, status: int, detail: str):
    """A designed error page (or a small fragment for HTMX) saying what happened and what to do."""
    code = status if status in KNOWN_STATUSES else (500 if status >= 500 else 400)
    lang = language(request)
    key = message_key(detail or "")
    shown = i18n.translate(lang, key) if key else (detail if lang == "en" else "")
    if key in _SAID_BY_BODY.get(code, ()) or _is_phrase(status, shown):
        shown = ""
    ctx = {"status": status, "code": code, "detail": shown}
    return render(request, "error.html", ctx, status=status, partial="_partials/error.html")
