"""HTML routes for account search and the HCP 360 page (profile, timeline, tasks)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select

from parcours.accounts import service as accounts
from parcours.accounts.models import CHANNELS, Product
from parcours.activities import service as activities
from parcours.consent import service as consent
from parcours.core.deps import PageUser, SessionDep, writes_on_get
from parcours.core.errors import Invalid
from parcours.core.i18n import translate
from parcours.core.models import User
from parcours.web.pages import Form, flash, form_errors, form_text, is_id, redirect, user_names
from parcours.web.render import is_htmx, language, render

router = APIRouter()

# Channels for which the HCP 360 shows a consent summary (the consent domain fills it later).
TIMELINE_PAGE = 20


def initials(account) -> str:
    if account.kind == "hco":
        return "".join(w[0] for w in (account.name or "?").split()[:2]).upper()
    return ((account.first_name or "?")[:1] + (account.last_name or "")[:1]).upper()


def product_names(session) -> dict[int, str]:
    """Every product's name in one query (timelines and call reports show old products too)."""
    return dict(session.execute(select(Product.id, Product.name)).all())


# --- search ------------------------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    return int(value) if is_id(value) else None


def _filters(q: str, specialty: str, city: str, segment: str, territory: str):
    """The search form's fields as service filters (empty means no filter)."""
    return accounts.SearchFilters(
        q=q.strip() or None,
        specialty=specialty or None,
        city=city.strip() or None,
        segment=segment or None,
        territory_id=_int(territory),
    )


@router.get("/accounts/export.csv")
@writes_on_get
def export(
    request: Request,
    user: PageUser,
    session: SessionDep,
    q: str = "",
    specialty: str = "",
    city: str = "",
    segment: str = "",
    territory: str = "",
):
    """The current search as CSV, scoped exactly like the list on screen."""
    from fastapi.responses import Response

    filters = _filters(q, specialty, city, segment, territory)
    body = accounts.export_accounts(session, user, filters)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="accounts.csv"'},
    )


@router.get("/accounts")
def search(
    request: Request,
    user: PageUser,
    session: SessionDep,
    q: str = "",
    specialty: str = "",
    city: str = "",
    segment: str = "",
    territory: str = "",
    cursor: str | None = None,
):
    filters = _filters(q, specialty, city, segment, territory)
    errors: dict[str, str] = {}
    try:
        page = accounts.search_accounts(session, user, filters, cursor=cursor, limit=25)
    except Invalid as exc:
        errors = form_errors(request, exc)
        page = accounts.Page([], None)
    segs = accounts.segments(session)
    params = {
        "q": q,
        "specialty": specialty,
        "city": city,
        "segment": segment,
        "territory": territory,
    }
    ctx = {
        "page": page,
        "params": params,
        "query": urlencode({k: v for k, v in params.items() if v}),
        "filtered": any(params.values()),
        "errors": errors,
        "segments": {s.id: s for s in segs},
        "display_name": accounts.display_name,
        "initials": initials,
        "top_q": q,
    }
    if not is_htmx(request):
        ctx.update(
            segment_list=segs,
            specialties=accounts.specialties(session),
            territories=accounts.list_territories(session, user),
        )
    partial = "accounts/_partials/rows.html" if cursor else "accounts/_partials/results.html"
    return render(request, "accounts/search.html", ctx, partial=partial)


# --- HCP 360 -----------------------------------------------------------------------------------


def timeline_context(
    session, user: User, account_id: int, channel: str | None, cursor: str | None
) -> dict:
    page = activities.timeline(
        session, user, account_id, cursor=cursor, limit=TIMELINE_PAGE, channel=channel or None
    )
    return {
        "timeline": page,
        "channel": channel or "",
        "owners": user_names(session, [a.owner_id for a in page.items]),
        "amended": activities.effective_for(session, page.items),
        "call_channels": activities.CALL_CHANNELS,
    }


def hcp_context(
    session, user: User, account_id: int, channel: str | None = None, cursor: str | None = None
) -> dict:
    prof = accounts.profile(session, user, account_id)
    ctx = {
        "p": prof,
        "account": prof.account,
        "name": accounts.display_name(prof.account),
        "initials": initials(prof.account),
        "display_name": accounts.display_name,
        "organisation": next(
            (hco for aff, hco in prof.affiliations if aff.is_primary),
            prof.affiliations[0][1] if prof.affiliations else None,
        ),
        "tasks": activities.open_tasks(session, user, account_id=account_id),
        "products": product_names(session),
        "channels": CHANNELS,
        "consent": consent.summary(session, account_id),
        "can_write": user.role in accounts.WRITE_ROLES,
        "today": activities.local_today(),
        "task_values": {},
        "task_errors": {},
    }
    ctx.update(timeline_context(session, user, account_id, channel, cursor))
    return ctx


@router.get("/accounts/{account_id}")
def hcp_360(
    request: Request,
    account_id: int,
    user: PageUser,
    session: SessionDep,
    channel: str = "",
    cursor: str | None = None,
):
    if channel and channel not in CHANNELS:
        channel = ""
    if is_htmx(request):
        ctx = {
            "account": accounts.get_account(session, user, account_id),
            "products": product_names(session),
            "channels": CHANNELS,
        }
        ctx.update(timeline_context(session, user, account_id, channel, cursor))
        partial = (
            "accounts/_partials/timeline_items.html"
            if cursor
            else "accounts/_partials/timeline.html"
        )
        return render(request, partial, ctx)
    return render(
        request, "accounts/hcp.html", hcp_context(session, user, account_id, channel, cursor)
    )


def _tasks_partial(request: Request, session, user: User, account_id: int, **extra):
    """The HCP 360 tasks card alone, for HTMX."""
    ctx = {
        "account": accounts.get_account(session, user, account_id),
        "tasks": activities.open_tasks(session, user, account_id=account_id),
        "task_values": {},
        "task_errors": {},
        "can_write": True,
        "today": activities.local_today(),
        **extra,
    }
    status = 422 if ctx["task_errors"] else 200
    return render(request, "accounts/_partials/tasks.html", ctx, status=status)


@router.post("/accounts/{account_id}/tasks")
def create_task(request: Request, account_id: int, user: PageUser, session: SessionDep, form: Form):
    title = form_text(form, "title")
    raw_due = form_text(form, "due_date")
    values = {"title": title, "due_date": raw_due}
    try:
        try:
            due = date.fromisoformat(raw_due) if raw_due else activities.local_today()
        except ValueError as exc:
            raise Invalid("bad date", field="due_date") from exc
        activities.create_task(session, user, title=title, due_date=due, account_id=account_id)
    except Invalid as exc:
        errors = form_errors(request, exc)
        if "due_date" in errors:
            errors["due_date"] = translate(language(request), "err.date_invalid")
        if is_htmx(request):
            return _tasks_partial(
                request, session, user, account_id, task_values=values, task_errors=errors
            )
        ctx = hcp_context(session, user, account_id)
        ctx.update(task_values=values, task_errors=errors)
        return render(request, "accounts/hcp.html", ctx, status=422)
    if is_htmx(request):
        return _tasks_partial(request, session, user, account_id, task_added=True)
    flash(request, "flash.task_created")
    return redirect(f"/accounts/{account_id}")
