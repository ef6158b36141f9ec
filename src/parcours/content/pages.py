"""HTML routes for the content library: upload, versions, MLR review and signatures, files."""

from __future__ import annotations

import contextlib
import re
from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.datastructures import FormData, UploadFile

from parcours.accounts import service as accounts
from parcours.accounts.models import Product
from parcours.content import clm, review, service
from parcours.content.api import receive
from parcours.content.messages import CONTENT_MESSAGES
from parcours.content.models import CONTENT_TYPES, REVIEW_ROLES, STATES, Content, ContentVersion
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from parcours.core.i18n import translate
from parcours.core.models import Role, User
from parcours.web.pages import (
    Form,
    flash,
    form_errors,
    form_text,
    is_id,
    redirect,
    register_messages,
    translate_message,
    user_names,
)
from parcours.web.pages import message_key as web_message_key
from parcours.web.render import add_templates, is_htmx, language, render, templates

router = APIRouter()

# web/render.py loads the templates of the domains it lists; the content folder joins here.
add_templates(__file__)

COUNTRIES = ("FR", "GB", "DE", "ES", "IT", "BE")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# a new version may follow these; a draft or a version in review is finished first
ENDED = ("approved", "rejected", "expired", "withdrawn", "superseded")
STATS_ROLES = (Role.admin, Role.marketing, Role.manager)


register_messages("content", CONTENT_MESSAGES)


def message_key(message: str) -> str | None:
    return web_message_key(message, "content")


def _domain(lang: str) -> str | None:
    # English readers keep the services' own wording, more precise than the catalogue's
    return None if lang == "en" else "content"


def _message(lang: str, message: str) -> str:
    return translate_message(lang, message, _domain(lang))


templates.env.globals["content_message"] = _message


def field_errors(request: Request, exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    """Field → message in the user's language; a field the form does not show goes on top."""
    return form_errors(request, exc, _domain(language(request)), fields)


def _keys(request: Request, keys: dict[str, str]) -> dict[str, str]:
    lang = language(request)
    return {name: translate(lang, key) for name, key in keys.items()}


def product_names(session) -> dict[int, str]:
    return dict(session.execute(select(Product.id, Product.name)).all())


def _builder(user: User) -> bool:
    return user.role in service.BUILDERS


# --- the metadata form --------------------------------------------------------------------------

META_FIELDS = ("file", *service.EDITABLE, "parent_id")


def _raw(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _strs(form: FormData, name: str) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in form.getlist(name) if isinstance(v, str)))


def read_meta(form: FormData, *, upload: bool) -> tuple[dict, dict, dict]:
    """(values to show again, data for the service, parse errors as catalogue keys)."""
    values = {
        "title": form_text(form, "title"),
        "description": _raw(form, "description"),
        "content_type": form_text(form, "content_type"),
        "language": form_text(form, "language"),
        "countries": [c for c in _strs(form, "countries") if c],
        "product_ids": [int(v) for v in _strs(form, "product_ids") if is_id(v)],
        "audience": _raw(form, "audience"),
        "key_messages": _raw(form, "key_messages"),
        "valid_from": form_text(form, "valid_from"),
        "valid_until": form_text(form, "valid_until"),
        "required_roles": _strs(form, "required_roles"),
        "change_note": _raw(form, "change_note"),
        "parent_id": form_text(form, "parent_id"),
    }
    data: dict = {
        "title": values["title"],
        "description": values["description"].strip() or None,
        "content_type": values["content_type"],
        "language": values["language"],
        "countries": values["countries"],
        "product_ids": values["product_ids"],
        "audience": [p.strip() for p in values["audience"].split(",") if p.strip()],
        "key_messages": [ln.strip() for ln in values["key_messages"].splitlines() if ln.strip()],
        "required_roles": values["required_roles"],
    }
    if "change_note" in form:
        data["change_note"] = values["change_note"].strip() or None
    errors: dict[str, str] = {}
    for name in ("valid_from", "valid_until"):
        raw = values[name]
        if not raw:
            if name == "valid_until" or not upload:
                errors[name] = "content.err.date_missing"
            continue
        try:
            data[name] = date.fromisoformat(raw)
        except ValueError:
            errors[name] = "content.err.date"
    return values, data, errors


def values_of(version: ContentVersion | None, user: User | None = None) -> dict:
    """The form's values from a version (a new version starts from the latest one)."""
    if version is None:
        return {
            "title": "",
            "description": "",
            "content_type": "promotional",
            "language": (user.language if user else "") or "",
            "countries": [user.country] if user and user.country else [],
            "product_ids": [],
            "audience": "",
            "key_messages": "",
            "valid_from": service.today().isoformat(),
            "valid_until": "",
            "required_roles": list(REVIEW_ROLES),
            "change_note": "",
            "parent_id": "",
        }
    return {
        "title": version.title,
        "description": version.description or "",
        "content_type": version.content_type,
        "language": version.language,
        "countries": list(version.countries or []),
        "product_ids": list(version.product_ids or []),
        "audience": ", ".join(version.audience or []),
        "key_messages": "\n".join(version.key_messages or []),
        "valid_from": version.valid_from.isoformat(),
        "valid_until": version.valid_until.isoformat(),
        "required_roles": list(version.required_roles or []),
        "change_note": version.change_note or "",
        "parent_id": "",
    }


def meta_options(session, chosen: dict) -> dict:
    """Choices for the metadata fields: active products, countries in use, languages."""
    products = accounts.products(session)
    known = {p.id for p in products}
    missing = [pid for pid in chosen.get("product_ids", []) if pid not in known]
    if missing:  # a product retired since: still shown so the draft reads right
        products += list(session.scalars(select(Product).where(Product.id.in_(missing))))
    used = session.scalars(select(User.country).where(User.country.is_not(None)).distinct())
    countries = set(COUNTRIES) | {c for c in used if c and _COUNTRY.match(c)}
    countries |= {c for c in chosen.get("countries", []) if _COUNTRY.match(c)}
    return {
        "products": products,
        "countries": sorted(countries),
        "languages": service.LANGUAGES,
        "content_types": CONTENT_TYPES,
        "review_roles": REVIEW_ROLES,
    }


def upload_context(session, user, values, errors, *, content_id=None, latest=None) -> dict:
    return {
        "values": values,
        "errors": errors,
        "content_id": content_id,
        "latest": latest,
        "parents": [] if content_id else service.library(session, user, limit=500),
        **meta_options(session, values),
    }


def _store(request, session, user, form: FormData, *, content_id=None, latest=None):
    """Receive the file and create the version; the form again (422) when anything is refused."""
    values, data, parse_errors = read_meta(form, upload=True)
    errors = _keys(request, parse_errors)
    upload = form.get("file")
    chosen = isinstance(upload, UploadFile) and bool(upload.filename)
    if not chosen:
        errors["file"] = translate(language(request), "content.err.file_missing")
    try:  # every metadata error at once, before the file is read
        service._check_meta(session, {k: v for k, v in data.items() if k not in parse_errors})
    except Invalid as exc:
        errors = {**field_errors(request, exc, META_FIELDS), **errors}
    parent_id = None
    if content_id is None and is_id(values["parent_id"]):
        parent_id = int(values["parent_id"])
    if not errors:
        try:
            # All or nothing: a refused upload leaves no content item and no file behind.
            with session.begin_nested():
                path = receive(upload)
                try:
                    version = service.upload(
                        session,
                        user,
                        path,
                        upload.filename,
                        data,
                        content_id=content_id,
                        parent_id=parent_id,
                    )
                finally:
                    path.unlink(missing_ok=True)  # moved into the library when accepted
        except (Invalid, Conflict) as exc:
            errors = field_errors(request, exc, META_FIELDS)
    if errors:
        ctx = upload_context(session, user, values, errors, content_id=content_id, latest=latest)
        ctx["file_again"] = chosen
        return render(request, "content/upload.html", ctx, status=422)
    flash(request, "content.flash.uploaded")
    if is_htmx(request):  # the form posts with HTMX to show the upload's progress
        return Response(headers={"HX-Redirect": f"/content/versions/{version.id}"})
    return redirect(f"/content/versions/{version.id}")


# --- library ------------------------------------------------------------------------------------


@router.get("/content")
def library(
    request: Request,
    user: PageUser,
    session: SessionDep,
    q: str = "",
    state: str = "",
    product: str = "",
    content_type: str = Query("", alias="type"),
    lang: str = Query("", alias="language"),
    country: str = "",
):
    if user.role in service.BUILDERS:
        states = STATES
    elif user.role == Role.reviewer:
        states = tuple(s for s in STATES if s != "draft")
    else:
        states = ()  # reps and managers only ever see approved content
    params = {
        "q": q.strip()[:200],
        "state": state if state in states else "",
        "product": product if is_id(product) else "",
        "type": content_type if content_type in CONTENT_TYPES else "",
        "language": lang if lang in service.LANGUAGES else "",
        "country": country if _COUNTRY.match(country) else "",
    }
    versions = service.library(
        session,
        user,
        q=params["q"] or None,
        state=params["state"] or None,
        product_id=int(params["product"]) if params["product"] else None,
        content_type=params["type"] or None,
        language=params["language"] or None,
        country=params["country"] or None,
    )
    ctx = {
        "versions": versions,
        "params": params,
        "filtered": any(params.values()),
        "product_names": product_names(session),
        "can_build": _builder(user),
        "states": states,
        "today": service.today(),
    }
    if not is_htmx(request):
        ctx.update(meta_options(session, {}))
    return render(request, "content/library.html", ctx, partial="content/_partials/library.html")


# --- upload -------------------------------------------------------------------------------------


def _builder_only(user: User) -> None:
    if not _builder(user):
        raise Forbidden("Only marketing and admins build content.")


@router.get("/content/new")
def upload_form(
    request: Request, user: PageUser, session: SessionDep, source: str = Query("", alias="from")
):
    _builder_only(user)
    values = values_of(None, user)
    if is_id(source):  # "upload again" after a failed rendering: start from that version
        with contextlib.suppress(NotFound):
            values = values_of(service.get_version(session, user, int(source)))
    return render(request, "content/upload.html", upload_context(session, user, values, {}))


@router.post("/content/new")
def upload_post(request: Request, user: PageUser, session: SessionDep, form: Form):
    _builder_only(user)
    return _store(request, session, user, form)


def _latest(session, user: User, content_id: int) -> ContentVersion:
    versions = service.versions_for(session, user, content_id)
    if not versions:
        raise NotFound(f"Content {content_id} does not exist or is not available to you.")
    return versions[0]


@router.get("/content/{content_id:int}")
def content_home(content_id: int, user: PageUser, session: SessionDep):
    """A content item opens on its newest version that this user may see."""
    return redirect(f"/content/versions/{_latest(session, user, content_id).id}")


@router.get("/content/{content_id:int}/versions/new")
def new_version_form(request: Request, content_id: int, user: PageUser, session: SessionDep):
    _builder_only(user)
    latest = _latest(session, user, content_id)
    if latest.state not in ENDED:
        flash(request, "content.flash.finish_first", "error")
        return redirect(f"/content/versions/{latest.id}")
    values = values_of(latest)
    values["change_note"] = ""
    ctx = upload_context(session, user, values, {}, content_id=content_id, latest=latest)
    return render(request, "content/upload.html", ctx)


@router.post("/content/{content_id:int}/versions/new")
def new_version_post(
    request: Request, content_id: int, user: PageUser, session: SessionDep, form: Form
):
    _builder_only(user)
    latest = _latest(session, user, content_id)
    return _store(request, session, user, form, content_id=content_id, latest=latest)


# --- the version page ---------------------------------------------------------------------------


def _stats(session, user: User, version: ContentVersion) -> dict | None:
    if user.role not in STATS_ROLES or version.state in ("draft", "in_review", "rejected"):
        return None  # never shown in a call
    try:
        data = clm.stats(session, user, version.content_id)
    except (Forbidden, NotFound):
        return None
    return next((s for s in data["versions"] if s["version_id"] == version.id), None)


def version_context(session, user: User, version: ContentVersion, **extra) -> dict:
    content = session.get(Content, version.content_id)
    versions = service.versions_for(session, user, version.content_id)
    builder = _builder(user)
    draft = builder and version.state == "draft"
    parent_title = None
    if content.parent_id:
        parent_versions = service.versions_for(session, user, content.parent_id)
        parent_title = parent_versions[0].title if parent_versions else None
    checks = service.check_signatures(session, version)
    signed = {c.signature.role for c in checks if c.valid}
    ctx = {
        "v": version,
        "content": content,
        "versions": versions,
        "pages": service.pages(session, version.id),
        "checks": checks,
        "product_names": product_names(session),
        "authors": user_names(session, [version.created_by, version.ended_by]),
        "stats": _stats(session, user, version),
        "parent_title": parent_title,
        "can_edit": draft,
        "can_withdraw": user.role == Role.admin and version.state == "approved",
        "can_new_version": builder and bool(versions) and versions[0].state in ENDED,
        "can_review": user.role == Role.reviewer
        and version.state == "in_review"
        and user.review_role in (version.required_roles or [])
        and user.review_role not in signed,
        "can_open_review": user.role == Role.reviewer or builder,
        "values": values_of(version),
        "errors": {},
        "withdraw_errors": {},
        "withdraw_reason": "",
    }
    ctx.update(extra)
    if draft:
        ctx.update(meta_options(session, ctx["values"]))
    return ctx


@router.get("/content/versions/{version_id}")
def version_page(request: Request, version_id: int, user: PageUser, session: SessionDep):
    version = service.get_version(session, user, version_id)
    return render(request, "content/version.html", version_context(session, user, version))


@router.get("/content/versions/{version_id}/progress")
def version_progress(request: Request, version_id: int, user: PageUser, session: SessionDep):
    """What the page polls while rendering: the progress bar, then the pages once ready."""
    version = service.get_version(session, user, version_id)
    if version.render_state in ("queued", "rendering"):
        ctx = {"v": version, "pages": [], "can_edit": False}
    else:
        ctx = version_context(session, user, version, oob=True)
    return render(request, "content/_partials/progress.html", ctx)


@router.get("/content/versions/{version_id}/view/{page}")
def page_viewer(request: Request, version_id: int, page: int, user: PageUser, session: SessionDep):
    """One page large, with the key messages it carries; previous and next."""
    version = service.get_version(session, user, version_id)
    rows = {p.number: p for p in service.pages(session, version.id)}
    if version.render_state != "ready" or page not in rows:
        raise NotFound(f"This version has no rendered page {page}.")
    ctx = {
        "v": version,
        "page": rows[page],
        "can_edit": _builder(user) and version.state == "draft",
        "page_errors": {},
    }
    return render(request, "content/viewer.html", ctx)


@router.post("/content/versions/{version_id}/edit")
def edit_draft(request: Request, version_id: int, user: PageUser, session: SessionDep, form: Form):
    version = service.get_version(session, user, version_id)
    values, data, parse_errors = read_meta(form, upload=False)
    errors = _keys(request, parse_errors)
    if not errors:
        try:
            with session.begin_nested():
                service.update_draft(session, user, version_id, **data)
        except Invalid as exc:
            errors = field_errors(request, exc, META_FIELDS)
    if errors:
        session.refresh(version)
        ctx = version_context(session, user, version, values=values, errors=errors)
        return render(request, "content/version.html", ctx, status=422)
    flash(request, "content.flash.saved")
    return redirect(f"/content/versions/{version_id}")


@router.post("/content/versions/{version_id}/pages/{page}/messages")
def page_messages(
    request: Request, version_id: int, page: int, user: PageUser, session: SessionDep, form: Form
):
    messages = [m for m in _strs(form, "key_messages") if m]
    errors: dict[str, str] = {}
    failed = ""
    try:
        with session.begin_nested():
            service.set_page_messages(session, user, version_id, page, messages)
    except (Invalid, Conflict) as exc:
        errors = field_errors(request, exc, ("key_messages",))
        failed = exc.detail
    version = service.get_version(session, user, version_id)
    if not is_htmx(request):
        if errors:
            flash(request, message_key(failed) or "content.flash.failed", "error")
        else:
            flash(request, "content.flash.page_saved")
        return redirect(f"/content/versions/{version_id}/view/{page}")
    row = next((p for p in service.pages(session, version_id) if p.number == page), None)
    if row is None:
        raise NotFound(f"This version has no page {page}.")
    ctx = {"v": version, "page": row, "can_edit": True, "page_errors": errors}
    headers = None
    if not errors:
        headers = {"X-Toast": quote(translate(language(request), "content.flash.page_saved"))}
    return render(
        request,
        "content/_partials/page_messages.html",
        ctx,
        status=422 if errors else 200,
        headers=headers,
    )


@router.post("/content/versions/{version_id}/submit")
def submit(request: Request, version_id: int, user: PageUser, session: SessionDep, form: Form):
    try:
        with session.begin_nested():
            service.submit_for_review(session, user, version_id)
    except Conflict as exc:
        flash(request, message_key(exc.detail) or "content.flash.failed", "error")
        return redirect(f"/content/versions/{version_id}")
    flash(request, "content.flash.submitted")
    return redirect(f"/content/versions/{version_id}")


@router.post("/content/versions/{version_id}/discard")
def discard(request: Request, version_id: int, user: PageUser, session: SessionDep, form: Form):
    try:
        with session.begin_nested():
            content_id = service.discard_draft(session, user, version_id)
    except Conflict as exc:
        flash(request, message_key(exc.detail) or "content.flash.failed", "error")
        return redirect(f"/content/versions/{version_id}")
    flash(request, "content.flash.discarded")
    return redirect(f"/content/{content_id}" if content_id else "/content")


@router.post("/content/versions/{version_id}/withdraw")
def withdraw(request: Request, version_id: int, user: PageUser, session: SessionDep, form: Form):
    require(user, Role.admin)
    reason = _raw(form, "reason")
    try:
        with session.begin_nested():
            review.withdraw(session, user, version_id, reason)
    except Invalid as exc:
        version = service.get_version(session, user, version_id)
        ctx = version_context(
            session,
            user,
            version,
            withdraw_errors=field_errors(request, exc, ("reason",)),
            withdraw_reason=reason,
        )
        return render(request, "content/version.html", ctx, status=422)
    flash(request, "content.flash.withdrawn")
    return redirect(f"/content/versions/{version_id}")
