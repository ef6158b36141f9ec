"""HTML routes for consent: an HCP's consent page and capture form, the texts, the public
double opt-in confirmation link."""

from __future__ import annotations

from datetime import UTC, datetime, time

from fastapi import APIRouter, Request
from sqlalchemy import select

from parcours.accounts import service as accounts
from parcours.accounts.models import Product
from parcours.consent import service
from parcours.consent.models import CHANNELS, SCOPED_TYPES, ConsentRecord, ConsentText
from parcours.core import audit, i18n
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import DomainError, Invalid, NotFound
from parcours.core.models import User
from parcours.web.pages import (
    Form,
    flash,
    form_errors,
    form_text,
    is_id,
    redirect,
    register_messages,
    translate_message,
)
from parcours.web.render import add_templates, language, render, templates

router = APIRouter()

add_templates(__file__)

# consent channels are not all activity channels: their own icons, shown on HCP 360 too
CONSENT_ICONS = {
    "email": "mail",
    "phone": "phone",
    "remote_meeting": "video",
    "sms": "message-square",
    "survey": "clipboard-list",
    "webinar_invitation": "monitor-play",
}
REASON_ICONS = {
    "opted_in": "shield-check",
    "opted_out": "shield-x",
    "pending": "clock",
    "expired": "circle-slash",
    "none": "circle-dashed",
}
templates.env.globals.update(
    consent_icon=lambda ch: CONSENT_ICONS.get(ch, "circle"),
    consent_reason_icon=lambda r: REASON_ICONS.get(r, "circle"),
)

# The service writes English; the form shows these catalogue messages instead.
_MESSAGES: tuple[tuple[str, str], ...] = (
    ("Choose a channel", "consent.err.channel"),
    ("Choose opt-in or opt-out", "consent.err.status"),
    ("Choose how consent was given", "consent.err.source"),
    ("Choose the consent text", "consent.err.text"),
    ("Unknown consent text", "consent.err.text"),
    ("Unknown product", "consent.err.product"),
    ("The scope is promotional or medical", "consent.err.content_type"),
    ("The expiry is in the future", "consent.err.expires_at"),
    ("Give a date", "consent.err.date"),
    ("Say where the proof is", "consent.err.proof"),
    ("The proof reference is at most", "consent.err.proof_long"),
    ("Only an opt-in is confirmed by email", "consent.err.double_status"),
    ("Double opt-in confirms the email channel", "consent.err.double_channel"),
    ("Give the HCP's email address", "consent.err.email"),
    ("A code is 1 to 60", "consent.err.code"),
    ("Choose a language", "consent.err.language"),
    ("A consent text is 20 to", "consent.err.body"),
)


register_messages("consent", _MESSAGES)


def _message(lang: str, message: str) -> str:
    return translate_message(lang, message, "consent")


def _errors(request: Request, exc: DomainError) -> dict[str, str]:
    return form_errors(request, exc, "consent")


def _all_texts(session) -> list[ConsentText]:
    return list(
        session.scalars(select(ConsentText).order_by(ConsentText.code, ConsentText.version.desc()))
    )


# --- an HCP's consent ---------------------------------------------------------------------------


def _blank_values(account) -> dict:
    return {
        "channel": "email",
        "status": "opted_in",
        "source": "web_form",
        "text_id": "",
        "product_id": "",
        "content_type": "",
        "expires_at": "",
        "proof": "",
        "double_opt_in": "",
        "email": (account.emails or [""])[0],
    }


def _context(session, user: User, account_id: int, values=None, errors=None) -> dict:
    account = accounts.get_account(session, user, account_id)
    history = service.history(session, user, account_id)
    text_ids = {r.text_id for r in history if r.text_id}
    texts_by_id = (
        {t.id: t for t in session.scalars(select(ConsentText).where(ConsentText.id.in_(text_ids)))}
        if text_ids
        else {}
    )
    people = {r.captured_by for r in history if r.captured_by}
    names = (
        dict(session.execute(select(User.id, User.full_name).where(User.id.in_(people))).all())
        if people
        else {}
    )
    return {
        "account": account,
        "name": accounts.display_name(account),
        "decisions": service.summary(session, account_id),
        "history": history,
        "texts_by_id": texts_by_id,
        "names": names,
        "products": dict(session.execute(select(Product.id, Product.name)).all()),
        "latest_texts": service.texts(session),
        "channels": CHANNELS,
        "scoped_types": SCOPED_TYPES,
        "sources": service.CAPTURE_SOURCES,
        "can_capture": user.role in service.CAPTURERS,
        "values": values or _blank_values(account),
        "errors": errors or {},
    }


@router.get("/accounts/{account_id}/consent")
def consent_page(request: Request, account_id: int, user: PageUser, session: SessionDep):
    return render(request, "consent/hcp_consent.html", _context(session, user, account_id))


def _parse_date(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError as exc:
        raise Invalid("Give a date.", field="expires_at") from exc
    return datetime.combine(day, time(23, 59), tzinfo=UTC)


@router.post("/accounts/{account_id}/consent")
def capture(request: Request, account_id: int, user: PageUser, session: SessionDep, form: Form):
    values = {
        name: form_text(form, name)
        for name in (
            "channel",
            "status",
            "source",
            "text_id",
            "product_id",
            "content_type",
            "expires_at",
            "proof",
            "email",
            "double_opt_in",
        )
    }
    try:
        for name in ("text_id", "product_id"):
            if values[name] and not is_id(values[name]):
                raise Invalid("Unknown", field=name)
        service.capture(
            session,
            user,
            account_id,
            channel=values["channel"],
            status=values["status"],
            source=values["source"],
            text_id=int(values["text_id"]) if values["text_id"] else None,
            product_id=int(values["product_id"]) if values["product_id"] else None,
            content_type=values["content_type"] or None,
            expires_at=_parse_date(values["expires_at"]),
            proof=values["proof"] or None,
            email=values["email"] or None,
            double_opt_in=bool(values["double_opt_in"]),
        )
    except Invalid as exc:
        errors = _errors(request, exc)
        for name in ("text_id", "product_id"):
            if errors.get(name) == "Unknown":
                errors[name] = i18n.translate(language(request), f"consent.err.{name}")
        ctx = _context(session, user, account_id, values, errors)
        return render(request, "consent/hcp_consent.html", ctx, status=422)
    flash(request, "consent.flash.pending" if values["double_opt_in"] else "consent.flash.saved")
    return redirect(f"/accounts/{account_id}/consent")


# --- consent texts ------------------------------------------------------------------------------


def _texts_page(request: Request, session, values=None, errors=None, status=200):
    ctx = {
        "all_texts": _all_texts(session),
        "values": values or {"code": "", "language": language(request), "body": ""},
        "errors": errors or {},
    }
    return render(request, "consent/texts.html", ctx, status=status)


@router.get("/consent/texts")
def texts_page(request: Request, user: PageUser, session: SessionDep, code: str = ""):
    require(user, *service.TEXT_EDITORS)
    values = None
    if code:
        latest = next((t for t in service.texts(session) if t.code == code), None)
        if latest is not None:
            values = {"code": latest.code, "language": latest.language, "body": latest.body}
    return _texts_page(request, session, values)


@router.post("/consent/texts")
def add_text(request: Request, user: PageUser, session: SessionDep, form: Form):
    require(user, *service.TEXT_EDITORS)
    values = {name: form_text(form, name) for name in ("code", "language", "body")}
    try:
        service.add_text(session, user, values["code"], values["language"], values["body"])
    except Invalid as exc:
        return _texts_page(request, session, values, _errors(request, exc), status=422)
    flash(request, "consent.flash.text_saved")
    return redirect("/consent/texts")


# --- the HCP's confirmation link (public: the token is the proof) ------------------------------


def _public(request: Request, template: str, ctx: dict, status: int = 200):
    """Rendered in the language the HCP's browser asks for, never the signed-in user's."""
    lang = i18n.pick_language(request.headers.get("accept-language"))
    ctx = {
        "lang": lang,
        "t": lambda key, **kw: i18n.translate(lang, key, **kw),
        "fdate": lambda v, with_time=False: i18n.format_date(v, lang, with_time),
        **ctx,
    }
    return render(request, template, ctx, status=status)


def _refused(request: Request, exc: DomainError):
    reason = (
        "expired" if "expired" in exc.detail else "newer" if "newer" in exc.detail else "invalid"
    )
    return _public(request, "consent/confirm.html", {"state": reason}, status=exc.status)


@router.get("/consent/confirm/{token}")
def confirm_page(request: Request, token: str, session: SessionDep):
    try:
        pending = service.record_for_token(session, token)
    except NotFound as exc:
        return _refused(request, exc)
    done = session.scalar(select(ConsentRecord.id).where(ConsentRecord.confirms_id == pending.id))
    if done is not None:
        state = "done"
    elif pending.status != "pending":
        state = "invalid"
    elif pending.captured_at + service.CONFIRM_WITHIN < datetime.now(UTC):
        state = "expired"
    else:
        state = "ask"
    status = {"invalid": 404, "expired": 409}.get(state, 200)
    return _public(request, "consent/confirm.html", {"state": state, "token": token}, status)


@router.post("/consent/confirm/{token}")
def confirm(request: Request, token: str, session: SessionDep):
    # no CSRF token can exist for a stranger's browser: the signed link is the proof
    audit.bind_actor(session, None, "hcp-confirmation-link")
    try:
        service.confirm(session, token)
    except DomainError as exc:
        return _refused(request, exc)
    return _public(request, "consent/confirm.html", {"state": "done"})
