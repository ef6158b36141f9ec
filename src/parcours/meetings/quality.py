"""Quality of service of meetings: what the browsers report, summed up per meeting and peer,
with the bad ones flagged; the operations page for managers and admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import NotFound
from parcours.core.models import Role, User
from parcours.meetings.models import Meeting, MeetingAttendee, MeetingQuality
from parcours.web.pages import user_names
from parcours.web.render import render

router = APIRouter()
WATCHERS = (Role.admin, Role.manager)
# what a remote detailing call needs to be pleasant, per peer over its last minute
LIMITS = {"rtt_ms": 300.0, "loss_pct": 5.0, "jitter_ms": 30.0}
MIN_BITRATE_KBPS = 150.0


@dataclass
class PeerQuality:
    peer: str
    samples: int
    rtt_ms: float | None
    jitter_ms: float | None
    loss_pct: float | None
    bitrate_kbps: float | None
    width: int | None
    height: int | None
    last_at: datetime | None

    @property
    def problems(self) -> list[str]:
        out = [k for k, limit in LIMITS.items() if (getattr(self, k) or 0) > limit]
        if self.bitrate_kbps is not None and self.bitrate_kbps < MIN_BITRATE_KBPS:
            out.append("bitrate_kbps")
        return out


def summary(session: Session, meeting_id: int, since: datetime | None = None) -> list[PeerQuality]:
    """Per peer: averages over the samples since `since` (all of them when None)."""
    return summaries(session, [meeting_id], since).get(meeting_id, [])


def summaries(
    session: Session, meeting_ids: list[int], since: datetime | None = None
) -> dict[int, list[PeerQuality]]:
    """summary for several meetings in one query: {meeting id: per-peer quality}."""
    q = select(
        MeetingQuality.meeting_id,
        MeetingQuality.peer,
        func.count(),
        func.avg(MeetingQuality.rtt_ms),
        func.avg(MeetingQuality.jitter_ms),
        func.avg(MeetingQuality.loss_pct),
        func.avg(MeetingQuality.bitrate_kbps),
        func.max(MeetingQuality.width),
        func.max(MeetingQuality.height),
        func.max(MeetingQuality.at),
    ).where(MeetingQuality.meeting_id.in_(meeting_ids))
    if since is not None:
        q = q.where(MeetingQuality.at >= since)
    q = q.group_by(MeetingQuality.meeting_id, MeetingQuality.peer).order_by(MeetingQuality.peer)
    out: dict[int, list[PeerQuality]] = {}
    for meeting_id, peer, n, rtt, jitter, loss, rate, w, h, last in session.execute(q):
        out.setdefault(meeting_id, []).append(
            PeerQuality(
                peer,
                n,
                *(round(v, 1) if v is not None else None for v in (rtt, jitter, loss, rate)),
                w,
                h,
                last if last is None or last.tzinfo else last.replace(tzinfo=UTC),
            )
        )
    return out


def live(session: Session, user: User) -> list[dict]:
    """Meetings in progress, each with its peers' quality over the last minute."""
    require(user, *WATCHERS)
    since = datetime.now(UTC) - timedelta(minutes=1)
    meetings = session.scalars(
        select(Meeting).where(Meeting.state == "live").order_by(Meeting.started_at)
    ).all()
    hosts = user_names(session, [m.host_id for m in meetings])
    quality = summaries(session, [m.id for m in meetings], since)
    people: dict[int, list[MeetingAttendee]] = {}
    for a in session.scalars(
        select(MeetingAttendee)
        .where(MeetingAttendee.meeting_id.in_([m.id for m in meetings]))
        .order_by(MeetingAttendee.id)
    ):
        people.setdefault(a.meeting_id, []).append(a)
    out = []
    for m in meetings:
        peers = quality.get(m.id, [])
        everyone = people.get(m.id, [])
        out.append(
            {
                "meeting": m,
                "host": hosts.get(m.host_id, "—"),
                "names": {"host": hosts.get(m.host_id, "—")}
                | {f"a{a.id}": a.display_name for a in everyone},
                "people": [a for a in everyone if a.state == "admitted"],
                "peers": peers,
                "bad": any(p.problems for p in peers),
            }
        )
    return out


@router.get("/meetings/live")
def live_page(request: Request, user: PageUser, session: SessionDep):
    rows = live(session, user)
    return render(request, "meetings/live.html", {"rows": rows, "limits": LIMITS})


@router.get("/meetings/{meeting_id}/quality")
def history_page(request: Request, meeting_id: int, user: PageUser, session: SessionDep):
    require(user, *WATCHERS)
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(f"Meeting {meeting_id} does not exist.")
    samples = session.scalars(
        select(MeetingQuality)
        .where(MeetingQuality.meeting_id == meeting_id)
        .order_by(MeetingQuality.at.desc())
        .limit(500)
    ).all()
    names = {"host": user_names(session, [meeting.host_id]).get(meeting.host_id, "—")}
    names |= {
        f"a{a.id}": a.display_name
        for a in session.scalars(
            select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id)
        )
    }
    ctx = {
        "meeting": meeting,
        "peers": summary(session, meeting_id),
        "samples": samples,
        "names": names,
    }
    return render(request, "meetings/quality.html", ctx)
