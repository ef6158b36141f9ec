"""HTML routes for the rep home, call reports (plan, save, submit, amend) and tasks."""

from __future__ import annotations

from datetime import date, datetime, time
from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.datastructures import FormData

from parcours.accounts import service as accounts
from parcours.accounts.models import Account, Product
from parcours.activities import service as activities
from parcours.activities.models import OUTCOMES, Activity
from parcours.content import clm
from parcours.core.deps import PageUser, SessionDep
from parcours.core.errors import Forbidden, Invalid
from parcours.core.i18n import local, translate
from parcours.core.models import Role, User
from parcours.web.pages import (
    Form,
    flash,
    form_errors,
    form_text,
    is_id,
    redirect,
    safe_next,
    user_names,
)
from parcours.web.render import is_htmx, language, render

router = APIRouter()

ACTIONS = ("plan", "save", "submit")
FLASH_FOR_ACTION = {"plan": "flash.call_planned", "submit": "flash.call_submitted"}
MAX_KEY_MESSAGES = 20


def account_names(session, ids) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    rows = session.scalars(select(Account).where(Account.id.in_(ids)))
    return {a.id: accounts.display_name(a) for a in rows}


# --- home --------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, user: PageUser, session: SessionDep):
    if user.role == Role.marketing:
        return redirect("/content")
    if user.role == Role.reviewer:
        return redirect("/review")
    day = activities.local_today()
    calls = activities.calls_for_day(session, user, day)
    tasks = activities.open_tasks(session, user)
    ctx = {
        "day": day,
        "calls": calls,
        "tasks": tasks,
        "task_accounts": account_names(session, [t.account_id for t in tasks]),
        "display_name": accounts.display_name,
        "first_name": (user.full_name or "").split(" ")[0],
        "done_count": sum(1 for a, _ in calls if a.status == "submitted"),
    }
    return render(request, "activities/home.html", ctx)


# --- call report: reading the form -------------------------------------------------------------


def _ints(form: FormData, name: str) -> list[int]:
    out: list[int] = []
    for v in form.getlist(name):
        if is_id(v) and int(v) not in out:
            out.append(int(v))
    return out


def _messages(form: FormData) -> list[str]:
    out: list[str] = []
    for v in [*form.getlist("key_messages"), form.get("key_message_new")]:
        if isinstance(v, str) and v.strip() and v.strip() not in out:
            out.append(v.strip()[:200])
    return out[:MAX_KEY_MESSAGES]


def read_call_form(form: FormData, *, with_when: bool = True) -> tuple[dict, dict, dict]:
    """(values to show again, typed data for the service, parse errors as catalogue keys)."""
    values = {
        "channel": form_text(form, "channel") or "field_visit",
        "date": form_text(form, "date"),
        "time": form_text(form, "time"),
        "duration_min": form_text(form, "duration_min"),
        "outcome": form_text(form, "outcome"),
        "notes": (form.get("notes") or "") if isinstance(form.get("notes"), str) else "",
        "product_ids": _ints(form, "product_ids"),
        "key_messages": _messages(form),
    }
    errors: dict[str, str] = {}
    data: dict = {
        "outcome": values["outcome"] or None,
        "notes": values["notes"].strip() or None,
        "product_ids": values["product_ids"],
        "key_messages": values["key_messages"],
    }
    if with_when:
        data["channel"] = values["channel"]
        try:
            day = date.fromisoformat(values["date"])
        except ValueError:
            errors["date"] = "err.date_invalid"
            day = None
        try:
            at = time.fromisoformat(values["time"]) if values["time"] else None
        except ValueError:
            at = None
        if at is None:
            errors["time"] = "err.time_invalid"
        if day and at:
            data["start_at"] = datetime.combine(day, at.replace(second=0, microsecond=0))
    raw = values["duration_min"]
    if raw:
        try:
            data["duration_min"] = int(raw)
        except ValueError:
            errors["duration_min"] = "err.duration_number"
    else:
        data["duration_min"] = None
    return values, data, errors


def values_from(act: Activity, eff: dict | None = None) -> dict:
    at = local(act.start_at)
    src = eff or {k: getattr(act, k) for k in activities.AMENDABLE}
    return {
        "channel": act.channel,
        "date": at.date().isoformat(),
        "time": at.strftime("%H:%M"),
        "duration_min": "" if src["duration_min"] is None else str(src["duration_min"]),
        "outcome": src["outcome"] or "",
        "notes": src["notes"] or "",
        "product_ids": list(src["product_ids"] or []),
        "key_messages": list(src["key_messages"] or []),
    }


def key_message_options(session, user: User, chosen: list[str]) -> list[str]:
    """The messages this rep used lately, so a repeat is one tap (content brings its own later)."""
    seen = list(chosen)
    rows = session.scalars(
        select(Activity.key_messages)
        .where(Activity.owner_id == user.id)
        .order_by(Activity.start_at.desc())
        .limit(40)
    )
    for msgs in rows:
        for msg in msgs or []:
            if isinstance(msg, str) and msg not in seen:
                seen.append(msg)
    return seen[:16]


def form_context(
    session,
    user: User,
    account: Account,
    values: dict,
    errors: dict,
    act: Activity | None = None,
    confirm_submit: bool = False,
) -> dict:
    products = accounts.products(session)
    known = {p.id for p in products}
    missing = [pid for pid in values["product_ids"] if pid not in known]
    if missing:  # a product retired since: still shown so the report reads right
        products += list(session.scalars(select(Product).where(Product.id.in_(missing))))
    return {
        "account": account,
        "name": accounts.display_name(account),
        "act": act,
        "values": values,
        "errors": errors,
        "products": products,
        "key_message_options": key_message_options(session, user, values["key_messages"]),
        "channels": activities.CALL_CHANNELS,
        "outcomes": OUTCOMES,
        "confirm_submit": confirm_submit,
        "shown": clm.shown_in_call(session, act.id) if act else [],
        "meeting_people": _meeting_people(session, act) if act else [],
        "meeting": _meeting_of(session, act),
    }


def _meeting_of(session, act: Activity | None):
    from parcours.meetings import service as meetings  # meetings build on calls

    return meetings.for_call(session, act.id) if act is not None else None


def _translated(request: Request, keys: dict[str, str]) -> dict[str, str]:
    lang = language(request)
    return {f: translate(lang, k) for f, k in keys.items()}


def _action(form: FormData) -> str:
    action = form_text(form, "action")
    return action if action in ACTIONS or action == "review_submit" else "save"


# --- call report: routes -----------------------------------------------------------------------


def _require_writer(user: User) -> None:
    if user.role not in accounts.WRITE_ROLES:
        raise Forbidden("Your role cannot record activities for accounts.")


@router.get("/accounts/{account_id}/calls/new")
def call_new(request: Request, account_id: int, user: PageUser, session: SessionDep):
    _require_writer(user)
    account = accounts.get_account(session, user, account_id)
    now = datetime.now(activities.local_zone())
    now = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    values = {
        "channel": "field_visit",
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M"),
        "duration_min": "",
        "outcome": "",
        "notes": "",
        "product_ids": [],
        "key_messages": [],
    }
    return render(
        request, "activities/call_form.html", form_context(session, user, account, values, {})
    )


@router.post("/accounts/{account_id}/calls")
def call_create(request: Request, account_id: int, user: PageUser, session: SessionDep, form: Form):
    _require_writer(user)
    account = accounts.get_account(session, user, account_id)
    action = _action(form)
    values, data, parse_errors = read_call_form(form)
    if parse_errors:
        ctx = form_context(session, user, account, values, _translated(request, parse_errors))
        return render(request, "activities/call_form.html", ctx, status=422)
    try:
        # All or nothing: a refused submit leaves no half-made call behind.
        with session.begin_nested():
            status = "planned" if action == "plan" else "saved"
            act = activities.create_activity(
                session, user, account_ids=[account_id], status=status, **data
            )
            if action == "submit":
                activities.submit_activity(session, user, act.id)
    except Invalid as exc:
        ctx = form_context(session, user, account, values, form_errors(request, exc))
        return render(request, "activities/call_form.html", ctx, status=422)
    if action == "review_submit":
        ctx = form_context(session, user, account, values_from(act), {}, act, confirm_submit=True)
        return render(request, "activities/call_form.html", ctx)
    flash(request, FLASH_FOR_ACTION.get(action, "flash.call_saved"))
    return redirect(f"/accounts/{account_id}" if action == "plan" else f"/calls/{act.id}")


def _view_context(
    session,
    user: User,
    act: Activity,
    amend_values: dict | None = None,
    amend_errors: dict | None = None,
) -> dict:
    account = session.get(Account, act.account_id)
    amends = activities.amendments(session, act.id)
    eff = activities.effective(act, amends)
    products = dict(session.execute(select(Product.id, Product.name)).all())
    values = values_from(act, eff)
    running = {k: getattr(act, k) for k in activities.AMENDABLE}
    amend_rows = []
    for a in amends:
        rows = [(k, running.get(k), v) for k, v in a.changes.items() if k in activities.AMENDABLE]
        running.update({k: v for k, _before, v in rows})
        amend_rows.append((a, rows))
    return {
        "act": act,
        "account": account,
        "name": accounts.display_name(account),
        "amendments": amends,
        "amend_rows": amend_rows,
        "authors": user_names(session, [a.author_id for a in amends] + [act.owner_id]),
        "effective": eff,
        "changed": {k for a in amends for k in a.changes},
        "product_names": products,
        "all_products": accounts.products(session),
        "can_amend": act.owner_id == user.id or user.role == Role.admin,
        "amend_values": amend_values or values,
        "amend_errors": amend_errors or {},
        "outcomes": OUTCOMES,
        "key_message_options": key_message_options(session, user, values["key_messages"]),
        "shown": clm.shown_in_call(session, act.id),
        **_follow_ups(session, user, act, account),
        "meeting_people": _meeting_people(session, act),
    }


def _meeting_people(session, act: Activity) -> list:
    """For a remote call held in a meeting room: who joined and left when."""
    from parcours.meetings.models import Meeting, MeetingAttendee  # meetings build on calls

    meeting = session.scalar(select(Meeting).where(Meeting.activity_id == act.id))
    if meeting is None:
        return []
    return list(
        session.scalars(
            select(MeetingAttendee)
            .where(MeetingAttendee.meeting_id == meeting.id)
            .order_by(MeetingAttendee.id)
        )
    )


def _follow_ups(session, user: User, act: Activity, account: Account) -> dict:
    """The follow-up emails of a call, and whether this user may send one from it."""
    from parcours.email import service as email  # email builds on activities
    from parcours.email.models import EmailMessage

    if act.channel not in activities.CALL_CHANNELS or act.status == "planned":
        return {"can_follow_up": False, "follow_ups": []}
    rows = session.scalars(
        select(EmailMessage)
        .where(EmailMessage.follows_activity_id == act.id)
        .order_by(EmailMessage.queued_at)
    ).all()
    return {
        "can_follow_up": user.role in email.SENDERS and account.kind == "hcp",
        "follow_ups": rows,
    }


@router.get("/calls/{activity_id}")
def call_page(request: Request, activity_id: int, user: PageUser, session: SessionDep):
    act = activities.get_activity(session, user, activity_id)
    editable = act.status != "submitted" and (act.owner_id == user.id or user.role == Role.admin)
    if editable:
        account = session.get(Account, act.account_id)
        return render(
            request,
            "activities/call_form.html",
            form_context(session, user, account, values_from(act), {}, act),
        )
    return render(request, "activities/call_view.html", _view_context(session, user, act))


@router.post("/calls/{activity_id}")
def call_update(
    request: Request, activity_id: int, user: PageUser, session: SessionDep, form: Form
):
    act = activities.get_activity(session, user, activity_id)
    account = session.get(Account, act.account_id)
    action = _action(form)
    values, data, parse_errors = read_call_form(form)
    if parse_errors and act.status != "submitted":
        ctx = form_context(session, user, account, values, _translated(request, parse_errors), act)
        return render(request, "activities/call_form.html", ctx, status=422)
    try:
        with session.begin_nested():
            status = "planned" if action == "plan" else "saved"
            activities.update_activity(session, user, activity_id, status=status, **data)
            if action == "submit":
                activities.submit_activity(session, user, activity_id)
    except Invalid as exc:
        session.refresh(act)
        ctx = form_context(session, user, account, values, form_errors(request, exc), act)
        return render(request, "activities/call_form.html", ctx, status=422)
    if action == "review_submit":
        ctx = form_context(session, user, account, values, {}, act, confirm_submit=True)
        return render(request, "activities/call_form.html", ctx)
    flash(request, FLASH_FOR_ACTION.get(action, "flash.call_saved"))
    return redirect(f"/calls/{activity_id}")


@router.post("/calls/{activity_id}/amendments")
def call_amend(request: Request, activity_id: int, user: PageUser, session: SessionDep, form: Form):
    act = activities.get_activity(session, user, activity_id)
    values, data, parse_errors = read_call_form(form, with_when=False)
    reason = form_text(form, "reason")
    values["reason"] = reason
    if parse_errors:
        ctx = _view_context(session, user, act, values, _translated(request, parse_errors))
        return render(request, "activities/call_view.html", ctx, status=422)
    eff = activities.effective(act, activities.amendments(session, act.id))
    changes = {k: v for k, v in data.items() if k in activities.AMENDABLE and v != eff.get(k)}
    try:
        with session.begin_nested():
            activities.amend_activity(session, user, activity_id, reason=reason, changes=changes)
    except Invalid as exc:
        errors = form_errors(request, exc)
        if "changes" in errors:
            errors["_form"] = errors.pop("changes")
        ctx = _view_context(session, user, act, values, errors)
        return render(request, "activities/call_view.html", ctx, status=422)
    flash(request, "flash.call_amended")
    return redirect(f"/calls/{activity_id}")


# --- tasks -------------------------------------------------------------------------------------


@router.post("/tasks/{task_id}/done")
def task_done(request: Request, task_id: int, user: PageUser, session: SessionDep, form: Form):
    task = activities.update_task(session, user, task_id, status="done")
    if is_htmx(request):
        msg = translate(language(request), "flash.task_done")
        return render(
            request,
            "activities/_partials/task_row.html",
            {"task": task, "task_accounts": {}, "done": True},
            headers={"X-Toast": quote(msg)},
        )
    flash(request, "flash.task_done")
    nxt = form.get("next") if isinstance(form.get("next"), str) else None
    return redirect(safe_next(nxt))
