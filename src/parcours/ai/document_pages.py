"""Insight document pages: the library and its uploads, one document's passages, its file,
who may read it, and deleting it."""

from __future__ import annotations

import re
from itertools import groupby

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.datastructures import FormData, UploadFile

from parcours.ai import service
from parcours.ai.models import CATEGORIES, InsightDocument
from parcours.ai.pages import _raw, field_errors, message
from parcours.core.deps import PageUser, SessionDep
from parcours.core.errors import Forbidden, Invalid, NotFound
from parcours.core.i18n import translate
from parcours.core.models import Role, User
from parcours.core.settings import get_settings
from parcours.web.pages import Form, flash, form_text, is_id, redirect, user_names
from parcours.web.render import is_htmx, language, render

router = APIRouter()

ACL_FIELDS = ("acl_roles", "acl_groups", "acl_countries")
UPLOAD_FIELDS = ("file", *ACL_FIELDS, "title", "category", "product", "study", "doc_date")
ACCEPT = ".pdf,.docx,.pptx,.xlsx,.html,.htm,.md,.txt"
# an uploaded HTML page is shown as text and pictures only: never a script in our origin
HTML_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
FILE_HEADERS = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}


def _split(value: str) -> list[str]:
    return [p for p in re.split(r"[\s,;]+", value or "") if p]


# --- the library ------------------------------------------------------------------------------


def upload_defaults(user: User) -> dict:
    """A new upload is readable by the uploader's own role until they say otherwise."""
    return {
        "acl_roles": [user.role],
        "acl_groups": "",
        "acl_countries": "",
        "title": "",
        "category": "",
        "product": "",
        "study": "",
        "doc_date": "",
        "language": "",
    }


def read_access(request: Request, session, form: FormData, users=()) -> tuple[dict, object, dict]:
    """(values to show again, the access list, errors by field) from the access fields."""
    values = {
        "acl_roles": [r for r in form.getlist("acl_roles") if isinstance(r, str)],
        "acl_groups": _raw(form, "acl_groups").strip(),
        "acl_countries": _raw(form, "acl_countries").strip(),
    }
    errors: dict[str, str] = {}
    parts = {
        "acl_roles": values["acl_roles"],
        "acl_groups": _split(values["acl_groups"]),
        "acl_countries": _split(values["acl_countries"]),
    }
    for name in ACL_FIELDS:  # each part on its own, so every wrong field is named at once
        one = {k: v if k == name else [] for k, v in parts.items()}
        try:
            service.check_acl(
                session,
                service.Acl.of(one["acl_roles"], one["acl_groups"], (), one["acl_countries"]),
            )
        except Invalid as exc:
            errors.update(field_errors(request, exc, ACL_FIELDS))
    acl = service.Acl.of(parts["acl_roles"], parts["acl_groups"], users, parts["acl_countries"])
    return values, acl, errors


def read_meta(request: Request, form: FormData) -> tuple[dict, object, dict]:
    values = {
        name: form_text(form, name)
        for name in ("title", "category", "product", "study", "doc_date", "language")
    }
    errors: dict[str, str] = {}
    doc_date = None
    try:
        doc_date = service.when(values["doc_date"], "doc_date")
    except Invalid as exc:
        errors.update(field_errors(request, exc, UPLOAD_FIELDS))
    meta = service.Meta(
        title=values["title"] or None,
        category=values["category"] or None,
        product=values["product"] or None,
        study=values["study"] or None,
        language=values["language"] or None,
        doc_date=doc_date,
    )
    try:
        service.check_meta(meta)
    except Invalid as exc:
        errors.update(field_errors(request, exc, (*UPLOAD_FIELDS, "language")))
    return values, meta, errors


def library_context(session, user: User, **extra) -> dict:
    docs = service.library(session, user)
    ctx = {
        "docs": docs,
        "pending": sum(d.state in ("queued", "indexing") for d in docs),
        "can_curate": service.can_curate(user),
        "people": user_names(session, [d.created_by for d in docs]),
        "values": upload_defaults(user),
        "errors": {},
        "refused": [],
        "categories": CATEGORIES,
        "roles": [r.value for r in Role],
        "accept": ACCEPT,
    }
    ctx.update(extra)
    return ctx


def _curator_only(user: User) -> None:
    if not service.can_curate(user):
        raise Forbidden("Your role may ask questions but not add documents.")


@router.get("/insight/documents")
def library_page(request: Request, user: PageUser, session: SessionDep):
    ctx = library_context(session, user)
    if not is_htmx(request):  # files refused in the last upload, named next to the file field
        ctx["refused"] = request.session.pop("insight_refused", [])
    return render(request, "ai/library.html", ctx, partial="ai/_partials/documents.html")


@router.post("/insight/documents")
def upload_post(request: Request, user: PageUser, session: SessionDep, form: Form):
    """Each file is taken or refused on its own; the form again (422) when none was taken."""
    _curator_only(user)
    lang = language(request)
    acl_values, acl, errors = read_access(request, session, form)
    meta_values, meta, meta_errors = read_meta(request, form)
    errors.update(meta_errors)
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]
    if not files:
        errors["file"] = translate(lang, "insight.err.file_missing")
    added: list[InsightDocument] = []
    refused: list[str] = []
    if not errors:
        limit = get_settings().insight_max_bytes
        for upload in files:
            data = upload.file.read(limit + 1)
            try:
                with session.begin_nested():  # a refused file leaves nothing behind
                    doc, _changed = service.add_file(
                        session, user, upload.filename, data, acl=acl, meta=meta
                    )
                added.append(doc)
            except Invalid as exc:
                refused.append(message(lang, exc.detail))
    if errors or not added:
        if refused:
            errors["file"] = translate(lang, "insight.err.none_taken")
        values = {**upload_defaults(user), **acl_values, **meta_values}
        ctx = library_context(session, user, values=values, errors=errors, refused=refused)
        return render(request, "ai/library.html", ctx, status=422)
    if refused:
        # the session is a cookie (4 KB at most): a few reasons, shortened, the count of all
        shown = [r if len(r) <= 160 else r[:157] + "…" for r in refused[:5]]
        request.session["insight_refused"] = shown
        flash(
            request,
            "insight.flash.added_refused",
            "error",
            added=len(added),
            refused=len(refused),
            reasons="; ".join(shown[:2]) + ("; …" if len(refused) > 2 else ""),
        )
    else:
        flash(
            request,
            "insight.flash.added_one" if len(added) == 1 else "insight.flash.added",
            n=len(added),
        )
    if is_htmx(request):  # the form posts with HTMX to show the upload's progress
        return Response(headers={"HX-Redirect": "/insight/documents"})
    return redirect("/insight/documents")


# --- one document -----------------------------------------------------------------------------


def _may_change(user: User, doc: InsightDocument) -> bool:
    return user.role == Role.admin or (service.can_curate(user) and doc.created_by == user.id)


def document_context(session, user: User, doc: InsightDocument, target: int | None, **extra):
    chunks = service.passages_of(session, doc)
    pages = [
        {"page": page, "chunks": list(group)} for page, group in groupby(chunks, lambda c: c.page)
    ]
    names = user_names(session, [doc.created_by, *(doc.acl_users or [])])
    ctx = {
        "doc": doc,
        "pages": pages,
        "target": target,
        "names": names,
        "may_change": _may_change(user, doc),
        "is_pdf": doc.media_type == "application/pdf",
        "roles": [r.value for r in Role],
        "access_values": {
            "acl_roles": list(doc.acl_roles or []),
            "acl_groups": ", ".join(doc.acl_groups or []),
            "acl_countries": ", ".join(doc.acl_countries or []),
        },
        "access_errors": {},
    }
    ctx.update(extra)
    return ctx


@router.get("/insight/documents/{document_id}")
def document_page(
    request: Request, document_id: int, user: PageUser, session: SessionDep, page: str = ""
):
    doc = service.get_document(session, user, document_id)
    target = int(page) if is_id(page) else None
    return render(request, "ai/document.html", document_context(session, user, doc, target))


@router.get("/insight/documents/{document_id}/file")
def document_file(document_id: int, user: PageUser, session: SessionDep):
    """The original file, shown in the browser; 404 for whoever may not read it."""
    doc = service.get_document(session, user, document_id)
    path = service.file_path(doc)
    if not path.is_file():
        raise NotFound("The file of this document is missing.")
    headers = dict(FILE_HEADERS)
    media = doc.media_type
    if media == "text/html":
        headers["Content-Security-Policy"] = HTML_CSP
    if media.startswith("text/"):
        media += "; charset=utf-8"
    return FileResponse(
        path,
        media_type=media,
        filename=doc.filename,
        content_disposition_type="inline",
        headers=headers,
    )


@router.post("/insight/documents/{document_id}/access")
def access_post(
    request: Request, document_id: int, user: PageUser, session: SessionDep, form: Form
):
    doc = service.get_document(session, user, document_id)
    if not _may_change(user, doc):
        raise Forbidden("Only the person who added this document, or an admin, may change it.")
    values, acl, errors = read_access(request, session, form, users=doc.acl_users or ())
    if not errors:
        try:
            with session.begin_nested():
                service.set_access(session, user, doc, acl)
        except Invalid as exc:
            errors = field_errors(request, exc, ACL_FIELDS)
    if errors:
        session.refresh(doc)
        ctx = document_context(session, user, doc, None, access_values=values, access_errors=errors)
        return render(request, "ai/document.html", ctx, status=422)
    flash(request, "insight.flash.access")
    return redirect(f"/insight/documents/{doc.id}")


@router.post("/insight/documents/{document_id}/delete")
def delete_post(
    request: Request, document_id: int, user: PageUser, session: SessionDep, form: Form
):
    doc = service.get_document(session, user, document_id)
    service.remove(session, user, doc)
    flash(request, "insight.flash.deleted")
    return redirect("/insight/documents")
