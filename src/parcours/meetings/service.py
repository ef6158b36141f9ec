"""Remote detailing meetings: scheduling, personal links and passcodes, the waiting room and
the host's powers (admit, refuse, remove, lock, end), approved slides only, and the call
report that follows.

A meeting is a remote-detailing call planned on the rep's agenda and the HCPs' timelines.
Each HCP gets a personal link (their attendee id, a random nonce and an HMAC) and a
six-digit passcode kept only as an HMAC. Wrong passcodes are counted per link (blocked for
15 minutes after 5) and per address (at most 20 in 15 minutes). A removed or refused person
cannot come back with the same link; a locked meeting admits nobody new; links expire two
hours after the meeting's planned end, or when it ends. Every join, admission, refusal,
lock and removal is an audited change of a row.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.accounts import service as accounts
from parcours.accounts.models import Account
from parcours.activities import service as activities
from parcours.consent import service as consent
from parcours.content import clm
from parcours.content.models import ContentVersion
from parcours.core import jobs
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound, TooMany
from parcours.core.models import Role, User
from parcours.core.settings import get_settings
from parcours.meetings.models import Meeting, MeetingAttendee

log = logging.getLogger("parcours.meetings")
HOSTS = (Role.rep, Role.manager, Role.admin)
MAX_GUESTS = 3  # peer to peer: up to 4 people in a room
PASSCODE_TRIES = 5
PASSCODE_BLOCK = timedelta(minutes=15)
IP_FAILURES = 20
IP_WINDOW_S = 15 * 60
LINK_GRACE = timedelta(hours=2)
TICKET_S = 12 * 3600


def _now() -> datetime:
    return datetime.now(UTC)


def _mac(*parts: object) -> str:
    body = ":".join(str(p) for p in parts).encode()
    return hmac.new(get_settings().secret().encode(), body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- links, passcodes, tickets


def link_token(att: MeetingAttendee) -> str:
    return f"{att.id}.{att.nonce}.{_mac('meeting-link', att.id, att.nonce)[:32]}"


def link(att: MeetingAttendee) -> str:
    return f"{get_settings().public_url.rstrip('/')}/m/{link_token(att)}"


def _passcode_hash(att_nonce: str, code: str) -> str:
    return _mac("meeting-passcode", att_nonce, code)


def attendee_for_token(
    session: Session, token: str, *, ended_ok: bool = False
) -> tuple[MeetingAttendee, Meeting]:
    """The attendee a personal link names; NotFound when forged, expired or cancelled
    (ended_ok: an ended meeting's link still names its attendee, for the rating)."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(token) > 120:
        raise NotFound("This meeting link is not valid.")
    att = session.get(MeetingAttendee, int(parts[0]))
    if att is None or not hmac.compare_digest(link_token(att), token):
        raise NotFound("This meeting link is not valid.")
    meeting = session.get(Meeting, att.meeting_id)
    over = meeting.state == "cancelled" or (meeting.state == "ended" and not ended_ok)
    if over or _now() > link_expiry(meeting):
        raise NotFound("This meeting has ended; its link no longer opens it.")
    return att, meeting


def rate(session: Session, token: str, value: str) -> MeetingAttendee:
    """The HCP's rating of an ended meeting they were in: 1 to 5, once."""
    att, meeting = attendee_for_token(session, token, ended_ok=True)
    if meeting.state != "ended" or att.joined_at is None:
        raise Conflict("A meeting is rated once it is over, by those who were in it.")
    if att.rating is not None:
        raise Conflict("You have already rated this meeting. Thank you.", field="rating")
    if value not in ("1", "2", "3", "4", "5"):
        raise Invalid("Choose a rating from 1 to 5.", field="rating")
    att.rating = int(value)
    return att


def link_expiry(meeting: Meeting) -> datetime:
    return meeting.starts_at + timedelta(minutes=meeting.duration_min) + LINK_GRACE


class _AddressFailures:
    """Wrong passcodes per client address over a sliding window (one process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, address: str) -> bool:
        with self.lock:
            times = self.seen[address]
            while times and times[0] < time.monotonic() - IP_WINDOW_S:
                times.popleft()
            return len(times) >= IP_FAILURES

    def fail(self, address: str) -> None:
        with self.lock:
            self.seen[address].append(time.monotonic())

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()


ADDRESS_FAILURES = _AddressFailures()


def check_passcode(session: Session, att: MeetingAttendee, code: str, address: str) -> None:
    """Raise unless code is this attendee's passcode; wrong ones are counted and limited."""
    now = _now()
    if ADDRESS_FAILURES.blocked(address):
        raise TooMany("Too many wrong passcodes from your network. Try again in 15 minutes.")
    if att.blocked_until is not None and att.blocked_until > now:
        raise TooMany("Too many wrong passcodes for this link. Try again in 15 minutes.")
    code = (code or "").strip()
    if code.isdigit() and hmac.compare_digest(_passcode_hash(att.nonce, code), att.passcode_hash):
        att.failed_passcodes = 0
        att.blocked_until = None
        return
    ADDRESS_FAILURES.fail(address)
    att.failed_passcodes += 1
    if att.failed_passcodes >= PASSCODE_TRIES:
        att.failed_passcodes = 0
        att.blocked_until = now + PASSCODE_BLOCK
    raise Invalid("This passcode is not the one in your invitation.", field="passcode")


def ticket(peer: str, meeting_id: int) -> str:
    """What a page shows its WebSocket to say who it is: peer, meeting, expiry, HMAC."""
    expires = int(time.time()) + TICKET_S
    return f"{peer}.{meeting_id}.{expires}.{_mac('meeting-ticket', peer, meeting_id, expires)[:32]}"


def read_ticket(value: str) -> tuple[str, int]:
    """(peer, meeting id) of a valid ticket; NotFound otherwise."""
    parts = (value or "").split(".")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        raise NotFound("This room ticket is not valid.")
    peer, meeting_id, expires, mac = parts
    good = _mac("meeting-ticket", peer, meeting_id, expires)[:32]
    if not hmac.compare_digest(good, mac) or int(expires) < time.time():
        raise NotFound("This room ticket is not valid.")
    return peer, int(meeting_id)


# ---------------------------------------------------------------- scheduling


def schedule(
    session: Session,
    user: User,
    *,
    account_ids: list[int],
    starts_at: datetime,
    duration_min: int = 15,
    title: str = "",
    invitation_id: int | None = None,
    call_id: int | None = None,
) -> tuple[Meeting, dict[int, str]]:
    """Plan a meeting with one to three HCPs who consented to remote meetings; with an
    approved invitation template, each HCP gets it by email with the calendar event.

    Returns the meeting and each attendee's passcode (shown once, kept only hashed)."""
    if user.role not in HOSTS:
        raise Forbidden("Only reps and managers hold remote meetings.")
    if (
        not account_ids
        or len(account_ids) > MAX_GUESTS
        or len(set(account_ids)) != len(account_ids)
    ):
        raise Invalid(f"Invite one to {MAX_GUESTS} different HCPs.", field="account_ids")
    _check_time(starts_at, duration_min)
    title = (title or "").strip()
    if len(title) > 200:
        raise Invalid("A title is at most 200 characters.", field="title")
    guests = []
    for account_id in account_ids:
        accounts.require_readable(session, user, account_id)
        account = session.get(Account, account_id)
        if account.kind != "hcp" or account.status == "erased":
            raise Invalid("Only HCPs are invited to a meeting.", field="account_ids")
        decision = consent.consent_for(session, account_id, "remote_meeting")
        if not decision.allowed:
            raise Conflict(f"{accounts.display_name(account)}: {decision.message}", field="consent")
        guests.append(account)
    if call_id is not None:  # a call of the plan becomes this meeting's remote call
        act = _planned_call(session, user, call_id, account_ids[0])
        activities.update_activity(
            session,
            user,
            act.id,
            channel="remote_detailing",
            start_at=starts_at,
            duration_min=duration_min,
            **({"subject": title} if title else {}),
        )
    else:
        act = activities.create_activity(
            session,
            user,
            account_ids=account_ids,
            channel="remote_detailing",
            start_at=starts_at,
            status="planned",
            duration_min=duration_min,
            subject=title or None,
        )
    meeting = Meeting(
        host_id=user.id,
        activity_id=act.id,
        title=title or _default_title(guests),
        starts_at=starts_at,
        duration_min=duration_min,
    )
    session.add(meeting)
    session.flush()
    codes: dict[int, str] = {}
    for account in guests:
        nonce = secrets.token_hex(8)
        code = f"{secrets.randbelow(10**6):06d}"
        att = MeetingAttendee(
            meeting_id=meeting.id,
            account_id=account.id,
            display_name=accounts.display_name(account),
            nonce=nonce,
            passcode_hash=_passcode_hash(nonce, code),
        )
        session.add(att)
        session.flush()
        codes[att.id] = code
    if invitation_id is not None:
        invite(session, user, meeting, invitation_id, codes)
    return meeting, codes


def invite(
    session: Session, user: User, meeting: Meeting, template_id: int, codes: dict[int, str]
) -> None:
    """Each HCP's invitation through Approved Email, with their link, passcode and event."""
    from parcours.email import service as email  # email builds on content and consent
    from parcours.meetings import ics

    version = session.get(ContentVersion, template_id)
    if version is None or version not in email.templates_for(session, user, invitations=True):
        raise Invalid("Choose an approved meeting invitation template.", field="invitation_id")
    for att in attendees(session, meeting.id):
        account = session.get(Account, att.account_id)
        if not account.emails:
            raise Invalid(f"{att.display_name} has no email address.", field="invitation_id")
        zone = ZoneInfo(email.ZONES.get(account.country, get_settings().timezone))
        values = {
            "meeting_link": link(att),
            "meeting_passcode": codes[att.id],
            "meeting_time": meeting.starts_at.astimezone(zone).strftime("%d/%m/%Y %H:%M"),
        }
        event = ics.event(meeting, att, account.emails[0], link=link(att), passcode=codes[att.id])
        email.invite(session, user, account, version, meeting=values, ics=event)


def cancel(session: Session, user: User, meeting_id: int) -> Meeting:
    """Call the meeting off: links stop working, the HCPs' calendars drop the event."""
    meeting = hosted(session, user, meeting_id, for_update=True)
    if meeting.state != "scheduled":
        raise Conflict("Only a meeting that has not started can be cancelled.", field="meeting")
    meeting.state = "cancelled"
    meeting.sequence += 1
    planned, meeting.activity_id = meeting.activity_id, None
    session.flush()
    activities.delete_planned(session, user, planned)
    _notify(session, meeting, "CANCEL")
    return meeting


def reschedule(
    session: Session, user: User, meeting_id: int, *, starts_at: datetime, duration_min: int
) -> Meeting:
    """A new time: the call moves on the agenda and the HCPs' calendars update the event."""
    meeting = hosted(session, user, meeting_id, for_update=True)
    if meeting.state != "scheduled":
        raise Conflict("Only a meeting that has not started can be moved.", field="meeting")
    _check_time(starts_at, duration_min)
    meeting.starts_at, meeting.duration_min = starts_at, duration_min
    meeting.sequence += 1
    activities.update_activity(
        session, user, meeting.activity_id, start_at=starts_at, duration_min=duration_min
    )
    _notify(session, meeting, "REQUEST")
    return meeting


def _notify(session: Session, meeting: Meeting, method: str) -> None:
    for att in attendees(session, meeting.id):
        if session.get(Account, att.account_id).emails:
            jobs.enqueue(
                session,
                "meetings.notice",
                {"meeting_id": meeting.id, "attendee_id": att.id, "method": method},
            )


def _check_time(starts_at: datetime, duration_min: int) -> None:
    if starts_at.tzinfo is None:
        raise Invalid("Give the start time with its time zone.", field="starts_at")
    now = _now()
    if starts_at < now - timedelta(minutes=5) or starts_at > now + timedelta(days=180):
        raise Invalid("Choose a start between now and six months ahead.", field="starts_at")
    if not 5 <= duration_min <= 120:
        raise Invalid("A meeting lasts 5 to 120 minutes.", field="duration_min")


def _planned_call(session: Session, user: User, call_id: int, account_id: int):
    act = activities.get_activity(session, user, call_id, for_update=True)
    if act.owner_id != user.id or act.status != "planned":
        raise Invalid(
            "Only a call you planned and not yet held can become a meeting.", field="call_id"
        )
    if act.account_id != account_id:
        raise Invalid("This planned call is with another HCP.", field="call_id")
    if session.scalar(select(Meeting.id).where(Meeting.activity_id == act.id)) is not None:
        raise Conflict("This call already has its meeting.", field="call_id")
    return act


def for_call(session: Session, activity_id: int) -> Meeting | None:
    return session.scalar(select(Meeting).where(Meeting.activity_id == activity_id))


def _default_title(guests: list[Account]) -> str:
    """In the first HCP's language: they read it on the invitation and in the room."""
    names = ", ".join(accounts.display_name(a) for a in guests)
    if (guests[0].preferred_language or guests[0].country or "").lower()[:2] == "fr":
        return f"Visite à distance avec {names}"[:200]
    return f"Remote meeting with {names}"[:200]


def attendees(session: Session, meeting_id: int) -> list[MeetingAttendee]:
    return list(
        session.scalars(
            select(MeetingAttendee)
            .where(MeetingAttendee.meeting_id == meeting_id)
            .order_by(MeetingAttendee.id)
        )
    )


def hosted(session: Session, user: User, meeting_id: int, *, for_update: bool = False) -> Meeting:
    """A meeting this user hosts."""
    meeting = session.get(Meeting, meeting_id, with_for_update=for_update)
    if meeting is None or meeting.host_id != user.id:
        raise NotFound(f"Meeting {meeting_id} does not exist or is not yours.")
    return meeting


def upcoming(session: Session, user: User, limit: int = 20) -> list[Meeting]:
    return list(
        session.scalars(
            select(Meeting)
            .where(Meeting.host_id == user.id, Meeting.state.in_(("scheduled", "live")))
            .order_by(Meeting.starts_at)
            .limit(limit)
        )
    )


# ---------------------------------------------------------------- the room


def enter_waiting_room(session: Session, att: MeetingAttendee, meeting: Meeting) -> None:
    if att.state in ("removed", "refused"):
        raise Forbidden("The host has not let you in to this meeting.")
    if meeting.locked and att.state != "admitted":
        raise Conflict("The host has locked this meeting: nobody else can join.", field="meeting")
    if att.state in ("invited", "left"):
        att.state = "waiting"


def _guest(session: Session, meeting: Meeting, attendee_id: int) -> MeetingAttendee:
    att = session.get(MeetingAttendee, attendee_id, with_for_update=True)
    if att is None or att.meeting_id != meeting.id:
        raise NotFound(f"Attendee {attendee_id} is not in this meeting.")
    return att


def start(session: Session, meeting: Meeting) -> None:
    if meeting.state == "scheduled":
        meeting.state, meeting.started_at = "live", _now()


def admit(session: Session, user: User, meeting_id: int, attendee_id: int) -> MeetingAttendee:
    meeting = hosted(session, user, meeting_id, for_update=True)
    att = _guest(session, meeting, attendee_id)
    if meeting.locked:
        raise Conflict("The meeting is locked: unlock it to admit someone.", field="meeting")
    if att.state != "waiting":
        raise Conflict("This person is not in the waiting room.", field="attendee_id")
    start(session, meeting)
    att.state = "admitted"
    att.joined_at = att.joined_at or _now()
    att.left_at = None
    return att


def refuse(session: Session, user: User, meeting_id: int, attendee_id: int) -> MeetingAttendee:
    meeting = hosted(session, user, meeting_id, for_update=True)
    att = _guest(session, meeting, attendee_id)
    if att.state != "waiting":
        raise Conflict("This person is not in the waiting room.", field="attendee_id")
    att.state = "refused"
    return att


def remove(session: Session, user: User, meeting_id: int, attendee_id: int) -> MeetingAttendee:
    meeting = hosted(session, user, meeting_id, for_update=True)
    att = _guest(session, meeting, attendee_id)
    if att.state in ("refused", "removed"):
        return att
    att.state = "removed"
    if att.joined_at is not None:
        att.left_at = _now()
    return att


def left(session: Session, attendee_id: int) -> None:
    """A guest's page went away (closed, network): the seat is free again."""
    att = session.get(MeetingAttendee, attendee_id, with_for_update=True)
    if att is not None and att.state in ("admitted", "waiting"):
        if att.state == "admitted":
            att.left_at = _now()
        att.state = "left"


def set_lock(session: Session, user: User, meeting_id: int, locked: bool) -> Meeting:
    meeting = hosted(session, user, meeting_id, for_update=True)
    meeting.locked = locked
    return meeting


def presentable_for(
    session: Session, user: User, meeting: Meeting, version_id: int
) -> ContentVersion:
    """Approved content valid today, for the rep and for every invited HCP's country."""
    _act, version = clm.open_player(session, user, meeting.activity_id, version_id)
    for att in attendees(session, meeting.id):
        country = session.get(Account, att.account_id).country
        if country and country not in (version.countries or []):
            raise Forbidden("This content is not approved for an attendee's country.")
    return version


def record_slides(
    session: Session,
    user: User,
    meeting: Meeting,
    shown: list[tuple],
) -> None:
    """Slides shown in the room, (seq, version, page, started, ended[, reaction]) each,
    recorded as the in-person player records them (an event id is stored once)."""
    result = clm.ingest(
        session,
        user,
        [
            {
                "event_id": f"mtg-{meeting.id}-{seq}",
                "activity_id": meeting.activity_id,
                "version_id": version_id,
                "page": page,
                "seq": seq,
                "started_at": started,
                "duration_ms": max(0, int((ended - started).total_seconds() * 1000)),
                "reaction": reaction[0] if reaction else None,
            }
            for seq, version_id, page, started, ended, *reaction in shown
        ],
    )
    for refused in result.get("rejected", []):
        log.warning("meeting %s: slide not recorded: %s", meeting.id, refused["message"])


def end(session: Session, user: User, meeting_id: int) -> Meeting:
    """End for everyone; the call report gets the real times and what was shown."""
    meeting = hosted(session, user, meeting_id, for_update=True)
    if meeting.state in ("ended", "cancelled"):
        return meeting
    now = _now()
    started = meeting.started_at or now
    meeting.state, meeting.ended_at = "ended", now
    for att in attendees(session, meeting.id):
        if att.state == "admitted":
            att.state, att.left_at = "left", now
        elif att.state == "waiting":
            att.state = "left"
    minutes = max(1, math.ceil((now - started).total_seconds() / 60))
    activities.update_activity(
        session, user, meeting.activity_id, status="saved", start_at=started, duration_min=minutes
    )
    if clm.views_for_call(session, meeting.activity_id):
        clm.prefill_call(session, user, meeting.activity_id)
    return meeting
