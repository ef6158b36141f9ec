"""HTML routes for MLR review: the reviewer inbox, the review page, comments, signatures."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from fastapi import APIRouter, Request

from parcours.content import review, service
from parcours.content.models import ContentVersion
from parcours.content.pages import _raw, field_errors, product_names
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import Conflict, Invalid, TooMany
from parcours.core.i18n import local
from parcours.core.models import Role, User
from parcours.web.pages import (
    Form,
    flash,
    form_text,
    is_id,
    redirect,
    user_names,
)
from parcours.web.render import is_htmx, render

router = APIRouter()

# --- MLR review ---------------------------------------------------------------------------------


@router.get("/review")
def review_inbox(request: Request, user: PageUser, session: SessionDep):
    """Versions waiting for this reviewer's role, oldest first."""
    if user.role != Role.reviewer:
        return redirect("/content")
    items = review.review_inbox(session, user)
    ctx = {
        "items": items,
        "authors": user_names(session, [v.created_by for v in items]),
        "product_names": product_names(session),
        "waiting": {v.id: waiting_days(service.today(), v.submitted_at) for v in items},
    }
    return render(request, "content/inbox.html", ctx)


def waiting_days(day: date, since: datetime | None) -> int:
    return max(0, (day - local(since).date()).days) if since else 0


SIGN_FIELDS = ("decision", "comment", "password")


def review_context(session, user: User, version: ContentVersion, **extra) -> dict:
    comments = review.comments(session, version.id)
    by_page: dict[int | None, list] = defaultdict(list)
    for c in comments:
        by_page[c.page].append(c)
    previous = review.previous_version(session, version, user)
    changes = None
    if previous is not None:
        changes = [d for d in review.diff(session, previous, version) if d["status"] != "same"]
    checks = service.check_signatures(session, version)
    mine = [c for c in checks if c.signature.signer_id == user.id]
    signed_role = any(c.valid and c.signature.role == user.review_role for c in checks)
    ctx = {
        "v": version,
        "pages": service.pages(session, version.id),
        "by_page": by_page,
        "authors": user_names(session, [c.author_id for c in comments] + [version.created_by]),
        "previous": previous,
        "changes": changes,
        "checks": checks,
        "mine": mine,
        "can_sign": user.role == Role.reviewer
        and version.state == "in_review"
        and user.review_role in (version.required_roles or [])
        and not signed_role,
        "can_comment": version.state in ("draft", "in_review"),
        "sign_values": {"decision": "approved", "comment": ""},
        "sign_errors": {},
        "comment_errors": {},
        "comment_page": None,
        "comment_body": "",
        "product_names": product_names(session),
    }
    ctx.update(extra)
    return ctx


def _reviewable(session, user: User, version_id: int) -> ContentVersion:
    require(user, Role.reviewer, Role.admin, Role.marketing)
    return service.get_version(session, user, version_id)


@router.get("/content/versions/{version_id}/review")
def review_page(request: Request, version_id: int, user: PageUser, session: SessionDep):
    version = _reviewable(session, user, version_id)
    return render(request, "content/review.html", review_context(session, user, version))


@router.post("/content/versions/{version_id}/comments")
def add_comment(request: Request, version_id: int, user: PageUser, session: SessionDep, form: Form):
    version = _reviewable(session, user, version_id)
    raw_page = form_text(form, "page")
    page = int(raw_page) if is_id(raw_page) and int(raw_page) <= 100_000 else None
    body = _raw(form, "body")
    errors: dict[str, str] = {}
    try:
        with session.begin_nested():
            review.add_comment(session, user, version_id, body, page)
    except (Invalid, Conflict) as exc:
        errors = field_errors(request, exc, ("body",))
    if is_htmx(request):
        comments = [c for c in review.comments(session, version_id) if c.page == page]
        ctx = {
            "v": version,
            "number": page,
            "comments": comments,
            "authors": user_names(session, [c.author_id for c in comments]),
            "can_comment": True,
            "comment_errors": errors,
            "comment_body": body if errors else "",
        }
        return render(
            request, "content/_partials/comments.html", ctx, status=422 if errors else 200
        )
    if errors:
        ctx = review_context(
            session, user, version, comment_errors=errors, comment_page=page, comment_body=body
        )
        return render(request, "content/review.html", ctx, status=422)
    flash(request, "content.flash.commented")
    return redirect(f"/content/versions/{version_id}/review#page-{page or 0}")


@router.post("/content/versions/{version_id}/sign")
def sign(request: Request, version_id: int, user: PageUser, session: SessionDep, form: Form):
    """Approve or reject as the user's MLR role; the password is the signature."""
    version = _reviewable(session, user, version_id)
    values = {"decision": form_text(form, "decision"), "comment": _raw(form, "comment")}
    try:
        with session.begin_nested():
            review.sign(
                session,
                user,
                version_id,
                password=_raw(form, "password"),
                decision=values["decision"],
                comment=values["comment"],
            )
    except (Invalid, Conflict, TooMany) as exc:
        if isinstance(exc, review.WrongPassword):
            review.count_wrong_password(session, user)
        session.refresh(version)
        errors = field_errors(request, exc, SIGN_FIELDS)
        ctx = review_context(session, user, version, sign_values=values, sign_errors=errors)
        return render(request, "content/review.html", ctx, status=exc.status)
    flash(request, "content.flash.signed")
    return redirect(f"/content/versions/{version_id}/review#decision")
