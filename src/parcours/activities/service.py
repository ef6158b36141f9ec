"""Touchpoints and call reports (plan → save → submit → locked, amendments), tasks, timelines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, event, inspect, or_, select
from sqlalchemy.orm import Session

from parcours.accounts import service as accounts
from parcours.accounts.models import CHANNELS, Account, Product
from parcours.activities.models import OUTCOMES, Activity, Amendment, Attendee, Task
from parcours.core import pagination
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.settings import get_settings

CALL_CHANNELS = ("field_visit", "phone", "remote_detailing")
EDITABLE = (
    "channel",
    "start_at",
    "duration_min",
    "subject",
    "outcome",
    "notes",
    "product_ids",
    "key_messages",
)
AMENDABLE = ("duration_min", "subject", "outcome", "notes", "product_ids", "key_messages")
MAX_ATTENDEES = 50


def _now() -> datetime:
    return datetime.now(UTC)


@event.listens_for(Session, "before_flush")
def _submitted_calls_are_locked(session: Session, _ctx, _instances) -> None:
    """Invariant 3 at the lowest level: no flush may change or delete a submitted call."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, Activity):
            status = inspect(obj).attrs.status.history
            was = status.deleted[0] if status.deleted else obj.status
            if was == "submitted" and (
                obj in session.deleted or session.is_modified(obj, include_collections=False)
            ):
                raise Conflict("This call report is submitted and locked; add an amendment.")
        elif (
            isinstance(obj, Attendee)
            and obj in session.dirty
            and session.is_modified(obj, include_collections=False)
        ):
            parent = session.get(Activity, obj.activity_id)
            if parent is not None and parent.status == "submitted":
                raise Conflict("This call report is submitted and locked; add an amendment.")


def local_zone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


NOT_NULL = ("channel", "start_at", "product_ids", "key_messages")
TEXT_LIMITS = {"subject": 200, "notes": 10_000}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(session: Session, data: dict) -> None:
    """Validate activity fields whatever their source (API body, page form, amendment)."""
    errors = []

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    for key in NOT_NULL:
        if key in data and data[key] is None:
            err(key, f"{key} cannot be empty.")
    if data.get("channel") is not None and data["channel"] not in CHANNELS:
        err("channel", f"Unknown channel {data['channel']!r}.")
    duration = data.get("duration_min")
    if duration is not None and (not _is_int(duration) or not 0 <= duration <= 24 * 60):
        err("duration_min", "Duration is between 0 and 1440 minutes.")
    if data.get("outcome") is not None and data["outcome"] not in OUTCOMES:
        err("outcome", f"Outcome is one of {', '.join(OUTCOMES)}.")
    for key, limit in TEXT_LIMITS.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            err(key, f"{key} is a text of at most {limit} characters.")
    if data.get("start_at") is not None and not isinstance(data["start_at"], datetime):
        err("start_at", "start_at is a date and time.")
    products = data.get("product_ids")
    if products is not None and (
        not isinstance(products, list) or not all(_is_int(p) and 0 < p < 2**31 for p in products)
    ):
        err("product_ids", "product_ids is a list of product ids.")
        products = None
    kms = data.get("key_messages")
    if kms is not None and not isinstance(kms, list):
        err("key_messages", "Key messages are a list of short texts.")
        data = {**data, "key_messages": None}
    if products:
        ids = set(products)
        found = set(session.scalars(select(Product.id).where(Product.id.in_(ids))))
        if ids - found:
            errors.append(
                {"field": "product_ids", "message": f"Unknown product(s): {sorted(ids - found)}."}
            )
    if data.get("key_messages") and any(
        not isinstance(k, str) or len(k) > 200 for k in data["key_messages"]
    ):
        errors.append({"field": "key_messages", "message": "Key messages are short texts."})
    if isinstance(data.get("start_at"), datetime) and data["start_at"].tzinfo is None:
        data["start_at"] = data["start_at"].replace(tzinfo=local_zone())
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)


def get_activity(
    session: Session, user: User, activity_id: int, *, for_update: bool = False
) -> Activity:
    """An activity whose primary account the user may read (row-locked to change it)."""
    if for_update:
        act = session.get(Activity, activity_id, with_for_update=True, populate_existing=True)
    else:
        act = session.get(Activity, activity_id)
    if act is None or not accounts.can_read(session, user, act.account_id):
        raise NotFound(f"Activity {activity_id} does not exist or is outside your territories.")
    return act


def attendees(session: Session, activity_id: int) -> list[Account]:
    return list(
        session.scalars(
            select(Account)
            .join(Attendee, Attendee.account_id == Account.id)
            .where(Attendee.activity_id == activity_id)
            .order_by(Attendee.id)
        )
    )


def amendments(session: Session, activity_id: int) -> list[Amendment]:
    return list(
        session.scalars(
            select(Amendment).where(Amendment.activity_id == activity_id).order_by(Amendment.id)
        )
    )


def effective(act: Activity, amends: list[Amendment]) -> dict:
    """The call as it reads after its amendments, the original left untouched."""
    values = {k: getattr(act, k) for k in AMENDABLE}
    for a in amends:
        values.update({k: v for k, v in a.changes.items() if k in AMENDABLE})
    return values


def effective_for(session: Session, activities: list[Activity]) -> dict[int, dict]:
    """The amended values of those activities that have amendments, in one query."""
    ids = [a.id for a in activities if a.status == "submitted"]
    if not ids:
        return {}
    by_activity: dict[int, list[Amendment]] = {}
    for amendment in session.scalars(
        select(Amendment).where(Amendment.activity_id.in_(ids)).order_by(Amendment.id)
    ):
        by_activity.setdefault(amendment.activity_id, []).append(amendment)
    return {a.id: effective(a, by_activity[a.id]) for a in activities if a.id in by_activity}


def create_activity(
    session: Session,
    user: User,
    *,
    account_ids: list[int],
    channel: str,
    start_at: datetime,
    status: str = "planned",
    kind: str | None = None,
    duration_min: int | None = None,
    subject: str | None = None,
    outcome: str | None = None,
    notes: str | None = None,
    product_ids: list[int] | None = None,
    key_messages: list[str] | None = None,
) -> Activity:
    """Plan or record a touchpoint; the first account is primary, more make a group call."""
    if not account_ids:
        raise Invalid("At least one account is needed.", field="account_ids")
    if len(set(account_ids)) != len(account_ids):
        raise Invalid("An account is listed twice.", field="account_ids")
    if len(account_ids) > MAX_ATTENDEES:
        raise Invalid(f"At most {MAX_ATTENDEES} accounts in one call.", field="account_ids")
    if status not in ("planned", "saved"):
        raise Invalid("A new activity is planned or saved; submit it afterwards.", field="status")
    data = {
        "channel": channel,
        "duration_min": duration_min,
        "outcome": outcome,
        "product_ids": product_ids or [],
        "key_messages": key_messages or [],
        "start_at": start_at,
    }
    _check_fields(session, data)
    for account_id in account_ids:
        accounts.require_writable(session, user, account_id)
    act = Activity(
        channel=channel,
        kind=kind,
        status=status,
        owner_id=user.id,
        account_id=account_ids[0],
        start_at=data["start_at"],
        duration_min=duration_min,
        subject=subject,
        outcome=outcome,
        notes=notes,
        product_ids=data["product_ids"],
        key_messages=data["key_messages"],
    )
    session.add(act)
    session.flush()
    for account_id in account_ids:
        session.add(
            Attendee(
                activity_id=act.id, account_id=account_id, start_at=act.start_at, channel=channel
            )
        )
    session.flush()
    return act


def _require_owner(user: User, act: Activity) -> None:
    if act.owner_id != user.id and user.role != Role.admin:
        raise Forbidden("Only the owner of this call may change it.")


def update_activity(session: Session, user: User, activity_id: int, **changes) -> Activity:
    act = get_activity(session, user, activity_id, for_update=True)
    if act.status == "submitted":
        raise Conflict("This call report is submitted and locked; add an amendment instead.")
    _require_owner(user, act)
    unknown = set(changes) - set(EDITABLE) - {"status"}
    if unknown:
        raise Invalid(f"{sorted(unknown)[0]} cannot be changed.", field=sorted(unknown)[0])
    if "status" in changes and changes["status"] not in ("planned", "saved"):
        raise Invalid("Use submit to submit a call.", field="status")
    _check_fields(session, changes)
    for key, value in changes.items():
        setattr(act, key, value)
    if "start_at" in changes or "channel" in changes:
        for att in session.scalars(select(Attendee).where(Attendee.activity_id == act.id)):
            att.start_at = act.start_at
            att.channel = act.channel
    session.flush()
    return act


def delete_planned(session: Session, user: User, activity_id: int) -> None:
    """Remove a planned call that will not take place (a cancelled meeting); audited."""
    act = get_activity(session, user, activity_id, for_update=True)
    _require_owner(user, act)
    if act.status != "planned":
        raise Conflict("Only a planned call can be removed; this one took place.")
    for att in session.scalars(select(Attendee).where(Attendee.activity_id == act.id)):
        session.delete(att)
    session.flush()
    session.delete(act)
    session.flush()


def submit_activity(session: Session, user: User, activity_id: int) -> Activity:
    """Submit and lock a call report once the fields a report needs are there."""
    act = get_activity(session, user, activity_id, for_update=True)
    if act.status == "submitted":
        raise Conflict("This call report is already submitted.")
    _require_owner(user, act)
    errors = []
    if act.start_at > _now() + timedelta(minutes=15):
        errors.append({"field": "start_at", "message": "A call in the future cannot be submitted."})
    if act.duration_min is None:
        errors.append({"field": "duration_min", "message": "Say how long the call lasted."})
    if act.outcome is None:
        errors.append({"field": "outcome", "message": "Choose an outcome."})
    if act.channel in CALL_CHANNELS and act.outcome != "no_contact" and not act.product_ids:
        errors.append({"field": "product_ids", "message": "Choose at least one product discussed."})
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)
    act.status = "submitted"
    act.submitted_at = _now()
    session.flush()
    return act


def amend_activity(
    session: Session, user: User, activity_id: int, *, reason: str, changes: dict
) -> Amendment:
    """Correct a submitted call: the correction is kept beside the untouched original."""
    act = get_activity(session, user, activity_id, for_update=True)
    if act.status != "submitted":
        raise Conflict("Only a submitted call is amended; edit it directly instead.")
    _require_owner(user, act)
    if not reason or not reason.strip():
        raise Invalid("Say why the call is amended.", field="reason")
    if not changes:
        raise Invalid("An amendment changes at least one field.", field="changes")
    unknown = set(changes) - set(AMENDABLE)
    if unknown:
        raise Invalid(f"{sorted(unknown)[0]} cannot be amended.", field=sorted(unknown)[0])
    _check_fields(session, dict(changes))
    amendment = Amendment(
        activity_id=act.id, author_id=user.id, reason=reason.strip(), changes=changes
    )
    session.add(amendment)
    session.flush()
    return amendment


def timeline(
    session: Session,
    user: User,
    account_id: int,
    *,
    cursor: str | None = None,
    limit: int = 20,
    channel: str | None = None,
) -> accounts.Page:
    """Every touchpoint of one account across channels, newest first."""
    accounts.require_readable(session, user, account_id)
    if not 1 <= limit <= 100:
        raise Invalid("limit must be between 1 and 100.", field="limit")
    if channel and channel not in CHANNELS:
        raise Invalid(f"Unknown channel {channel!r}.", field="channel")
    stmt = (
        select(Activity)
        .join(Attendee, Attendee.activity_id == Activity.id)
        .where(Attendee.account_id == account_id)
    )
    if accounts.territory_scope(session, user) is not accounts.ALL:
        # A group call led from another territory shows only if its primary account is
        # readable too: the same rule as opening the activity itself.
        stmt = stmt.join(Account, Account.id == Activity.account_id).where(
            accounts.readable(session, user)
        )
    if channel:
        stmt = stmt.where(Attendee.channel == channel)
    after = pagination.decode(cursor, 2)
    if after:
        try:
            at = datetime.fromisoformat(after[0])
        except (TypeError, ValueError) as exc:
            raise Invalid("The cursor is not one this server gave.", field="cursor") from exc
        stmt = stmt.where(
            or_(
                Attendee.start_at < at,
                and_(Attendee.start_at == at, Attendee.activity_id < after[1]),
            )
        )
    rows = list(
        session.scalars(
            stmt.order_by(Attendee.start_at.desc(), Attendee.activity_id.desc()).limit(limit + 1)
        )
    )
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = pagination.encode(rows[-1].start_at.isoformat(), rows[-1].id)
    return accounts.Page(rows, nxt)


def local_today() -> date:
    """Today in the site's time zone (not the server's)."""
    return datetime.now(local_zone()).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    tz = local_zone()
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def calls_for_day(session: Session, user: User, day: date) -> list[tuple[Activity, Account]]:
    """The user's own activities on a local day, in time order, with their primary account."""
    start, end = day_bounds(day)
    return list(
        session.execute(
            select(Activity, Account)
            .join(Account, Account.id == Activity.account_id)
            .where(
                Activity.owner_id == user.id, Activity.start_at >= start, Activity.start_at < end
            )
            .order_by(Activity.start_at)
        ).all()
    )


# --- tasks ------------------------------------------------------------------------------------


def create_task(
    session: Session,
    user: User,
    *,
    title: str,
    due_date: date,
    account_id: int | None = None,
    activity_id: int | None = None,
) -> Task:
    if not title or not title.strip():
        raise Invalid("A task needs a title.", field="title")
    if len(title) > 200:
        raise Invalid("A title has at most 200 characters.", field="title")
    if account_id is not None:
        accounts.require_writable(session, user, account_id)
    if activity_id is not None:
        get_activity(session, user, activity_id)
    task = Task(
        owner_id=user.id,
        title=title.strip(),
        due_date=due_date,
        account_id=account_id,
        activity_id=activity_id,
    )
    session.add(task)
    session.flush()
    return task


def get_task(session: Session, user: User, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None or (task.owner_id != user.id and user.role != Role.admin):
        raise NotFound(f"Task {task_id} does not exist.")
    return task


def update_task(session: Session, user: User, task_id: int, **changes) -> Task:
    task = get_task(session, user, task_id)
    if "title" in changes and changes["title"] is not None:
        if not changes["title"].strip():
            raise Invalid("A task needs a title.", field="title")
        task.title = changes["title"].strip()
    if changes.get("due_date") is not None:
        task.due_date = changes["due_date"]
    if changes.get("status") is not None:
        if changes["status"] not in ("open", "done"):
            raise Invalid("Status is open or done.", field="status")
        task.status = changes["status"]
        task.done_at = _now() if task.status == "done" else None
    session.flush()
    return task


def open_tasks(
    session: Session, user: User, *, account_id: int | None = None, limit: int = 50
) -> list[Task]:
    stmt = select(Task).where(Task.status == "open")
    if account_id is not None:
        accounts.require_readable(session, user, account_id)
        stmt = stmt.where(Task.account_id == account_id)
        if user.role == Role.rep:
            stmt = stmt.where(Task.owner_id == user.id)
    else:
        stmt = stmt.where(Task.owner_id == user.id)
    return list(session.scalars(stmt.order_by(Task.due_date, Task.id).limit(limit)))
