"""Meeting invitations through Approved Email: the HCP's personal link and passcode filled by
the server into an approved template, the calendar event attached (RFC 5545), and the
update and cancellation notices that keep the HCP's calendar right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dkim
import pytest
from icalendar import Calendar
from sqlalchemy import select

from parcours.activities.models import Activity
from parcours.core import db, jobs
from parcours.core.errors import Conflict, Invalid
from parcours.core.models import User
from parcours.email import service as email
from parcours.email.models import EmailMessage
from parcours.meetings import service
from parcours.meetings.models import Meeting

from content_factories import acting
from email_factories import approved_email_template
from factories import consent_to_remote_meetings

INVITATION = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invitation</title></head>
<body>
<p>Dear {{ recipient_title }} {{ recipient_name }},</p>
<p>{{ phrase }}</p>
<p>Our remote meeting: {{ meeting_time }}. Join with your personal link
<a href="{{ meeting_link }}">{{ meeting_link }}</a> and the passcode {{ meeting_passcode }}.</p>
<p>{{ rep_signature }}</p>
<p><a href="{{ unsubscribe_link }}">Unsubscribe</a></p>
</body></html>
"""


@pytest.fixture
def invitation(scene) -> int:
    with db.new_session() as session, session.begin():
        team = scene.mlr
        for name in ("marketing", "medical", "legal", "regulatory", "rep", "admin"):
            setattr(team, name, session.merge(getattr(team, name)))
        team.product = session.merge(team.product)
        version = approved_email_template(
            session, team, html=INVITATION, title="Invitation to a remote meeting"
        )
        version_id = version.id
    jobs.run_pending()  # the upload's own render job: later counts are emails only
    return version_id


def _hcp(scene) -> int:
    hcp_id = scene.hcp()  # opted in to email
    with db.new_session() as session, session.begin():
        consent_to_remote_meetings(session, hcp_id)
    return hcp_id


def _schedule(scene, hcp_id: int, invitation_id: int | None):
    with db.new_session() as session, session.begin():
        rep = session.get(User, scene.mlr.rep.id)
        with acting(session, rep):
            meeting, codes = service.schedule(
                session,
                rep,
                account_ids=[hcp_id],
                starts_at=datetime.now(UTC) + timedelta(days=2),
                title="Nephrolia update",
                invitation_id=invitation_id,
            )
            return (
                meeting.id,
                codes,
                [service.link(a) for a in service.attendees(session, meeting.id)],
            )


def _calendar(message) -> Calendar:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_payload(decode=True))


def test_the_invitation_carries_link_passcode_and_calendar_event(
    scene, smtp_server, dkim_key, invitation
):
    hcp_id = _hcp(scene)
    meeting_id, codes, [link] = _schedule(scene, hcp_id, invitation)
    [code] = codes.values()
    assert jobs.run_pending() == 1
    [envelope] = smtp_server.envelopes
    assert dkim.verify(envelope.original_content, dnsfunc=dkim_key.dnsfunc)
    [msg] = smtp_server.messages
    assert msg.get_content_type() == "multipart/mixed"
    html = msg.get_body(("html",)).get_content()
    assert link in html and code in html
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    cal = _calendar(msg)
    assert cal["method"] == "REQUEST"
    [event] = cal.walk("VEVENT")
    assert str(event["uid"]).startswith(f"meeting-{meeting_id}@")
    assert int(event["sequence"]) == 0 and str(event["location"]) == link
    assert code in str(event["description"])
    # a meeting invitation is not offered in the rep's ordinary email page
    with db.new_session(write=False) as session:
        rep = session.get(User, scene.mlr.rep.id)
        assert invitation not in [v.id for v in email.templates_for(session, rep)]
        assert invitation in [v.id for v in email.templates_for(session, rep, invitations=True)]


def test_an_invitation_template_cannot_be_sent_as_an_ordinary_email(scene, invitation):
    hcp_id = _hcp(scene)
    with db.new_session() as session, session.begin():
        rep = session.get(User, scene.mlr.rep.id)
        with acting(session, rep), pytest.raises(Invalid, match="remote meeting") as refused:
            email.send(session, rep, hcp_id, invitation, {"phrase": "x"})
    assert refused.value.errors[0]["field"] == "template_id"


def test_without_email_consent_the_meeting_is_not_planned_at_all(scene, invitation):
    hcp_id = scene.hcp(consent_to_email=False)
    with db.new_session() as session, session.begin():
        consent_to_remote_meetings(session, hcp_id)
    with pytest.raises(Conflict, match="No consent recorded"):
        _schedule(scene, hcp_id, invitation)
    with db.new_session(write=False) as session:
        assert session.scalar(select(Meeting.id)) is None  # nothing half done
        assert session.scalar(select(EmailMessage.id)) is None


def test_moving_then_cancelling_updates_the_hcps_calendar(scene, smtp_server, invitation):
    hcp_id = _hcp(scene)
    meeting_id, _codes, _links = _schedule(scene, hcp_id, invitation)
    jobs.run_pending()
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with db.new_session() as session, session.begin():
        rep = session.get(User, scene.mlr.rep.id)
        with acting(session, rep):
            meeting = service.reschedule(session, rep, meeting_id, starts_at=later, duration_min=20)
            activity_id = meeting.activity_id
    jobs.run_pending()
    moved = _calendar(smtp_server.messages[-1])
    [event] = moved.walk("VEVENT")
    assert moved["method"] == "REQUEST" and int(event["sequence"]) == 1
    assert event.decoded("dtstart") == later
    assert "New time" in smtp_server.messages[-1]["Subject"] or "Nouvel" in str(
        smtp_server.messages[-1]["Subject"]
    )
    with db.new_session(write=False) as session:
        act = session.get(Activity, activity_id)
        assert act.start_at == later and act.duration_min == 20

    with db.new_session() as session, session.begin():
        rep = session.get(User, scene.mlr.rep.id)
        with acting(session, rep):
            service.cancel(session, rep, meeting_id)
    jobs.run_pending()
    cancelled = _calendar(smtp_server.messages[-1])
    [event] = cancelled.walk("VEVENT")
    assert cancelled["method"] == "CANCEL" and int(event["sequence"]) == 2
    assert str(event["status"]) == "CANCELLED"
    with db.new_session(write=False) as session:
        assert session.get(Activity, activity_id) is None  # off the agenda and the timeline
        assert session.get(Meeting, meeting_id).state == "cancelled"
        rep = session.get(User, scene.mlr.rep.id)
        with pytest.raises(Conflict):
            service.cancel(session, rep, meeting_id)
