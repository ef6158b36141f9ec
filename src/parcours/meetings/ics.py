"""iCalendar (RFC 5545) for meeting invitations, updates and cancellations (icalendar).

One event per meeting and HCP: its UID stays the same for the meeting's whole life, its
SEQUENCE goes up with each change, so that a calendar replaces the event (METHOD:REQUEST)
or removes it (METHOD:CANCEL) instead of adding another.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from icalendar import Calendar, Event, vCalAddress, vText

from parcours.core.settings import get_settings
from parcours.meetings.models import Meeting, MeetingAttendee


def uid(meeting: Meeting) -> str:
    domain = parseaddr(get_settings().mail_from)[1].rpartition("@")[2] or "parcours.local"
    return f"meeting-{meeting.id}@{domain}"


def event(
    meeting: Meeting,
    attendee: MeetingAttendee,
    address: str,
    *,
    link: str,
    passcode: str | None,
    method: str = "REQUEST",
) -> bytes:
    """The calendar object sent to one HCP (method REQUEST or CANCEL)."""
    settings = get_settings()
    name, sender = parseaddr(settings.mail_from)
    cal = Calendar()
    cal.add("prodid", "-//parcours//remote meetings//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    ev = Event()
    ev.add("uid", uid(meeting))
    ev.add("sequence", meeting.sequence)
    ev.add("dtstamp", datetime.now(UTC))
    ev.add("dtstart", meeting.starts_at.astimezone(UTC))
    ev.add("dtend", meeting.starts_at.astimezone(UTC) + timedelta(minutes=meeting.duration_min))
    ev.add("summary", meeting.title)
    ev.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    ev.add("location", link)
    ev.add("url", link)
    lines = [link] + ([f"Passcode / code : {passcode}"] if passcode else [])
    ev.add("description", "\n".join(lines))
    organizer = vCalAddress(f"mailto:{sender}")
    organizer.params["cn"] = vText(name or sender)
    ev.add("organizer", organizer)
    who = vCalAddress(f"mailto:{address}")
    who.params["cn"] = vText(attendee.display_name)
    who.params["role"] = vText("REQ-PARTICIPANT")
    who.params["rsvp"] = vText("FALSE")
    ev.add("attendee", who)
    cal.add_component(ev)
    return cal.to_ical()
