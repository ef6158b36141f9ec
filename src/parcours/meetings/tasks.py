"""Background work of meetings: the notices that update or cancel an HCP's calendar event.

An invitation goes through Approved Email (an approved template, the gates, tracking).
A change of time or a cancellation is a service message about that appointment, with no
promotional content: a fixed wording in the HCP's language and the calendar event with its
next SEQUENCE, signed with DKIM like every email, sent once by the worker.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from parcours.accounts.models import Account
from parcours.core import jobs, mailer
from parcours.core.db import new_session
from parcours.core.settings import get_settings
from parcours.email import tasks as email_tasks
from parcours.email.service import ZONES
from parcours.meetings import ics, service
from parcours.meetings.models import Meeting, MeetingAttendee

log = logging.getLogger("parcours.meetings")

WORDING = {
    "en": {
        "REQUEST": ("New time: {title}", "Your remote meeting “{title}” now starts on {when}."),
        "CANCEL": ("Cancelled: {title}", "Your remote meeting “{title}” of {when} is cancelled."),
        "link": "Your personal link (the passcode from your invitation still applies):",
    },
    "fr": {
        "REQUEST": (
            "Nouvel horaire : {title}",
            "Votre rendez-vous à distance « {title} » commence désormais le {when}.",
        ),
        "CANCEL": (
            "Annulé : {title}",
            "Votre rendez-vous à distance « {title} » du {when} est annulé.",
        ),
        "link": "Votre lien personnel (le code de votre invitation reste valable) :",
    },
}


def notice(meeting: Meeting, att: MeetingAttendee, account: Account, method: str) -> bytes:
    """The notice as it goes on the wire, DKIM-signed when a key is configured."""
    settings = get_settings()
    lang = account.preferred_language if account.preferred_language in WORDING else "fr"
    words = WORDING[lang]
    zone = ZoneInfo(ZONES.get(account.country, settings.timezone))
    when = meeting.starts_at.astimezone(zone).strftime("%d/%m/%Y %H:%M")
    subject, line = (w.format(title=meeting.title, when=when) for w in words[method])
    link = service.link(att)
    text = f"{line}\n" + ("" if method == "CANCEL" else f"\n{words['link']}\n{link}\n")
    event = ics.event(meeting, att, account.emails[0], link=link, passcode=None, method=method)
    msg = mailer.build(
        account.emails[0],
        subject,
        text,
        headers={"Auto-Submitted": "auto-generated", "Content-Language": lang},
        calendar=event,
    )
    return email_tasks.dkim_sign(mailer.as_bytes(msg), settings)


@jobs.handler("meetings.notice")
def send_notice(payload: dict) -> None:
    with new_session(write=False) as session:
        meeting = session.get(Meeting, int(payload["meeting_id"]))
        att = session.get(MeetingAttendee, int(payload["attendee_id"]))
        if meeting is None or att is None:
            return
        account = session.get(Account, att.account_id)
        if account is None or not account.emails or account.status == "erased":
            return
        raw = notice(meeting, att, account, payload["method"])
        to = account.emails[0]
    mailer.send_raw(raw, parseaddr(get_settings().mail_from)[1], [to])
    log.info("meeting %s: %s notice sent to attendee %s", meeting.id, payload["method"], att.id)
