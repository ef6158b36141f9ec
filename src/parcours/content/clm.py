"""Closed-loop marketing: what a rep may present, slide events, call prefill, statistics."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from parcours.accounts import service as accounts
from parcours.accounts.models import Account, Product
from parcours.activities import service as activities
from parcours.activities.models import Activity
from parcours.content import service
from parcours.content.models import REACTIONS, ContentPage, ContentVersion, SlideView
from parcours.core import audit
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User

MAX_BATCH = 1000
MAX_SLIDE_MS = 4 * 3600 * 1000


def _now() -> datetime:
    return datetime.now(UTC)


def presenting_call(
    session: Session, user: User, activity_id: int, *, for_update: bool = False
) -> Activity:
    """A call of this rep's that is still open for presenting (row-locked to record into it)."""
    act = activities.get_activity(session, user, activity_id, for_update=for_update)
    if act.owner_id != user.id:
        raise Forbidden("Only the rep who owns this call presents in it.")
    if act.channel not in activities.CALL_CHANNELS:
        raise Conflict("Content is presented in field, phone or remote calls.", field="activity_id")
    if act.status == "submitted":
        raise Conflict("This call report is submitted and locked.", field="activity_id")
    return act


def offered(session: Session, user: User, act: Activity | None = None) -> list[ContentVersion]:
    """Approved content valid today for the rep's country and products, newest first."""
    day = service.today()
    rows = session.scalars(
        select(ContentVersion)
        .where(
            ContentVersion.state == "approved",
            ContentVersion.valid_from <= day,
            ContentVersion.valid_until >= day,
        )
        .order_by(ContentVersion.decided_at.desc())
    )
    out = []
    for v in rows:
        if user.role not in (Role.admin, Role.marketing) and not service.can_see(session, user, v):
            continue
        if v.kind in ("video", "email") or not service.presentable(session, v, day):
            continue
        if any(o.content_id == v.content_id for o in out):
            continue  # two approved versions in force: the newest (first, by decision date)
        out.append(v)
    if act is not None and act.product_ids:
        # content for the products planned for this call first
        planned = set(act.product_ids)
        out.sort(key=lambda v: not planned.intersection(v.product_ids or []))
    return out


def open_player(
    session: Session, user: User, activity_id: int, version_id: int
) -> tuple[Activity, ContentVersion]:
    act = presenting_call(session, user, activity_id)
    version = session.get(ContentVersion, version_id)
    if version is None or not service.can_see(session, user, version):
        if version is not None and version.state in ("withdrawn", "expired"):
            service.require_presentable(session, version)
        raise NotFound(f"Content version {version_id} is not available to you.")
    service.require_presentable(session, version)
    if user.country and user.country not in (version.countries or []):
        raise Forbidden("This content is not approved for your country.")
    return act, version


def player_status(session: Session, user: User, version_id: int) -> dict:
    """What an open player polls: may this version still be shown?"""
    version = session.get(ContentVersion, version_id)
    visible = version is not None and (
        user.role in (*service.BUILDERS, Role.reviewer)
        or (
            version.state not in ("draft", "in_review", "rejected")
            and service.in_market(session, user, version)
        )
    )
    if not visible:
        raise NotFound(f"Content version {version_id} is not available to you.")
    try:
        service.require_presentable(session, version)
    except Conflict as exc:
        return {"presentable": False, "state": version.state, "reason": exc.detail}
    return {"presentable": True, "state": version.state, "reason": None}


def ingest(session: Session, user: User, events: list[dict]) -> dict:
    """Record slide events; an event id seen before is skipped, so resending is harmless."""
    if user.role not in (Role.rep, Role.manager, Role.admin):
        raise Forbidden("Only reps record presentations.")
    if len(events) > MAX_BATCH:
        raise Invalid(f"Send at most {MAX_BATCH} events at a time.", field="events")
    ids = [e["event_id"] for e in events]
    if len(set(ids)) != len(ids):
        # the same event twice in one batch is a resend inside the batch: keep the first
        uniq: dict[str, dict] = {}
        for e in events:
            uniq.setdefault(e["event_id"], e)
        events = list(uniq.values())
    known = set()
    for i in range(0, len(ids), 500):
        known.update(
            session.scalars(
                select(SlideView.event_id).where(SlideView.event_id.in_(ids[i : i + 500]))
            )
        )
    calls = _calls_for(
        session, user, {e["activity_id"] for e in events if e["event_id"] not in known}
    )
    versions: dict[int, tuple[ContentVersion, dict[int, list]] | Exception] = {}
    rows, rejected = [], []
    now = _now()
    for e in events:
        if e["event_id"] in known:
            continue

        def reject(field: str, message: str, e=e) -> None:
            rejected.append({"event_id": e["event_id"], "field": field, "message": message})

        aid = e["activity_id"]
        if isinstance(calls[aid], Exception):
            reject("activity_id", calls[aid].detail)
            continue
        vid = e["version_id"]
        if vid not in versions:
            v = session.get(ContentVersion, vid)
            if v is None or (user.role != Role.admin and not service.in_market(session, user, v)):
                versions[vid] = NotFound(f"Content version {vid} is not available to you.")
            elif v.state == "approved" and not service.presentable(session, v):
                versions[vid] = Conflict("This content cannot be shown.")
            else:
                page_msgs = {
                    n: km
                    for n, km in session.execute(
                        select(ContentPage.number, ContentPage.key_messages).where(
                            ContentPage.version_id == vid
                        )
                    )
                }
                versions[vid] = (v, page_msgs)
        if isinstance(versions[vid], Exception):
            reject("version_id", versions[vid].detail)
            continue
        v, page_msgs = versions[vid]
        started = e["started_at"]
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        # a slide counts if the version is approved, or was until after the slide was shown
        # (tablet clocks drift: five minutes of grace)
        grace = timedelta(minutes=5)
        shown_ok = (
            v.decided_at is not None
            and started >= v.decided_at - grace
            and service.day_of(started) >= v.valid_from
            and (
                (v.state == "approved" and service.day_of(started) <= v.valid_until)
                or (
                    v.state in ("expired", "withdrawn", "superseded")
                    and v.ended_at is not None
                    and started <= v.ended_at + grace
                )
            )
        )
        if not shown_ok:
            reject("version_id", "This content was not approved when this slide was shown.")
            continue
        if started > now + timedelta(minutes=5):
            reject("started_at", "A slide cannot start in the future.")
            continue
        if e["page"] not in page_msgs:
            reject("page", f"This content has pages 1 to {max(page_msgs or [0])}.")
            continue
        if not 0 <= e["duration_ms"] <= MAX_SLIDE_MS:
            reject("duration_ms", "A slide lasts between 0 and 4 hours.")
            continue
        if e.get("reaction") not in (None, *REACTIONS):
            reject("reaction", "A reaction is positive, neutral or negative.")
            continue
        rows.append(
            {
                "event_id": e["event_id"],
                "activity_id": aid,
                "version_id": vid,
                "user_id": user.id,
                "page": e["page"],
                "seq": e["seq"],
                "started_at": started,
                "duration_ms": e["duration_ms"],
                "reaction": e.get("reaction"),
                # the slide's key messages as approved, whatever the browser sends
                "key_messages": page_msgs[e["page"]] or [],
                "received_at": now,
            }
        )
    raced = 0
    if rows:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        # RETURNING says which rows this batch stored: a concurrent resend stored the others
        # the table, not the ORM class: one multi-row INSERT, NULL reactions included
        table = SlideView.__table__
        stored = set(
            session.execute(
                insert(table)
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(table.c.event_id),
                rows,
            ).scalars()
        )
        raced = len(rows) - len(stored)
        rows = [r for r in rows if r["event_id"] in stored]
        per_call: dict[int, int] = defaultdict(int)
        for r in rows:
            per_call[r["activity_id"]] += 1
        # one audit record per batch and call, not per slide: events are telemetry
        audit.notes(
            session,
            [
                ("activities", str(aid), "slides", f"{n} slide view(s) recorded")
                for aid, n in per_call.items()
            ],
        )
    return {
        "accepted": len(rows),
        "duplicates": len(known) + raced,
        "rejected": rejected,
    }


def _calls_for(session: Session, user: User, ids: set[int]) -> dict[int, Activity | Exception]:
    """The batch's calls in two queries, row-locked: each one the rep's, open, readable."""
    found = {
        a.id: a
        for a in session.scalars(select(Activity).where(Activity.id.in_(ids)).with_for_update())
    }
    readable = set(
        session.scalars(
            select(Account.id).where(
                Account.id.in_({a.account_id for a in found.values()}),
                accounts.readable(session, user),
            )
        )
    )
    out: dict[int, Activity | Exception] = {}
    for aid in ids:
        act = found.get(aid)
        if act is None or act.account_id not in readable:
            out[aid] = NotFound(f"Activity {aid} does not exist or is outside your territories.")
        elif act.owner_id != user.id:
            out[aid] = Forbidden("Only the rep who owns this call presents in it.")
        elif act.channel not in activities.CALL_CHANNELS:
            out[aid] = Conflict("Content is presented in field, phone or remote calls.")
        elif act.status == "submitted":
            out[aid] = Conflict("This call report is submitted and locked.")
        else:
            out[aid] = act
    return out


def views_for_call(session: Session, activity_id: int) -> list[SlideView]:
    return list(
        session.scalars(
            select(SlideView)
            .where(SlideView.activity_id == activity_id)
            .order_by(SlideView.started_at, SlideView.seq)
        )
    )


def shown_in_call(session: Session, activity_id: int) -> list[dict]:
    """Content shown in a call: title, slides seen, time spent, reactions."""
    views = views_for_call(session, activity_id)
    if not views:
        return []
    titles = dict(
        session.execute(
            select(ContentVersion.id, ContentVersion.title).where(
                ContentVersion.id.in_({v.version_id for v in views})
            )
        ).all()
    )
    out: dict[int, dict] = {}
    for v in views:
        row = out.setdefault(
            v.version_id,
            {
                "version_id": v.version_id,
                "title": titles.get(v.version_id, ""),
                "pages": [],
                "duration_ms": 0,
                "reactions": defaultdict(int),
            },
        )
        if v.page not in row["pages"]:
            row["pages"].append(v.page)
        row["duration_ms"] += v.duration_ms
        if v.reaction:
            row["reactions"][v.reaction] += 1
    for row in out.values():
        row["reactions"] = dict(row["reactions"])
    return list(out.values())


def prefill_call(session: Session, user: User, activity_id: int) -> Activity:
    """Fill the call report from what was presented: products, key messages, duration."""
    act = presenting_call(session, user, activity_id)
    views = views_for_call(session, activity_id)
    if not views:
        raise Invalid("No slide was recorded for this call yet.", field="activity_id")
    versions = {
        v.id: v
        for v in session.scalars(
            select(ContentVersion).where(ContentVersion.id.in_({s.version_id for s in views}))
        )
    }
    active = set(session.scalars(select(Product.id).where(Product.is_active)))
    products = list(act.product_ids or [])
    for vid in dict.fromkeys(s.version_id for s in views):
        for pid in versions[vid].product_ids or []:
            if pid in active and pid not in products:
                products.append(pid)
    messages = list(act.key_messages or [])
    for s in views:
        for km in s.key_messages or []:
            if km not in messages:
                messages.append(km)
    if not any(s.key_messages for s in views):
        # no slide carries page-level messages: the decks' own messages were delivered
        for vid in dict.fromkeys(s.version_id for s in views):
            for km in versions[vid].key_messages or []:
                if km not in messages:
                    messages.append(km)
    minutes = max(1, math.ceil(sum(s.duration_ms for s in views) / 60000))
    changes = {
        "product_ids": products,
        "key_messages": messages[:20],
        "duration_min": max(act.duration_min or 0, minutes),
        "status": "saved",
    }
    if not act.subject:
        changes["subject"] = ", ".join(
            versions[v].title for v in dict.fromkeys(s.version_id for s in views)
        )[:200]
    return activities.update_activity(session, user, activity_id, **changes)


def stats(session: Session, user: User, content_id: int) -> dict:
    """Per content: times shown, average time per slide, reactions, per version and page."""
    if user.role not in (Role.admin, Role.marketing, Role.manager):
        raise Forbidden("Statistics are for marketing, managers and admins.")
    versions = service.versions_for(session, user, content_id)
    if not versions:
        raise NotFound(f"Content {content_id} does not exist or is not available to you.")
    ids = [v.id for v in versions]
    calls = dict(
        session.execute(
            select(SlideView.version_id, func.count(func.distinct(SlideView.activity_id)))
            .where(SlideView.version_id.in_(ids))
            .group_by(SlideView.version_id)
        ).all()
    )
    per_page: dict[tuple[int, int], dict] = {}
    for vid, page, n, avg_ms, total_ms in session.execute(
        select(
            SlideView.version_id,
            SlideView.page,
            func.count(),
            func.avg(SlideView.duration_ms),
            func.sum(SlideView.duration_ms),
        )
        .where(SlideView.version_id.in_(ids))
        .group_by(SlideView.version_id, SlideView.page)
    ):
        per_page[(vid, page)] = {
            "page": page,
            "views": n,
            "avg_ms": round(float(avg_ms or 0)),
            "total_ms": int(total_ms or 0),
            "reactions": {r: 0 for r in REACTIONS},
        }
    for vid, page, reaction, n in session.execute(
        select(SlideView.version_id, SlideView.page, SlideView.reaction, func.count())
        .where(SlideView.version_id.in_(ids), SlideView.reaction.is_not(None))
        .group_by(SlideView.version_id, SlideView.page, SlideView.reaction)
    ):
        per_page[(vid, page)]["reactions"][reaction] = n
    out = []
    for v in versions:
        rows = sorted(
            (r for (vid, _), r in per_page.items() if vid == v.id), key=lambda r: r["page"]
        )
        views = sum(r["views"] for r in rows)
        out.append(
            {
                "version_id": v.id,
                "number": v.number,
                "state": v.state,
                "times_shown": calls.get(v.id, 0),
                "slide_views": views,
                "avg_ms_per_slide": round(sum(r["total_ms"] for r in rows) / views) if views else 0,
                "reactions": {r: sum(p["reactions"][r] for p in rows) for r in REACTIONS},
                "pages": rows,
            }
        )
    return {"content_id": content_id, "versions": out}
